"""The live-card registry: what a card showed, the live window, one reminder per item, and loop leases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from bot import rules
from bot.errors import ConfigError
from bot.models import ItemState, Platform, Target
from bot.settings import load_settings
from bot.store.cards import CardStore, changes, snapshot
from bot.store.db import Store

ITEM = Target(platform=Platform.XPANSE, id="7")


@pytest_asyncio.fixture
async def cards(tmp_path: Path, db_url: str) -> AsyncIterator[CardStore]:
    async with await Store.open(db_url) as s:
        yield CardStore(s)


async def test_a_redraw_keeps_the_posting_time_and_replaces_what_it_shows(cards: CardStore) -> None:
    """Recording the same card again updates its snapshot and update time, never its posting time."""
    await cards.record(channel="C1", ts="1.1", state=ItemState(target=ITEM, status="new"), now=100.0)
    await cards.record(channel="C1", ts="1.1", state=ItemState(target=ITEM, status="resolved"), now=200.0)
    card = await cards.get("C1", "1.1")
    assert card is not None and (card.posted_at, card.updated_at) == (100.0, 200.0)
    assert card.shown["status"] == "resolved"
    assert [c.ts for c in await cards.live(since=150.0)] == ["1.1"] and await cards.live(since=250.0) == []


async def test_one_reminder_per_item_and_a_failed_one_can_be_retried(cards: CardStore) -> None:
    """The reminder claim is taken once per item, whatever the card; an unclaimed one is due again."""
    await cards.record(channel="C1", ts="1.1", state=ItemState(target=ITEM), now=100.0)
    await cards.record(channel="C2", ts="2.2", state=ItemState(target=ITEM), now=100.0)
    first, second = await cards.unreminded(posted_before=150.0, since=0.0)
    assert await cards.claim_reminder(first, now=160.0)
    assert not await cards.claim_reminder(second, now=160.0)
    assert await cards.unreminded(posted_before=150.0, since=0.0) == []
    await cards.unclaim_reminder(ITEM)
    assert len(await cards.unreminded(posted_before=150.0, since=0.0)) == 2


async def test_the_lease_has_one_holder_until_it_lapses_or_is_released(cards: CardStore) -> None:
    """A second owner is refused while the lease holds, and gets it once it lapses or is released."""
    assert await cards.lease("loop", "a", now=0.0, lease_s=10.0)
    assert await cards.lease("loop", "a", now=5.0, lease_s=10.0)  # renewed
    assert not await cards.lease("loop", "b", now=14.0, lease_s=10.0)
    assert await cards.lease("loop", "b", now=16.0, lease_s=10.0)
    await cards.release("loop", "b")
    assert await cards.lease("loop", "a", now=17.0, lease_s=10.0)


def test_snapshot_compares_the_fields_a_card_shows() -> None:
    """Assignee order and letter case do not count as a change; status, case and mute do."""
    a = snapshot(ItemState(target=ITEM, assignees=["B@x", "a@x"], status="New", title="one"))
    b = snapshot(ItemState(target=ITEM, assignees=["a@x", "b@x"], status="new", title="two"))
    assert changes(a, b) == []
    c = snapshot(ItemState(target=ITEM, status="resolved", case="CASE-1", muted=True))
    assert changes(a, c) == ["assignees", "status", "case", "muted"]


def test_severity_order_per_platform() -> None:
    """Each platform's severities are ordered; unknown ones are never at or above the floor."""
    assert rules.vocabulary.severity_at_least(Platform.DATADOG, "Critical", "high")
    assert not rules.vocabulary.severity_at_least(Platform.KIBANA, "medium", "high")
    assert rules.vocabulary.severity_at_least(Platform.XPANSE, "high", "high")
    assert not rules.vocabulary.severity_at_least(Platform.DATADOG, "unknown", "info")


def test_reconcile_durations_read_like_the_readme() -> None:
    """24h, 5m, 90s and plain seconds are accepted; anything else is named at start."""
    s = load_settings(triage_reconcile_window="24h", triage_reconcile_interval="90s", triage_remind_after=600)
    assert (s.triage_reconcile_window, s.triage_reconcile_interval, s.triage_remind_after) == (86400, 90, 600)
    assert (load_settings().triage_reconcile_interval, load_settings().triage_remind_after) == (300, 1800)
    with pytest.raises(ConfigError, match="TRIAGE_REMIND_AFTER"):
        load_settings(triage_remind_after="soon")
