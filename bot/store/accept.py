"""Accepting a job: the acknowledgement path's one write, as one transaction.

``accept`` runs inside ``Store.write_now`` as one synchronous transaction body of
prepared statements on the driver's cursor (``bot.store.raw``): the redelivery check,
the "same change in flight or just made" check and the insert of the job and its
items commit together. Across replicas the database decides: the interaction key is unique (a
second insert of one delivery does nothing), and a single-item change first locks
its item's row in ``item_guards`` (a PostgreSQL row lock; SQLite's write lock is
already held), so of two replicas accepting the same change at once the second
waits, then sees the first's job and answers "already being handled".
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel

from bot.models import IDEMPOTENT_VERBS, ItemStatus, Job, JobParams, JobState, Target, Verb
from bot.store.db import dialect_insert
from bot.store.ledger import LATEST_CHANGE, recent_from_row
from bot.store.raw import Prepared, Raw
from bot.store.tables import item_guards, job_items, jobs

# A second identical request inside this window is answered "already …" instead of run.
DUPLICATE_WINDOW_S = 60.0


# Statements of the acknowledgement path, built once (``:name`` parameters bound per request).
IN_FLIGHT = (
    sa.select(jobs, job_items.c.seq.label("item_seq"))
    .select_from(job_items.join(jobs, jobs.c.id == job_items.c.job_id))
    .where(
        job_items.c.target == sa.bindparam("target"),
        job_items.c.state.in_((ItemStatus.PENDING.value, ItemStatus.RUNNING.value)),
        jobs.c.verb == sa.bindparam("verb"),
        jobs.c.state.in_((JobState.QUEUED.value, JobState.RUNNING.value)),
    )
    .order_by(jobs.c.created_at)
    .limit(1)
)
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
_BY_KEY = Prepared.of(sa.select(jobs.c.id).where(jobs.c.interaction_key == sa.bindparam("key")))
_IN_FLIGHT = Prepared.of(IN_FLIGHT)
_LATEST_CHANGE = Prepared.of(LATEST_CHANGE)
_INSERT_ITEMS = Prepared.of(sa.insert(job_items), keys=_ITEM_COLUMNS)
# Insert the job unless its key exists, returning it; lock (upsert) the item's guard row.
_INSERT_JOB = Prepared(
    lambda dialect: dialect_insert(dialect, jobs).on_conflict_do_nothing().returning(*jobs.c), keys=_JOB_COLUMNS
)


def _guard(dialect: str) -> Any:
    guard = dialect_insert(dialect, item_guards)
    return guard.on_conflict_do_update(index_elements=["target"], set_={"at": guard.excluded.at})


_LOCK_GUARD = Prepared(_guard, keys=("target", "at"))


class DuplicateDelivery(BaseModel):
    """Slack delivered the same interaction again (a retry): the first delivery's job stands."""

    interaction_key: str | None = None


class SameChange(BaseModel):
    """The same change is queued, running, or was just made; ``message`` says by whom and when."""

    message: str


class Submission(BaseModel):
    """Everything a new job is stored with."""

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


def accept(conn: Raw, job_id: str, sub: Submission) -> Job | DuplicateDelivery | SameChange:
    """Store ``sub`` as job ``job_id`` unless it repeats one (the caller holds the transaction).

    ``from_card``: a card button, also refused when someone else made the same change
    (to someone else) moments ago, so the second click is told who got there first.
    """
    key = sub.interaction_key
    if key and conn.first(_BY_KEY, {"key": key}) is not None:
        return DuplicateDelivery(interaction_key=key)
    same = _same_change(conn, sub)
    if same is not None:
        return SameChange(message=same)
    now = time.time()
    values = {
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
        "interaction_key": key,
        "params": sub.params.model_dump_json(),
        "created_at": now,
        "updated_at": now,
    }
    row = conn.first(_INSERT_JOB, values)
    if row is None:
        return DuplicateDelivery(interaction_key=key)
    if sub.targets:
        conn.execute_many(_INSERT_ITEMS, item_rows(job_id, sub.targets, start=0, now=now))
    return job_from_row(row)


def _same_change(conn: Raw, sub: Submission) -> str | None:
    """Why this exact change must not be stored again (in flight, or just made), or None.

    Only single-item requests of idempotent verbs are checked; the rest rely on the
    unique interaction key.
    """
    verb, targets = sub.verb, sub.targets
    if verb not in IDEMPOTENT_VERBS or len(targets) != 1:
        return None
    target = targets[0]
    # Lock the item's guard row for the rest of this transaction: concurrent accepts of this
    # item (on any replica) wait here, and then see this one's job.
    conn.execute(_LOCK_GUARD, {"target": target.key, "at": time.time()})
    wanted = sub.params.assignee if verb is Verb.ASSIGN else None
    row = conn.first(_IN_FLIGHT, {"target": target.key, "verb": verb.value})
    if row is not None:
        job = job_from_row(row)
        if job.params.assignee == wanted or verb is not Verb.ASSIGN or sub.from_card:
            ago = time.time() - job.created_at
            return (
                f"{target.key} is already being handled: <@{job.actor_id}> asked to "
                f"{job.verb.phrase(job.params.assignee)} {ago:.0f} s ago"
            )
    latest_row = conn.first(_LATEST_CHANGE, {"target": target.key})
    latest = recent_from_row(latest_row, within=DUPLICATE_WINDOW_S)
    if latest is None or latest.entry.verb != verb.value:
        return None
    if wanted is not None and latest.assignee != wanted and not sub.from_card:
        return None
    ago = time.time() - latest.entry.at
    to = f" to <@{latest.assignee}>" if verb is Verb.ASSIGN and latest.assignee else ""
    return f"{target.key} was already {verb.past}{to} by <@{latest.entry.actor_id}> {ago:.0f} s ago"
