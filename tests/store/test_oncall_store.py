"""OnCallStore: baselines, the at-most-once claim, and pending rows."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from bot.store.db import Store
from bot.store.oncall import CANCELLED, PENDING, OnCallHandoff, OnCallStore


async def claim(
    store: OnCallStore, *, schedule: str = "secops-primary", shift_start: str = "2026-07-01T09:00:00Z"
) -> OnCallHandoff | None:
    """Claim Alice-to-Bob on ``schedule`` at ``shift_start``."""
    return await store.claim(schedule=schedule, shift_start=shift_start, from_email="a@x", to_email="b@x")


@pytest_asyncio.fixture
async def oncall(tmp_path: Path, db_url: str) -> AsyncIterator[OnCallStore]:
    """An OnCallStore over a fresh database."""
    store = await Store.open(db_url)
    try:
        yield OnCallStore(store)
    finally:
        await store.close()


async def test_baseline_is_none_until_set_then_sorted(oncall: OnCallStore) -> None:
    """No baseline before the first poll; an empty list (nobody on call) is a baseline too."""
    assert await oncall.baseline("secops-primary") is None
    await oncall.set_baseline("secops-primary", ["b@x", "a@x"])
    assert await oncall.baseline("secops-primary") == ["a@x", "b@x"]
    await oncall.set_baseline("secops-primary", [])
    assert await oncall.baseline("secops-primary") == []


async def test_claim_is_at_most_once_per_change(oncall: OnCallStore) -> None:
    """The same (schedule, shift start, from, to) is claimed once, even after the row was cancelled."""
    row = await claim(oncall)
    assert row is not None and row.state == PENDING and row.due_at is None
    assert await claim(oncall) is None
    await oncall.update(row.id, state=CANCELLED, detail="the rotation flipped back")
    assert await claim(oncall) is None
    other = await claim(oncall, shift_start="2026-07-01T21:00:00Z")
    assert other is not None and other.id != row.id


async def test_pending_lists_only_open_rows_per_schedule(oncall: OnCallStore) -> None:
    """pending() leaves out decided rows and filters by schedule; update keeps fields not given."""
    first = await claim(oncall)
    second = await claim(oncall, schedule="secops-backup")
    assert first is not None and second is not None
    await oncall.update(first.id, job_id="job-1")
    assert [r.id for r in await oncall.pending()] == [first.id, second.id]
    assert [r.job_id for r in await oncall.pending("secops-primary")] == ["job-1"]
    await oncall.update(first.id, state=CANCELLED)
    assert [r.id for r in await oncall.pending()] == [second.id]
    got = await oncall.get(first.id)
    assert got is not None and got.job_id == "job-1" and got.state == CANCELLED
