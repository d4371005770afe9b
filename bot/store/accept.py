"""Accepting a job: the acknowledgement path's one write, as one transaction.

``accept`` runs inside ``Store.write_now`` as one synchronous transaction body of
prepared statements on the driver's cursor (``bot.store.raw``): the redelivery check,
the "same change in flight or just made" check and the insert of the job and its
items commit together. Across replicas the database decides: the interaction key is
unique (a second insert of one delivery does nothing), and a single-item change first
takes its item's lock on PostgreSQL (a transaction-scoped advisory lock; on SQLite
``BEGIN IMMEDIATE`` already holds the database's write lock), so of two
replicas accepting the same change at once the second waits, then sees the first's
job and answers "already being handled". On PostgreSQL the whole write is one call of
a stored function (``bot.store.functions``), since there each statement is a round
trip while Slack waits.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel

from bot.models import IDEMPOTENT_VERBS, ItemStatus, Job, JobParams, JobState, Target, Verb
from bot.store.db import Store
from bot.store.functions import ACCEPT, ACCEPT_ARGS
from bot.store.ledger import RecentChange, recent_from_row
from bot.store.raw import Call, Prepared, Raw
from bot.store.statements import BY_KEY, IN_FLIGHT, LATEST_CHANGE, dialect_insert
from bot.store.tables import job_items, jobs

# A second identical request inside this window is answered "already …" instead of run.
DUPLICATE_WINDOW_S = 60.0


_JOB_COLUMNS = (
    "id",
    "verb",
    "state",
    "team_id",
    "actor_id",
    "channel_id",
    "card_ts",
    "thread_ts",
    "response_url",
    "source",
    "interaction_key",
    "params",
    "created_at",
    "updated_at",
)
_ITEM_COLUMNS = ("job_id", "seq", "platform", "target", "space", "item_id", "state", "updated_at")
_BY_KEY = Prepared.of(BY_KEY)
_IN_FLIGHT = Prepared.of(IN_FLIGHT)
_LATEST_CHANGE = Prepared.of(LATEST_CHANGE)
_INSERT_ITEMS = Prepared.of(sa.insert(job_items), keys=_ITEM_COLUMNS)
# Insert the job unless its key exists (the row count says which).
_INSERT_JOB = Prepared(lambda dialect: dialect_insert(dialect, jobs).on_conflict_do_nothing(), keys=_JOB_COLUMNS)

# PostgreSQL: the whole write as one call of ``triage_accept`` (``bot.store.functions``).
_PG_TYPES: dict[str, Any] = {
    "text": sa.Text(),
    "double precision": sa.Float(),
    "text[]": sa.ARRAY(sa.Text()),
    "boolean": sa.Boolean(),
}
_ACCEPT = Prepared.of(
    sa.select(
        getattr(sa.func, ACCEPT)(*(sa.bindparam(name, type_=_PG_TYPES[kind]) for name, kind in ACCEPT_ARGS)).label(
            "accepted"
        )
    )
)


class DuplicateDelivery(BaseModel):
    """Slack delivered the same interaction again (a retry): the first delivery's job stands."""

    interaction_key: str | None = None


class SameChange(BaseModel):
    """The same change is queued, running, or was just made; ``message`` says by whom and when."""

    message: str


@dataclass(frozen=True, slots=True)
class Submission:
    """Everything a new job is stored with (built from a request already validated at its edge)."""

    verb: Verb
    team_id: str
    actor_id: str
    targets: list[Target]
    params: JobParams
    source: str
    from_card: bool = False
    channel_id: str | None = None
    card_ts: str | None = None
    thread_ts: str | None = None
    response_url: str | None = None
    interaction_key: str | None = None
    state: JobState = JobState.QUEUED


def job_from_row(row: Mapping[Any, Any]) -> Job:
    """A ``jobs`` row as a ``Job``."""
    data = dict(row)  # columns the model does not name (claims, the item's seq) are ignored
    data["params"] = JobParams.model_validate_json(data["params"])
    return Job.model_validate(data)


def item_rows(job_id: str, targets: Iterable[Target], *, start: int, now: float) -> list[dict[str, Any]]:
    """``job_items`` rows for ``targets`` as pending items numbered from ``start``."""
    return [
        {
            "job_id": job_id,
            "seq": start + n,
            "platform": t.platform.value,
            "target": t.key,
            "space": t.space,
            "item_id": t.id,
            "state": ItemStatus.PENDING.value,
            "updated_at": now,
        }
        for n, t in enumerate(targets)
    ]


def _checked(sub: Submission) -> Target | None:
    """The item a request is checked for the same change on: single-item requests of idempotent verbs."""
    return sub.targets[0] if sub.verb in IDEMPOTENT_VERBS and len(sub.targets) == 1 else None


def _job_values(job_id: str, sub: Submission, now: float) -> dict[str, Any]:
    return {
        "id": job_id,
        "verb": sub.verb.value,
        "state": sub.state.value,
        "team_id": sub.team_id,
        "actor_id": sub.actor_id,
        "channel_id": sub.channel_id,
        "card_ts": sub.card_ts,
        "thread_ts": sub.thread_ts,
        "response_url": sub.response_url,
        "source": sub.source,
        "interaction_key": sub.interaction_key,
        "params": sub.params.model_dump_json(),
        "created_at": now,
        "updated_at": now,
    }


