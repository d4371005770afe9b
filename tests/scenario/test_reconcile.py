"""Cards that stay true: the reconciler redraws cards whose item changed outside Slack, clock in hand."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.core.reconcile import Pass
from bot.metrics import CARDS_CHECKED, CARDS_UPDATED
from tests.fakes.datadog import DatadogFake
from tests.fakes.kibana import KibanaFake
from tests.fakes.slack import SlackFake
from tests.fakes.xpanse import XpanseFake
from tests.scenario.conftest import DD_BOB, KB_BOB, MakeBot
from tests.scenario.harness import CHANNEL, BotHarness
from tests.scenario.test_cards import field, show, updates_of
from tests.scenario.test_ingest import post_alert

F1 = "cmVjb25jaWxlLWZpbmRpbmctMDAwMQ=="
F2 = "cmVjb25jaWxlLWZpbmRpbmctMDAwMg=="
F3 = "cmVjb25jaWxlLWZpbmRpbmctMDAwMw=="


def now() -> datetime:
    return datetime.now(UTC)


def context_lines(message: dict[str, Any]) -> str:
    """The text of a card's context blocks (where the "changed outside Slack" line goes)."""
    return " ".join(e.get("text", "") for b in message["blocks"] if b["type"] == "context" for e in b["elements"])


async def run(bot: BotHarness, when: datetime) -> Pass:
    done = await bot.svc.reconciler.run_once(when)
    assert done is not None, "this replica did not get the reconciler's lease"
    return done


async def test_assignee_and_status_changed_in_xpanse_redraw_the_card_in_place(
    bot: BotHarness, slack_fake: SlackFake, xpanse_fake: XpanseFake
) -> None:
    """An incident assigned and moved on in Xpanse's own UI: one chat.update of the same card, with the line."""
    xpanse_fake.add_incident("5101", description="Exposed RDP", severity="high")
    ts = await show(bot, "xpanse:5101")
    incident = xpanse_fake.incidents["5101"]
    incident.assigned_user_mail, incident.assigned_user_pretty_name = "bob@example.com", "Bob Builder"
    incident.status = "under_investigation"
    posts = len(slack_fake.calls_to("chat.postMessage"))
    updated_before = CARDS_UPDATED.labels("xpanse")._value.get()

    done = await run(bot, now())

    assert (done.checked, done.updated, done.unread) == (1, 1, 0)
    assert len(updates_of(slack_fake, ts)) == 1
    card = slack_fake.message(CHANNEL, ts)
    assert card is not None and len(bot.cards()) == 1
    assert field(card, "Assignee") == "Bob Builder" and field(card, "Status") == "under_investigation"
    line = context_lines(card)
    assert "changed outside Slack" in line and "status new → under_investigation" in line
    assert "assignee → Bob Builder" in line and "<!date^" in line
    assert len(slack_fake.calls_to("chat.postMessage")) == posts  # in place: nothing new posted
    assert CARDS_UPDATED.labels("xpanse")._value.get() == updated_before + 1


async def test_unchanged_cards_cost_no_slack_call(
    bot: BotHarness, slack_fake: SlackFake, datadog_fake: DatadogFake, kibana_fake: KibanaFake
) -> None:
    """Cards whose items did not change are read but not touched: no Slack call at all."""
    datadog_fake.add_finding(F1, title="Public bucket", severity="high")
    kibana_fake.add_alert("kb-rec-1", severity="high")
    await show(bot, f"dd:{F1}")
    await show(bot, "kibana:kb-rec-1")
    calls = len(slack_fake.calls)
    checked_before = CARDS_CHECKED._value.get()

    done = await run(bot, now())

    assert (done.checked, done.updated) == (2, 0)
    assert len(slack_fake.calls) == calls
    assert CARDS_CHECKED._value.get() == checked_before + 2


async def test_kibana_status_and_datadog_mute_and_case_are_seen(
    bot: BotHarness, slack_fake: SlackFake, datadog_fake: DatadogFake, kibana_fake: KibanaFake
) -> None:
    """A Kibana alert closed in Kibana and a Datadog finding assigned there: each card redrawn with what changed."""
    kibana_fake.add_alert("kb-rec-2", space="secops", severity="critical")
    datadog_fake.add_finding(F2, title="SSH open", severity="critical")
    kb_ts = await show(bot, "kibana:secops/kb-rec-2")
    dd_ts = await show(bot, f"dd:{F2}")
    kibana_fake.alerts["secops"]["kb-rec-2"]["kibana.alert.workflow_status"] = "closed"
    kibana_fake.alerts["secops"]["kb-rec-2"]["kibana.alert.workflow_assignee_ids"] = [KB_BOB]
    datadog_fake.findings[F2]["assignee_id"] = DD_BOB

    done = await run(bot, now())

    assert done.updated == 2
    kb_card, dd_card = slack_fake.message(CHANNEL, kb_ts), slack_fake.message(CHANNEL, dd_ts)
    assert kb_card is not None and dd_card is not None
    assert field(kb_card, "Status") == "closed" and "status open → closed" in context_lines(kb_card)
    assert "assignee → " in context_lines(dd_card) and field(dd_card, "Assignee") != "_unassigned_"
    # A second pass finds them as they now show: nothing more to do.
    calls = len(slack_fake.calls)
    again = await run(bot, now())
    assert (again.checked, again.updated) == (2, 0) and len(slack_fake.calls) == calls


