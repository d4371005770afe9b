"""Handoff at shift change: the on-call watcher against contract-checked schedule fakes, clock in hand."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bot.core.oncall import SYSTEM_ACTOR
from bot.models import JobState
from bot.slack.ids import ActionId
from tests.fakes.datadog import DatadogFake
from tests.fakes.pagerduty import PD_KEY, PagerDutyFake
from tests.fakes.slack import SlackFake
from tests.scenario.conftest import ALICE, BOB, CAROL, DD_ALICE, DD_BOB, MakeBot
from tests.scenario.harness import CHANNEL, BotHarness

ONCALL_CHANNEL = "C0SECOPS"
SCHEDULE = "PABC123"
T0 = datetime(2026, 7, 1, 8, 0, tzinfo=UTC)
FINDING = "b25jYWxsLWZpbmRpbmctMDAwMQ=="


def write_oncall(tmp_path: Path, *, mode: str = "confirm", source: str = "pagerduty", sid: str = SCHEDULE) -> str:
    """A TRIAGE_ONCALL file with one schedule."""
    path = tmp_path / "oncall.yaml"
    path.write_text(
        "schedules:\n"
        f"  - {{name: secops-primary, source: {source}, id: {sid}, channel: {ONCALL_CHANNEL}, mode: {mode}, "
        "grace: 15m, platforms: [datadog]}\npoll: 60s\n"
    )
    return str(path)


def seed_book(pd: PagerDutyFake | DatadogFake) -> None:
    """Alice, Bob and Carol are in Slack with these emails; Dave is not."""
    pd.book.add_person("PALICE", "alice@example.com", "Alice Analyst")
    pd.book.add_person("PBOB", "bob@example.com", "Bob Builder")
    pd.book.add_person("PCAROL", "carol@example.com", "Carol Contractor")
    pd.book.add_person("PDAVE", "dave@example.com", "Dave Nobody")


async def pd_bot(make_bot: MakeBot, tmp_path: Path, pd: PagerDutyFake, *, mode: str = "confirm") -> BotHarness:
    """The bot watching one PagerDuty schedule, Alice on call since before T0."""
    seed_book(pd)
    pd.book.on_call(SCHEDULE, ["PALICE"], start=T0 - timedelta(hours=8))
    return await make_bot(
        pagerduty_api_key=PD_KEY, pagerduty_api_url=pd.url, triage_oncall=write_oncall(tmp_path, mode=mode)
    )


def previews(slack: SlackFake, channel: str = ONCALL_CHANNEL) -> list[dict[str, Any]]:
    """Messages in ``channel`` carrying the handoff Confirm button."""
    return [
        m
        for m in slack.messages_in(channel)
        if any(
            e.get("action_id") == ActionId.HANDOFF_CONFIRM for b in m.get("blocks") or [] for e in b.get("elements", [])
        )
    ]


async def poll(bot: BotHarness, when: datetime) -> None:
    """One watcher poll at ``when``, then wait for the jobs it started."""
    await bot.svc.oncall.poll_once(when)
    await bot.settle(timeout=20)


async def test_first_poll_is_a_baseline(make_bot: MakeBot, tmp_path: Path, pagerduty_fake: PagerDutyFake) -> None:
    """The first poll records who is on call and hands nothing off."""
    bot = await pd_bot(make_bot, tmp_path, pagerduty_fake)
    await poll(bot, T0)
    assert await bot.svc.oncall.store.baseline("secops-primary") == ["alice@example.com"]
    assert bot.slack.messages_in(ONCALL_CHANNEL) == []
    assert await bot.svc.jobs.unfinished() == []


async def test_rotation_posts_preview_and_dms_then_receiver_confirms(
    make_bot: MakeBot, tmp_path: Path, pagerduty_fake: PagerDutyFake, datadog_fake: DatadogFake
) -> None:
    """A to B posts the preview in the channel and to both, once; Bob's Confirm moves Alice's finding to him."""
    datadog_fake.add_finding(FINDING, assignee_id=DD_ALICE)
    bot = await pd_bot(make_bot, tmp_path, pagerduty_fake)
    await poll(bot, T0)
    pagerduty_fake.book.rotate(SCHEDULE, ["PBOB"], at=T0 + timedelta(hours=1))
    await poll(bot, T0 + timedelta(hours=1, minutes=1))
    await poll(bot, T0 + timedelta(hours=1, minutes=2))
    [preview] = previews(bot.slack)
    assert "Shift change on *secops-primary*" in json.dumps(preview["blocks"])
    dms = {c.args.get("users") for c in bot.slack.calls_to("conversations.open")}
    assert {ALICE, BOB} <= dms
    await bot.click_on_card(ActionId.HANDOFF_CONFIRM, channel=ONCALL_CHANNEL, ts=preview["ts"], user=BOB)
    await bot.settle(timeout=20)
    assert datadog_fake.findings[FINDING]["assignee_id"] == DD_BOB
    ledger = await bot.svc.jobs.ledger_since(0)
    scheduled = [e for e in ledger if e.outcome == "scheduled"]
    assert len(scheduled) == 1 and scheduled[0].actor_id == SYSTEM_ACTOR
    assert "on-call schedule secops-primary" in scheduled[0].detail


async def test_only_from_to_or_admin_may_confirm(
    make_bot: MakeBot, tmp_path: Path, pagerduty_fake: PagerDutyFake, datadog_fake: DatadogFake
) -> None:
    """Carol, neither outgoing nor incoming, is refused at the door; the handoff still waits."""
    datadog_fake.add_finding(FINDING, assignee_id=DD_ALICE)
    bot = await pd_bot(make_bot, tmp_path, pagerduty_fake)
    await poll(bot, T0)
    pagerduty_fake.book.rotate(SCHEDULE, ["PBOB"], at=T0 + timedelta(hours=1))
    await poll(bot, T0 + timedelta(hours=1))
    [preview] = previews(bot.slack)
    await bot.click_on_card(ActionId.HANDOFF_CONFIRM, channel=ONCALL_CHANNEL, ts=preview["ts"], user=CAROL)
    await bot.settle()
    assert datadog_fake.findings[FINDING]["assignee_id"] == DD_ALICE
    assert any("or an admin" in str(r.get("text")) for r in bot.slack.responses), bot.slack.responses


async def test_concurrent_responders_hand_off_only_the_leaver(
    make_bot: MakeBot, tmp_path: Path, pagerduty_fake: PagerDutyFake, datadog_fake: DatadogFake
) -> None:
    """{Alice, Carol} to {Bob, Carol}: one handoff, Alice to Bob; Carol stays on call untouched."""
    datadog_fake.add_finding(FINDING, assignee_id=DD_ALICE)
    bot = await pd_bot(make_bot, tmp_path, pagerduty_fake)
    pagerduty_fake.book.on_call(SCHEDULE, ["PCAROL"], start=T0 - timedelta(hours=8))
    await poll(bot, T0)
    assert await bot.svc.oncall.store.baseline("secops-primary") == ["alice@example.com", "carol@example.com"]
    pagerduty_fake.book.rotate(SCHEDULE, ["PBOB", "PCAROL"], at=T0 + timedelta(hours=1))
    await poll(bot, T0 + timedelta(hours=1))
    scheduled = [e.job_id for e in await bot.svc.jobs.ledger_since(0) if e.outcome == "scheduled"]
    jobs = [await bot.svc.jobs.get(j or "") for j in scheduled]
    assert [(j.params.from_user, j.params.assignee) for j in jobs if j] == [(ALICE, BOB)]
    assert len(previews(bot.slack)) == 1


async def test_flip_back_within_grace_cancels(
    make_bot: MakeBot, tmp_path: Path, pagerduty_fake: PagerDutyFake, datadog_fake: DatadogFake
) -> None:
    """Auto mode: A to B, then back to A before the grace ends: cancelled, no reverse handoff, nothing written."""
    datadog_fake.add_finding(FINDING, assignee_id=DD_ALICE)
    bot = await pd_bot(make_bot, tmp_path, pagerduty_fake, mode="auto")
    await poll(bot, T0)
    t1 = T0 + timedelta(hours=1)
    pagerduty_fake.book.rotate(SCHEDULE, ["PBOB"], at=t1)
    await poll(bot, t1)
    pagerduty_fake.book.rotate(SCHEDULE, ["PALICE"], at=t1 + timedelta(minutes=5))
    await poll(bot, t1 + timedelta(minutes=5))
    await poll(bot, t1 + timedelta(minutes=30))
    assert len(previews(bot.slack)) == 1
    job = (await bot.svc.jobs.ledger_since(0))[0].job_id
    assert job is not None
    found = await bot.svc.jobs.get(job)
    assert found is not None and found.state is JobState.CANCELLED
    assert any("flipped back" in str(m.get("text")) for m in bot.slack.messages_in(ONCALL_CHANNEL))
    assert datadog_fake.findings[FINDING]["assignee_id"] == DD_ALICE
    assert datadog_fake.calls("/findings/assignee", method="PATCH") == []


async def test_auto_mode_applies_after_grace(
    make_bot: MakeBot, tmp_path: Path, pagerduty_fake: PagerDutyFake, datadog_fake: DatadogFake
) -> None:
    """Auto mode: the preview says when; nothing moves before the grace ends, everything after."""
    datadog_fake.add_finding(FINDING, assignee_id=DD_ALICE)
    bot = await pd_bot(make_bot, tmp_path, pagerduty_fake, mode="auto")
    await poll(bot, T0)
    t1 = T0 + timedelta(hours=1)
    pagerduty_fake.book.rotate(SCHEDULE, ["PBOB"], at=t1)
    await poll(bot, t1)
    [preview] = previews(bot.slack)
    assert "Hands off automatically at" in json.dumps(preview["blocks"])
    await poll(bot, t1 + timedelta(minutes=10))
    assert datadog_fake.findings[FINDING]["assignee_id"] == DD_ALICE
    await poll(bot, t1 + timedelta(minutes=16))
    assert datadog_fake.findings[FINDING]["assignee_id"] == DD_BOB
    assert await bot.svc.oncall.store.pending() == []


async def test_unmatched_person_is_named_with_the_fix(
    make_bot: MakeBot, tmp_path: Path, pagerduty_fake: PagerDutyFake
) -> None:
    """Dave has no Slack user: the channel is told who, and the command that fixes it; nothing is queued."""
    bot = await pd_bot(make_bot, tmp_path, pagerduty_fake)
    await poll(bot, T0)
    pagerduty_fake.book.rotate(SCHEDULE, ["PDAVE"], at=T0 + timedelta(hours=1))
    await poll(bot, T0 + timedelta(hours=1))
    await poll(bot, T0 + timedelta(hours=1, minutes=1))
    notes = [str(m.get("text")) for m in bot.slack.messages_in(ONCALL_CHANNEL)]
    assert len(notes) == 1 and "dave@example.com" in notes[0] and "/triage map" in notes[0]
    assert previews(bot.slack) == []


async def test_failing_source_hands_off_nothing_until_it_answers(
    make_bot: MakeBot, tmp_path: Path, pagerduty_fake: PagerDutyFake, datadog_fake: DatadogFake
) -> None:
    """403 names the missing permission in /readyz detail; 5xx and 429 are retried; no data is no change."""
    datadog_fake.add_finding(FINDING, assignee_id=DD_ALICE)
    bot = await pd_bot(make_bot, tmp_path, pagerduty_fake)
    await poll(bot, T0)
    pagerduty_fake.book.rotate(SCHEDULE, ["PBOB"], at=T0 + timedelta(hours=1))
    pagerduty_fake.fail("/oncalls", 403, body={"error": {"message": "Access Denied", "code": 2010}})
    await poll(bot, T0 + timedelta(hours=1))
    assert previews(bot.slack) == []
    ready = (await bot.http.get(f"{bot.url}/readyz")).json()
    assert "403" in ready["detail"]["oncall"]["secops-primary"]
    assert "oncalls.read" in ready["detail"]["oncall"]["secops-primary"]
    pagerduty_fake.fail("/oncalls", 500, times=10)
    await poll(bot, T0 + timedelta(hours=1, minutes=1))
    assert previews(bot.slack) == [] and await bot.svc.oncall.store.baseline("secops-primary") == ["alice@example.com"]
    pagerduty_fake.faults.clear()
    pagerduty_fake.fail("/oncalls", 429, body={"error": {"message": "Rate Limit Exceeded", "code": 2020}})
    await poll(bot, T0 + timedelta(hours=1, minutes=2))
    assert len(previews(bot.slack)) == 1
    assert bot.svc.oncall.status["secops-primary"].startswith("ok")


async def test_restart_between_change_and_confirm(
    make_bot: MakeBot,
    tmp_path: Path,
    pagerduty_fake: PagerDutyFake,
    datadog_fake: DatadogFake,
    slack_fake: SlackFake,
) -> None:
    """After a restart the change is not handed off again, and the old preview's Confirm still works."""
    datadog_fake.add_finding(FINDING, assignee_id=DD_ALICE)
    bot = await pd_bot(make_bot, tmp_path, pagerduty_fake)
    await poll(bot, T0)
    pagerduty_fake.book.rotate(SCHEDULE, ["PBOB"], at=T0 + timedelta(hours=1))
    await poll(bot, T0 + timedelta(hours=1))
    [preview] = previews(slack_fake)
    settings = bot.settings
    await bot.stop()
    again = await BotHarness(settings, slack_fake).start()
    try:
        await poll(again, T0 + timedelta(hours=1, minutes=1))
        assert len(previews(slack_fake)) == 1
        await again.click_on_card(ActionId.HANDOFF_CONFIRM, channel=ONCALL_CHANNEL, ts=preview["ts"], user=ALICE)
        await again.settle(timeout=20)
        assert datadog_fake.findings[FINDING]["assignee_id"] == DD_BOB
    finally:
        await again.stop()


