"""Reminders: an unassigned item carded at or above TRIAGE_REMIND_SEVERITY is nudged once in its card's thread."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.metrics import REMINDERS_SENT
from tests.fakes.datadog import DatadogFake
from tests.fakes.kibana import KibanaFake
from tests.fakes.pagerduty import PD_KEY, PagerDutyFake
from tests.fakes.slack import SlackFake
from tests.fakes.xpanse import XpanseFake
from tests.scenario.conftest import ALICE, DD_BOB, MakeBot
from tests.scenario.harness import CHANNEL, BotHarness
from tests.scenario.test_cards import show
from tests.scenario.test_oncall import ONCALL_CHANNEL, SCHEDULE, seed_book, write_oncall

F1 = "cmVtaW5kLWZpbmRpbmctMDAwMQ=="
F2 = "cmVtaW5kLWZpbmRpbmctMDAwMg=="


def later(minutes: float) -> datetime:
    return datetime.now(UTC) + timedelta(minutes=minutes)


async def show_in(bot: BotHarness, target: str, channel: str) -> str:
    """`/triage show` in ``channel``; returns the new card's ts."""
    before = {m["ts"] for m in bot.cards(channel)}
    assert (await bot.command(f"show {target}", channel=channel)).status_code == 200
    await bot.settle()
    (new,) = [m for m in bot.cards(channel) if m["ts"] not in before]
    return str(new["ts"])


async def test_unassigned_high_item_is_nudged_once_mentioning_the_on_call(
    make_bot: MakeBot, tmp_path: Path, pagerduty_fake: PagerDutyFake, datadog_fake: DatadogFake
) -> None:
    """After TRIAGE_REMIND_AFTER a high, unassigned card gets one thread reply naming who is on call now."""
    seed_book(pagerduty_fake)
    pagerduty_fake.book.on_call(SCHEDULE, ["PALICE"], start=datetime.now(UTC) - timedelta(hours=2))
    bot = await make_bot(
        pagerduty_api_key=PD_KEY, pagerduty_api_url=pagerduty_fake.url, triage_oncall=write_oncall(tmp_path)
    )
    datadog_fake.add_finding(F1, title="Public bucket", severity="high")
    ts = await show_in(bot, f"dd:{F1}", ONCALL_CHANNEL)
    sent_before = REMINDERS_SENT.labels("datadog")._value.get()

    early = await bot.svc.reconciler.run_once(later(10))
    assert early is not None and early.reminded == 0 and bot.replies(ONCALL_CHANNEL, ts) == []

    done = await bot.svc.reconciler.run_once(later(31))
    assert done is not None and done.reminded == 1
    (nudge,) = bot.replies(ONCALL_CHANNEL, ts)
    assert f"<@{ALICE}>" in nudge["text"] and "secops-primary" in nudge["text"]
    assert "still unassigned 30m" in nudge["text"] and f"dd:{F1}" in nudge["text"]
    assert REMINDERS_SENT.labels("datadog")._value.get() == sent_before + 1

    again = await bot.svc.reconciler.run_once(later(90))
    assert again is not None and again.reminded == 0 and len(bot.replies(ONCALL_CHANNEL, ts)) == 1


async def test_without_a_schedule_the_nudge_mentions_nobody(
    bot: BotHarness, slack_fake: SlackFake, xpanse_fake: XpanseFake
) -> None:
    """A channel no schedule posts to: the nudge is sent and mentions no one."""
    xpanse_fake.add_incident("6101", description="Exposed RDP", severity="critical")
    ts = await show(bot, "xpanse:6101")

    done = await bot.svc.reconciler.run_once(later(31))

    assert done is not None and done.reminded == 1
    (nudge,) = bot.replies(CHANNEL, ts)
    assert "<@" not in nudge["text"] and "No on-call schedule" in nudge["text"]


async def test_assigned_or_lower_items_are_not_nudged(
    bot: BotHarness, datadog_fake: DatadogFake, kibana_fake: KibanaFake
) -> None:
    """Below TRIAGE_REMIND_SEVERITY, already assigned, or assigned since the card: no nudge."""
    kibana_fake.add_alert("kb-rem-1", severity="medium")
    datadog_fake.add_finding(F1, title="Assigned", severity="critical", assignee_id=DD_BOB)
    datadog_fake.add_finding(F2, title="Taken since", severity="high")
    low = await show(bot, "kibana:kb-rem-1")
    taken = await show(bot, f"dd:{F1}")
    since = await show(bot, f"dd:{F2}")
    datadog_fake.findings[F2]["assignee_id"] = DD_BOB  # assigned in Datadog after the card

    done = await bot.svc.reconciler.run_once(later(31))

    assert done is not None and done.reminded == 0 and done.updated == 1
    assert bot.replies(CHANNEL, low) == bot.replies(CHANNEL, taken) == bot.replies(CHANNEL, since) == []


async def test_remind_severity_and_delay_are_settings(make_bot: MakeBot, kibana_fake: KibanaFake) -> None:
    """TRIAGE_REMIND_SEVERITY=medium and TRIAGE_REMIND_AFTER=5m nudge a medium alert after five minutes."""
    bot = await make_bot(triage_remind_severity="medium", triage_remind_after="5m")
    kibana_fake.add_alert("kb-rem-2", severity="medium")
    ts = await show(bot, "kibana:kb-rem-2")

    done = await bot.svc.reconciler.run_once(later(6))

    assert done is not None and done.reminded == 1
    (nudge,) = bot.replies(CHANNEL, ts)
    assert "still unassigned 5m" in nudge["text"]


async def test_one_nudge_per_item_across_replicas_and_restarts(make_bot: MakeBot, datadog_fake: DatadogFake) -> None:
    """Two replicas, then a restart, on one database: the item is nudged exactly once, even with two cards."""
    first = await make_bot()
    second = await make_bot(triage_db=first.settings.triage_db)
    datadog_fake.add_finding(F1, title="Twice shown", severity="critical")
    one = await show(first, f"dd:{F1}")
    two = await show(first, f"dd:{F1}")  # a second card of the same item

    assert (await first.svc.reconciler.run_once(later(31))) is not None
    lapsed = later(31 + first.svc.reconciler.lease_s / 60 + 1)
    taken = await second.svc.reconciler.run_once(lapsed)
    assert taken is not None and taken.reminded == 0
    await first.stop()
    await second.stop()
    restarted = await make_bot(triage_db=first.settings.triage_db)
    after = await restarted.svc.reconciler.run_once(later(120))
    assert after is not None and after.reminded == 0
    assert len(restarted.replies(CHANNEL, one)) + len(restarted.replies(CHANNEL, two)) == 1
