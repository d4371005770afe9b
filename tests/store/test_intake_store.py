"""The alert intake store: alerts stored once, channel leases, Retry-After, moves and digests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from bot.models import ItemState, Platform, Target
from bot.store.db import Store
from bot.store.intake import CARDED, DIGESTED, DIGESTING, POSTING, WAITING, IntakeStore

A = Target(platform=Platform.DATADOG, id="a1")
B = Target(platform=Platform.KIBANA, id="b1", space="sec")
C = Target(platform=Platform.XPANSE, id="7")


@pytest_asyncio.fixture
async def intake(tmp_path: Path, db_url: str) -> AsyncIterator[IntakeStore]:
    async with await Store.open(db_url) as s:
        yield IntakeStore(s)


async def test_an_alert_is_stored_once_and_a_redelivery_updates_it(intake: IntakeStore) -> None:
    """A new alert is queued, the same one again is unchanged, a changed one is updated, in batch order."""
    first = await intake.accept([(ItemState(target=B, severity="low"), "C1"), (ItemState(target=A), "C1")])
    assert [(a.target, a.outcome) for a in first] == [(B, "queued"), (A, "queued")]
    again = await intake.accept(
        [(ItemState(target=A), "C1"), (ItemState(target=B, severity="high"), "C1"), (ItemState(target=C), "C2")]
    )
    assert [a.outcome for a in again] == ["unchanged", "updated", "queued"]
    (waiting_b,) = [q for q in await intake.in_status("C1", WAITING) if q.target == B]
    assert waiting_b.state.severity == "high" and waiting_b.change_note is None  # not in Slack yet: no note
    assert sorted(await intake.channels()) == ["C1", "C2"]


async def test_a_batch_may_carry_the_same_alert_twice(intake: IntakeStore) -> None:
    """The second copy in one batch is compared with the first, as if it came later."""
    done = await intake.accept([(ItemState(target=A, status="new"), "C1"), (ItemState(target=A, status="ack"), "C1")])
    assert [a.outcome for a in done] == ["queued", "updated"]
    (queued,) = await intake.in_status("C1", WAITING)
    assert queued.state.status == "ack"


async def test_a_change_to_a_carded_alert_leaves_a_note_until_it_is_redrawn(intake: IntakeStore) -> None:
    """Changes to a card in Slack accumulate into one note, cleared only by the redraw of that note."""
    await intake.accept([(ItemState(target=A, severity="low"), "C1")])
    await intake.move([A], POSTING)
    await intake.move([A], CARDED, card_ts="1.1")
    await intake.accept([(ItemState(target=A, severity="high"), "C1")])
    await intake.accept([(ItemState(target=A, severity="high", status="ack"), "C1")])
    (changed,) = await intake.changed("C1")
    assert changed.card_ts == "1.1" and changed.change_note == "severity low → high; status — → ack"
    await intake.noted(A, "severity low → high")  # an older note: a newer change is kept
    assert len(await intake.changed("C1")) == 1
    await intake.noted(A, "severity low → high; status — → ack")
    assert await intake.changed("C1") == []


async def test_moves_stamp_the_attempt_and_keep_what_they_are_not_given(intake: IntakeStore) -> None:
    """Posting stamps the attempt time; carding without a ts keeps the one recorded."""
    await intake.accept([(ItemState(target=A), "C1"), (ItemState(target=C), "C1")])
    await intake.move([], POSTING)
    await intake.move([A, C], POSTING, card_ts="1.1")
    posting = await intake.in_status("C1", POSTING)
    assert len(posting) == 2 and all(q.attempt_at is not None and q.card_ts == "1.1" for q in posting)
    await intake.move([A], CARDED)
    (carded,) = await intake.in_status("C1", CARDED)
    assert carded.card_ts == "1.1" and carded.attempt_at == posting[0].attempt_at
    assert await intake.count_waiting("C1") == 0


async def test_one_poster_leases_a_channel_until_it_releases_it(intake: IntakeStore) -> None:
    """Only channels with work are leased, by one owner at a time; a release frees it at once."""
    assert await intake.claim_channels("p1", lease_s=30.0) == []
    await intake.accept([(ItemState(target=A), "C1"), (ItemState(target=C), "C2")])
    await intake.move([C], CARDED)
    assert await intake.claim_channels("p1", lease_s=30.0) == ["C1"]
    assert await intake.claim_channels("p2", lease_s=30.0) == []
    assert await intake.renew("C1", "p1", lease_s=30.0) and not await intake.renew("C1", "p2", lease_s=30.0)
    await intake.release("C1", "p2")  # not theirs: nothing happens
    assert await intake.claim_channels("p2", lease_s=30.0) == []
    await intake.release("C1", "p1")
    assert await intake.claim_channels("p2", lease_s=30.0) == ["C1"]


async def test_an_expired_lease_is_taken_over(intake: IntakeStore) -> None:
    """A lease that lapsed (its poster died) goes to the next poster that asks."""
    await intake.accept([(ItemState(target=A), "C1")])
    assert await intake.claim_channels("p1", lease_s=-1.0) == ["C1"]
    assert await intake.claim_channels("p2", lease_s=30.0) == ["C1"]
    assert not await intake.renew("C1", "p1", lease_s=30.0)


async def test_retry_after_only_ever_moves_later(intake: IntakeStore) -> None:
    """A channel's block is the latest Retry-After seen; unknown channels are not blocked."""
    assert await intake.blocked_until("C1") == 0.0
    await intake.accept([(ItemState(target=A), "C1")])
    await intake.block("C1", 200.0)
    await intake.block("C1", 150.0)
    assert await intake.blocked_until("C1") == 200.0