async def test_datadog_schedule_rotation(make_bot: MakeBot, tmp_path: Path, datadog_fake: DatadogFake) -> None:
    """A Datadog On-Call schedule (responders endpoint, contract-checked) drives the same handoff."""
    datadog_fake.add_finding(FINDING, assignee_id=DD_ALICE)
    seed_book(datadog_fake)
    sid = "3653d3c6-0c75-11ea-ad28-fb5701eabc7d"
    datadog_fake.book.on_call(sid, ["PALICE"], start=T0 - timedelta(hours=8))
    bot = await make_bot(triage_oncall=write_oncall(tmp_path, source="datadog", sid=sid))
    await poll(bot, T0)
    datadog_fake.book.rotate(sid, ["PBOB"], at=T0 + timedelta(hours=1))
    await poll(bot, T0 + timedelta(hours=1))
    assert len(previews(bot.slack)) == 1
    assert datadog_fake.calls("/responders")[0].query["include"] == "responders.shifts.user"


async def test_oncall_command_shows_current_next_and_pending(
    make_bot: MakeBot, tmp_path: Path, pagerduty_fake: PagerDutyFake
) -> None:
    """`/triage oncall` answers with who is on call now and next, as mentions, and the pending handoff."""
    bot = await pd_bot(make_bot, tmp_path, pagerduty_fake)
    now = datetime.now(UTC)
    pagerduty_fake.book.rotate(SCHEDULE, ["PALICE"], at=now - timedelta(hours=1))
    pagerduty_fake.book.shifts[SCHEDULE][-1].end = now + timedelta(hours=2)
    pagerduty_fake.book.on_call(SCHEDULE, ["PBOB"], start=now + timedelta(hours=2))
    resp = await bot.command("oncall")
    assert "Checking the on-call schedules" in resp.text
    await bot.settle()
    text = str(bot.slack.responses[-1]["text"])
    assert f"on call now: <@{ALICE}>" in text and f"next: <@{BOB}>" in text
    resp = await bot.command("oncall nope")
    assert "no schedule `nope`" in resp.text
    assert CHANNEL
