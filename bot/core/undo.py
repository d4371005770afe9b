"""Undo: put back what one write changed, at most once, only if nothing changed it since.

A write's result offers an Undo button for ``TRIAGE_UNDO_SECONDS`` (the offer is kept in
the write's job, ``JobParams.undo``). ``UndoDesk.request`` is the door's side: it checks
the write can still be undone (an undoable verb, the window open, by its actor or an
admin, not undone before) and stores an ``undo`` job, so the undo is durable and in the
ledger like any write. ``undo_items`` is the worker's side: it reads each item now,
compares it with what the write left (its ``after``), and only then writes back its
``before`` (previous assignees, reopened or unmuted, the previous severity); an item that
changed since is left alone, saying who changed it or what it is now.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from bot import rules
from bot.core.service import ActionRequest, ActionService, AlreadyDone, Submitted
from bot.errors import ForbiddenError, UsageError
from bot.models import BatchResult, ItemResult, ItemState, Job, JobItem, JobParams, Outcome, Platform, Target, Verb
from bot.models import ItemStatus as IS
from bot.platforms.base import PlatformClient
from bot.store.jobs import JobStore

UNDOABLE = frozenset({Verb.ASSIGN, Verb.UNASSIGN, Verb.RESOLVE, Verb.SEVERITY})
_CHANGED = (IS.DONE, IS.WARNING)


def undo_key(job_id: str) -> str:
    """The interaction key of the one undo a write may have: a second one is a duplicate."""
    return f"undo:{job_id}"


def undoable_items(items: Sequence[JobItem]) -> list[JobItem]:
    """The items a write really changed (and so can put back)."""
    return [i for i in items if i.state in _CHANGED]


class UndoDesk:
    """The door's side of Undo: checks, then an ``undo`` job."""

    def __init__(self, *, jobs: JobStore, actions: ActionService, clock: Callable[[], float] = time.time) -> None:
        self.jobs = jobs
        self.actions = actions
        self.clock = clock

    async def request(self, request: ActionRequest, *, admin: bool) -> Submitted:
        """Store the undo of the write ``request.job_ref``; ``UserError`` saying why it cannot be undone."""
        write = await self.jobs.get(request.job_ref or "")
        if write is None or write.verb not in UNDOABLE:
            raise UsageError("That result cannot be undone.", verb=Verb.UNDO.value)
        if request.actor_id != write.actor_id and not admin:
            raise ForbiddenError(f"Only <@{write.actor_id}>, who made this change, or an admin may undo it.")
        earlier = await self.jobs.by_interaction_key(undo_key(write.id))
        if earlier is not None:
            raise AlreadyDone(f"<@{earlier.actor_id}> already undid this change.")
        offer = write.params.undo
        if offer is None or offer.closed or self.clock() > offer.until:
            raise UsageError("The time to undo this change is over; make the change you want instead.")
        items = undoable_items(await self.jobs.items(write.id))
        if not items:
            raise UsageError("Nothing in that result was changed, so there is nothing to undo.")
        undo = request.model_copy(
            update={
                "targets": [i.target for i in items],
                "params": JobParams(undo_of=write.id, actor_name=request.params.actor_name),
                "interaction_key": undo_key(write.id),
                "channel_id": write.channel_id or offer.channel,
                "card_ts": write.card_ts,
                "thread_ts": write.thread_ts or (offer.ts if not write.card_ts else None),
            }
        )
        return await self.actions.submit(undo)


def _names(value: str | None) -> str:
    return value or "nobody"


def _same(a: str | None, b: str | None) -> bool:
    return (a or "").lower() == (b or "").lower()


def _now(verb: Verb, platform: Platform, state: ItemState) -> tuple[str | None, bool]:
    """What ``state`` is in the terms of ``verb``'s ``after``, and whether it is still as the write left it."""
    if verb in (Verb.ASSIGN, Verb.UNASSIGN):
        now = ",".join(state.assignees) or None
        return now, True
    if verb is Verb.RESOLVE:
        if rules.CAPABILITIES[platform].mute:
            return ("muted" if state.muted else "not muted"), bool(state.muted)
        return state.status, not state.is_open
    return state.severity, True


async def _who_since(jobs: JobStore, target: Target, write: Job) -> str:
    for entry in await jobs.history(target, limit=10):
        if entry.job_id == write.id or entry.at < write.created_at:
            break
        if entry.outcome in ("done", "warning"):
            return f"<@{entry.actor_id}> {entry.verb} it since"
    return "it was changed outside the bot since"


async def _restore(verb: Verb, client: PlatformClient, target: Target, before: str | None, write: Job) -> BatchResult:
    note = f"undo of job {write.id}"
    if verb in (Verb.ASSIGN, Verb.UNASSIGN):
        previous = [a for a in (before or "").split(",") if a]
        if not previous:
            return await client.unassign([target])
        # One assignee is restored; a Kibana alert that had several gets the first back.
        return await client.assign([target], previous[0])
    if verb is Verb.RESOLVE:
        if (before or "").lower() == rules.vocabulary.KIBANA_ACKNOWLEDGED and rules.supports(target.platform, Verb.ACK):
            return await client.acknowledge([target])
        comment = None if rules.CAPABILITIES[target.platform].mute else note
        return await client.reopen([target], reason=None, comment=comment)
    if not before:
        return BatchResult.of(
            [ItemResult(target=target, outcome=Outcome.SKIPPED, detail="not undone: its previous severity is unknown")]
        )
    return await client.set_severity([target], before)


def _put_back(verb: Verb, platform: Platform, before: str | None) -> str:
    if verb is Verb.RESOLVE:
        return "unmuted" if rules.CAPABILITIES[platform].mute else f"reopened (it was {before or 'open'})"
    if verb is Verb.SEVERITY:
        return f"severity put back to {before}"
    return f"assignee put back to {_names(before)}"


async def undo_items(
    jobs: JobStore, job: Job, platform: Platform, client: PlatformClient, items: Sequence[JobItem]
) -> list[ItemResult]:
    """Read each item now and put back the write's ``before`` where the item is as the write left it."""
    write = await jobs.get(job.params.undo_of or "")
    if write is None:
        return [ItemResult(target=i.target, outcome=Outcome.FAILED, detail="the change to undo is gone") for i in items]
    was = {i.target.key: i for i in await jobs.items(write.id)}
    found = {t.key: s for t, s in (await client.fetch([i.target for i in items])).items()}
    await jobs.mark_items(job.id, [i.seq for i in items], IS.RUNNING)
    results: list[ItemResult] = []
    for item in items:
        target, before = item.target, was[item.target.key]
        state = found.get(target.key)
        if state is None:
            results.append(ItemResult(target=target, outcome=Outcome.NOT_FOUND, detail="not found any more"))
            continue
        now, as_left = _now(write.verb, platform, state)
        if not as_left or (write.verb in (Verb.ASSIGN, Verb.UNASSIGN, Verb.SEVERITY) and not _same(now, before.after)):
            who = await _who_since(jobs, target, write)
            detail = f"not undone: {who}; it is now {_names(now)}"
            results.append(ItemResult(target=target, outcome=Outcome.SKIPPED, detail=detail, before=now, after=now))
            continue
        result = (await _restore(write.verb, client, target, before.before, write)).items
        for r in result:
            done = r.outcome in (Outcome.DONE, Outcome.WARNING)
            detail = _put_back(write.verb, platform, before.before) if done else r.detail
            results.append(r.model_copy(update={"detail": detail, "before": now, "after": before.before}))
    return results