async def test_a_digest_lists_its_alerts_until_posted_or_abandoned(intake: IntakeStore) -> None:
    """A digest holds its rows in order; posting marks its alerts digested, abandoning lets them wait again."""
    await intake.accept([(ItemState(target=A), "C1"), (ItemState(target=B), "C1"), (ItemState(target=C), "C1")])
    posted = await intake.new_digest("C1", [(A, "high", "one"), (B, "", "two")])
    assert [(r.seq, r.target, r.severity, r.title) for r in await intake.digest_rows(posted)] == [
        (0, A, "high", "one"),
        (1, B, "", "two"),
    ]
    assert {q.target for q in await intake.in_status("C1", DIGESTING)} == {A, B}
    assert await intake.digest_channel(posted) == ("C1", None)
    await intake.digest_posted(posted, "9.9")
    assert await intake.digest_channel(posted) == ("C1", "9.9")
    assert {q.digest_id for q in await intake.in_status("C1", DIGESTED)} == {posted}

    dropped = await intake.new_digest("C1", [(C, "", "three")])
    await intake.digest_abandoned(dropped)
    (waiting,) = await intake.in_status("C1", WAITING)
    assert waiting.target == C and waiting.digest_id is None
    assert await intake.digest_rows(dropped) == [] and await intake.digest_channel(dropped) is None


async def test_stats_count_what_is_not_yet_in_slack(intake: IntakeStore) -> None:
    """Per channel: alerts waiting, posting or digesting, and the receipt time of the oldest."""
    assert await intake.stats() == {}
    await intake.accept([(ItemState(target=A), "C1"), (ItemState(target=B), "C1"), (ItemState(target=C), "C2")])
    await intake.move([C], CARDED)
    stats = await intake.stats()
    assert set(stats) == {"C1"} and stats["C1"][0] == 2 and isinstance(stats["C1"][1], float)


async def test_replicas_on_one_database_store_an_alert_once_and_split_the_channels(tmp_path: Path, db_url: str) -> None:
    """Two stores on one database accepting the same alerts at once queue each once; their posters
    never both lease a channel."""
    async with await Store.open(db_url) as one, await Store.open(db_url) as two:
        left, right = IntakeStore(one), IntakeStore(two)
        batch = [(ItemState(target=Target(platform=Platform.XPANSE, id=str(n))), f"C{n % 5}") for n in range(40)]
        results = await asyncio.gather(left.accept(batch), right.accept(list(reversed(batch))))
        outcomes = [a.outcome for done in results for a in done]
        assert outcomes.count("queued") == 40 and outcomes.count("unchanged") == 40
        mine, theirs = await asyncio.gather(
            left.claim_channels("p1", lease_s=30.0), right.claim_channels("p2", lease_s=30.0)
        )
        assert not set(mine) & set(theirs) and sorted(mine + theirs) == [f"C{n}" for n in range(5)]
