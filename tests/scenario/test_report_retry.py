"""A job whose outcome Slack refused stays unreported and is reported again, never dropped."""

from __future__ import annotations

from tests.fakes.slack import SlackFake
from tests.fakes.xpanse import XpanseFake
from tests.scenario.harness import BotHarness


async def test_failed_report_is_retried_until_slack_takes_it(
    bot: BotHarness, slack_fake: SlackFake, xpanse_fake: XpanseFake
) -> None:
    """Slack failing the reply leaves the job unreported; the next pass posts it and marks it."""
    xpanse_fake.add_incident("9001", description="Exposed admin panel")
    slack_fake.fail("chat.postMessage", error="internal_error", times=None)
    await bot.command("severity xpanse:9001 high")
    await bot.settle()
    assert xpanse_fake.incidents["9001"].manual_severity == "high"
    pending = [j for j in await bot.svc.jobs.unfinished() if j.verb == "severity"]
    assert len(pending) == 1 and pending[0].reported_at is None

    slack_fake.clear_faults()
    job = await bot.svc.workers.process(pending[0].id)
    assert job is not None
    stored = await bot.svc.jobs.get(job.id)
    assert stored is not None and stored.reported_at is not None
    assert any(
        "severity" in str(c.args.get("text", "")) or c.args.get("thread_ts")
        for c in slack_fake.calls_to("chat.postMessage")[-2:]
    )
    # The platform was written once: reporting again did not re-run the action.
    assert len(xpanse_fake.calls("update_incident")) == 1