async def test_an_item_the_platform_no_longer_returns_is_left_as_is(
    bot: BotHarness, slack_fake: SlackFake, datadog_fake: DatadogFake
) -> None:
    """A failed or empty read never blanks a card: the card keeps what it showed."""
    datadog_fake.add_finding(F3, title="Open port", severity="high")
    ts = await show(bot, f"dd:{F3}")
    del datadog_fake.findings[F3]

    done = await run(bot, now())

    assert (done.checked, done.updated, done.unread) == (0, 0, 1)
    assert updates_of(slack_fake, ts) == []


async def test_live_window_and_batch_reads(make_bot: MakeBot, slack_fake: SlackFake, datadog_fake: DatadogFake) -> None:
    """Three Datadog cards are re-read in one findings query; past TRIAGE_RECONCILE_WINDOW none is read."""
    bot = await make_bot(triage_reconcile_window="1h")
    for fid in (F1, F2, F3):
        datadog_fake.add_finding(fid, title=f"finding {fid[-4:]}", severity="medium")
    for fid in (F1, F2, F3):
        await show(bot, f"dd:{fid}")
    for fid in (F1, F2, F3):
        datadog_fake.findings[fid]["status"] = "auto_closed"
    datadog_fake.requests.clear()

    done = await run(bot, now())

    assert done.updated == 3
    reads = [r for r in datadog_fake.requests if "findings" in r.path]
    assert len(reads) == 1, [r.path for r in datadog_fake.requests]
    datadog_fake.requests.clear()
    later = await run(bot, now() + timedelta(hours=2))
    assert later == Pass() and datadog_fake.requests == []


async def test_one_replica_at_a_time_holds_the_lease(
    make_bot: MakeBot, slack_fake: SlackFake, xpanse_fake: XpanseFake
) -> None:
    """Two replicas on one database: only the lease holder reconciles, until its lease lapses."""
    first = await make_bot()
    second = await make_bot(triage_db=first.settings.triage_db)
    xpanse_fake.add_incident("5102", severity="medium")
    ts = await show(first, "xpanse:5102")
    xpanse_fake.incidents["5102"].status = "under_investigation"
    t0 = now()

    assert await first.svc.reconciler.run_once(t0) is not None
    assert await second.svc.reconciler.run_once(t0 + timedelta(seconds=5)) is None
    assert len(updates_of(slack_fake, ts)) == 1
    lapsed = t0 + timedelta(seconds=first.svc.reconciler.lease_s + 1)
    taken = await second.svc.reconciler.run_once(lapsed)
    assert taken is not None and taken.updated == 0  # the card is already true
    assert await first.svc.reconciler.run_once(lapsed) is None


async def test_an_ingested_alert_card_is_kept_true_too(
    bot: BotHarness, slack_fake: SlackFake, xpanse_fake: XpanseFake
) -> None:
    """A card the alert poster posted is registered: a change in Xpanse redraws it."""
    xpanse_fake.add_incident("5103", description="Exposed SMB", severity="high")
    body = {"id": "5103", "description": "Exposed SMB", "severity": "high", "status": "new"}
    assert (await post_alert(bot, "xpanse", body)).status_code == 202
    await bot.posted()
    (card,) = bot.cards(CHANNEL)
    xpanse_fake.incidents["5103"].assigned_user_mail = "bob@example.com"

    done = await run(bot, now())

    assert done.updated == 1
    redrawn = slack_fake.message(CHANNEL, card["ts"])
    assert redrawn is not None and "bob@example.com" in field(redrawn, "Assignee")


async def test_alert_ingested_again_after_a_restart_updates_its_card(make_bot: MakeBot, slack_fake: SlackFake) -> None:
    """Same platform and id delivered to a restarted bot (same database): the one card is redrawn, none added."""
    first = await make_bot()
    body = {"id": "5104", "description": "Exposed FTP", "severity": "medium"}
    assert (await post_alert(first, "xpanse", body)).status_code == 202
    await first.posted()
    (card,) = first.cards(CHANNEL)
    await first.stop()

    again = await make_bot(triage_db=first.settings.triage_db)
    resp = await post_alert(again, "xpanse", {**body, "severity": "high"})
    assert resp.json()["accepted"][0]["outcome"] == "updated"
    await again.posted()

    (only,) = again.cards(CHANNEL)
    assert only["ts"] == card["ts"] and "high" in json.dumps(only["blocks"]).lower()
