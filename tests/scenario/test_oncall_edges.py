"""The on-call watcher's edge cases: a flip back before the preview exists, nobody on call, no data."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from bot.models import JobState
from tests.fakes.datadog import DatadogFake
from tests.fakes.pagerduty import PagerDutyFake
from tests.scenario.conftest import DD_ALICE, MakeBot
from tests.scenario.harness import BotHarness
from tests.scenario.test_oncall import FINDING, ONCALL_CHANNEL, SCHEDULE, T0, pd_bot, poll, previews

T1 = T0 + timedelta(hours=1)


async def started_job_state(bot: BotHarness) -> JobState:
    """The state of the one handoff job the watcher started (it must exist)."""
    scheduled = [e.job_id for e in await bot.svc.jobs.ledger_since(0) if e.outcome == "scheduled"]
    assert len(scheduled) == 1 and scheduled[0] is not None
    job = await bot.svc.jobs.get(scheduled[0])
    assert job is not None
    return job.state


async def test_flip_back_while_collecting_never_posts_a_preview(
    make_bot: MakeBot, tmp_path: Path, pagerduty_fake: PagerDutyFake, datadog_fake: DatadogFake
) -> None:
    """A to B, then back to A while the handoff is still collecting: cancelled, no preview, no Confirm."""
    datadog_fake.add_finding(FINDING, assignee_id=DD_ALICE)
    bot = await pd_bot(make_bot, tmp_path, pagerduty_fake)
    await poll(bot, T0)
    datadog_fake.fail("findings", status=0, delay=0.6, times=20)  # the collection is slow
    pagerduty_fake.book.rotate(SCHEDULE, ["PBOB"], at=T1)
    await bot.svc.oncall.poll_once(T1)
    await asyncio.sleep(0.1)  # the worker has the job and is listing Alice's findings
    assert await started_job_state(bot) is JobState.QUEUED
    pagerduty_fake.book.rotate(SCHEDULE, ["PALICE"], at=T1 + timedelta(minutes=5))
    await bot.svc.oncall.poll_once(T1 + timedelta(minutes=5))
    await bot.settle(timeout=20)
    assert previews(bot.slack) == []
    assert await started_job_state(bot) is JobState.CANCELLED
    assert bot.slack.calls_to("conversations.open") == []  # no DM preview either
    assert any("flipped back" in str(m.get("text")) for m in bot.slack.messages_in(ONCALL_CHANNEL))
    cancelled = [e for e in await bot.svc.jobs.ledger_since(0) if e.outcome == "cancelled"]
    assert len(cancelled) == 1 and "flipped back" in cancelled[0].detail
    assert datadog_fake.findings[FINDING]["assignee_id"] == DD_ALICE
    assert await bot.svc.oncall.store.pending() == []


async def test_nobody_on_call_hands_off_to_nobody(
    make_bot: MakeBot, tmp_path: Path, pagerduty_fake: PagerDutyFake, datadog_fake: DatadogFake
) -> None:
    """An empty responder list is a real answer: no handoff to nobody, and none from nobody when Bob starts."""
    datadog_fake.add_finding(FINDING, assignee_id=DD_ALICE)
    bot = await pd_bot(make_bot, tmp_path, pagerduty_fake)
    await poll(bot, T0)
    pagerduty_fake.book.rotate(SCHEDULE, [], at=T1)  # Alice's shift ends, nobody follows
    await poll(bot, T1)
    assert await bot.svc.oncall.store.baseline("secops-primary") == []
    assert bot.svc.oncall.status["secops-primary"].startswith("ok — 0 on call")
    pagerduty_fake.book.rotate(SCHEDULE, ["PBOB"], at=T1 + timedelta(hours=1))
    await poll(bot, T1 + timedelta(hours=1))
    assert await bot.svc.oncall.store.baseline("secops-primary") == ["bob@example.com"]
    assert previews(bot.slack) == [] and await bot.svc.oncall.store.pending() == []
    assert [e for e in await bot.svc.jobs.ledger_since(0) if e.outcome == "scheduled"] == []
    assert datadog_fake.findings[FINDING]["assignee_id"] == DD_ALICE


async def test_unknown_schedule_is_no_data_not_nobody(
    make_bot: MakeBot, tmp_path: Path, pagerduty_fake: PagerDutyFake
) -> None:
    """PagerDuty refusing the schedule id (400) keeps the baseline and says so in the status."""
    bot = await pd_bot(make_bot, tmp_path, pagerduty_fake)
    await poll(bot, T0)
    pagerduty_fake.book.shifts.pop(SCHEDULE)
    await poll(bot, T1)
    assert await bot.svc.oncall.store.baseline("secops-primary") == ["alice@example.com"]
    assert bot.svc.oncall.status["secops-primary"].startswith("failing — 400")


async def test_slack_lookup_failure_keeps_the_baseline_until_slack_answers(
    make_bot: MakeBot, tmp_path: Path, pagerduty_fake: PagerDutyFake, datadog_fake: DatadogFake
) -> None:
    """Slack failing users.lookupByEmail is no data: nothing starts; the next poll hands off once."""
    datadog_fake.add_finding(FINDING, assignee_id=DD_ALICE)
    bot = await pd_bot(make_bot, tmp_path, pagerduty_fake)
    await poll(bot, T0)
    pagerduty_fake.book.rotate(SCHEDULE, ["PBOB"], at=T1)
    bot.slack.fail("users.lookupByEmail", "internal_error", times=None)
    await poll(bot, T1)
    assert await bot.svc.oncall.store.baseline("secops-primary") == ["alice@example.com"]
    assert "Slack could not be asked" in bot.svc.oncall.status["secops-primary"]
    assert previews(bot.slack) == []
    bot.slack.clear_faults()
    await poll(bot, T1 + timedelta(minutes=1))
    await poll(bot, T1 + timedelta(minutes=2))
    assert len(previews(bot.slack)) == 1
    assert await bot.svc.oncall.store.baseline("secops-primary") == ["bob@example.com"]