def _wanted(sub: Submission) -> str | None:
    return sub.params.assignee if sub.verb is Verb.ASSIGN else None


async def store_job(store: Store, job_id: str, sub: Submission) -> Job | DuplicateDelivery | SameChange:
    """Store ``sub`` as job ``job_id`` unless it repeats one, as one urgent write (``Store.write_now``).

    On PostgreSQL the write is one call of the stored function (``accept_call``), on SQLite
    the same statements and decisions run here in one transaction body (``accept``).
    """
    if store.dialect == "postgresql":
        return await store.call_now(accept_call(job_id, sub))
    return await store.write_now(lambda conn: accept(conn, job_id, sub))


def accept_call(job_id: str, sub: Submission) -> Call[Job | DuplicateDelivery | SameChange]:
    """``accept`` as one call of ``triage_accept`` on PostgreSQL, and how its answer is read."""
    now = time.time()
    target = _checked(sub)
    values = _job_values(job_id, sub, now)
    params = {
        **values,
        "platforms": [t.platform.value for t in sub.targets],
        "targets": [t.key for t in sub.targets],
        "spaces": [t.space for t in sub.targets],
        "item_ids": [t.id for t in sub.targets],
        "item_state": ItemStatus.PENDING.value,
        "check": target is not None,
        "assign": sub.verb is Verb.ASSIGN,
        "from_card": sub.from_card,
        "wanted": _wanted(sub),
        "since": now - DUPLICATE_WINDOW_S,
    }

    def answer(found: Any) -> Job | DuplicateDelivery | SameChange:  # the json object, decoded by the driver
        outcome, row = found["outcome"], found.get("row")
        if outcome == "stored":  # the row is ``values`` as inserted: built from them, as on SQLite
            return _stored_job(values, sub)
        if outcome == "duplicate" or target is None:
            return DuplicateDelivery(interaction_key=sub.interaction_key)
        if outcome == "in_flight":
            return SameChange(message=_in_flight(target, job_from_row(row)))
        latest = recent_from_row(row, within=None)
        assert latest is not None
        return SameChange(message=_just_made(target, sub.verb, latest))

    return Call(_ACCEPT, params, answer)


def accept(conn: Raw, job_id: str, sub: Submission) -> Job | DuplicateDelivery | SameChange:
    """Store ``sub`` as job ``job_id`` unless it repeats one, on SQLite (the caller holds the
    ``BEGIN IMMEDIATE`` transaction; PostgreSQL runs the same decisions in ``triage_accept``).

    Only single-item requests of idempotent verbs are checked for the same change (in
    flight, or just made); a repeated delivery of any request is caught by the unique
    interaction key, when its job is inserted. ``from_card``: a card button, also
    refused when someone else made the same change (to someone else) moments ago, so
    the second click is told who got there first.
    """
    key = sub.interaction_key
    target = _checked(sub)
    if target is not None:
        if key and conn.first(_BY_KEY, {"key": key}) is not None:
            return DuplicateDelivery(interaction_key=key)
        same = _same_change(conn, sub, target)
        if same is not None:
            return SameChange(message=same)
    now = time.time()
    values = _job_values(job_id, sub, now)
    if conn.count(_INSERT_JOB, values) == 0:  # the key is another job's
        return DuplicateDelivery(interaction_key=key)
    if sub.targets:
        conn.execute_many(_INSERT_ITEMS, item_rows(job_id, sub.targets, start=0, now=now))
    return _stored_job(values, sub)


def _stored_job(values: Mapping[str, Any], sub: Submission) -> Job:
    """The job just inserted from ``values``, built from them instead of read back (its ``params``
    are the submission's model itself, not its JSON parsed again)."""
    return Job.model_validate({**values, "params": sub.params})


def _same_change(conn: Raw, sub: Submission, target: Target) -> str | None:
    """Why this exact change must not be stored again (in flight, or just made), or None.

    The transaction holds the database's write lock from its start: concurrent accepts of
    this item (in any process) wait for it, and then see this one's job.
    """
    verb, wanted = sub.verb, _wanted(sub)
    row = conn.first(_IN_FLIGHT, {"target": target.key, "verb": verb.value})
    if row is not None:
        job = job_from_row(row)
        if job.params.assignee == wanted or verb is not Verb.ASSIGN or sub.from_card:
            return _in_flight(target, job)
    latest = recent_from_row(conn.first(_LATEST_CHANGE, {"target": target.key}), within=DUPLICATE_WINDOW_S)
    if latest is None or latest.entry.verb != verb.value:
        return None
    if wanted is not None and latest.assignee != wanted and not sub.from_card:
        return None
    return _just_made(target, verb, latest)


def _in_flight(target: Target, job: Job) -> str:
    ago = time.time() - job.created_at
    return (
        f"{target.key} is already being handled: <@{job.actor_id}> asked to "
        f"{job.verb.phrase(job.params.assignee)} {ago:.0f} s ago"
    )


def _just_made(target: Target, verb: Verb, latest: RecentChange) -> str:
    ago = time.time() - latest.entry.at
    to = f" to <@{latest.assignee}>" if verb is Verb.ASSIGN and latest.assignee else ""
    return f"{target.key} was already {verb.past}{to} by <@{latest.entry.actor_id}> {ago:.0f} s ago"
