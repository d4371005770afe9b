"""Accepting a job: the acknowledgement path's one write, as one synchronous transaction body.

``accept`` runs inside ``Store.write_now`` on the database thread: the redelivery
check, the "same change in flight or just made" check and the insert of the job and
its items happen in one ``BEGIN IMMEDIATE`` transaction and one hop to that thread,
so two replicas cannot both accept one change and the ack waits on no round trips.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel

from bot.models import IDEMPOTENT_VERBS, ItemStatus, Job, JobParams, JobState, Target, Verb
from bot.store.ledger import LATEST_CHANGE_SQL, recent_from_row

# A second identical request inside this window is answered "already …" instead of run.
DUPLICATE_WINDOW_S = 60.0

_IN_FLIGHT_SQL = (
    "SELECT j.* FROM job_items i JOIN jobs j ON j.id = i.job_id"
    " WHERE i.target = ? AND i.state IN ('pending','running') AND j.verb = ?"
    " AND j.state IN ('queued','running') ORDER BY j.created_at LIMIT 1"
)
_INSERT_JOB = (
    "INSERT OR IGNORE INTO jobs (id, verb, state, team_id, actor_id, channel_id, card_ts,"
    " thread_ts, response_url, source, interaction_key, params, created_at, updated_at)"
    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
)
INSERT_ITEMS = (
    "INSERT INTO job_items (job_id, seq, platform, target, space, item_id, state, updated_at) VALUES (?,?,?,?,?,?,?,?)"
)


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


def job_from_row(row: Any) -> Job:
    """A ``jobs`` row as a ``Job``."""
    data = dict(row)
    data["params"] = JobParams.model_validate_json(data["params"])
    return Job.model_validate(data)


def item_rows(job_id: str, targets: Iterable[Target], *, start: int, now: float) -> list[tuple[Any, ...]]:
    """``INSERT_ITEMS`` parameters for ``targets`` as pending items numbered from ``start``."""
    return [
        (job_id, start + n, t.platform.value, t.key, t.space, t.id, ItemStatus.PENDING.value, now)
        for n, t in enumerate(targets)
    ]


def accept(conn: sqlite3.Connection, job_id: str, sub: Submission) -> Job | DuplicateDelivery | SameChange:
    """Store ``sub`` as job ``job_id`` unless it repeats one (the caller holds the transaction).

    ``from_card``: a card button, also refused when someone else made the same change
    (to someone else) moments ago, so the second click is told who got there first.
    """
    key = sub.interaction_key
    if key and conn.execute("SELECT 1 FROM jobs WHERE interaction_key = ?", (key,)).fetchone() is not None:
        return DuplicateDelivery(interaction_key=key)
    same = _same_change(conn, sub)
    if same is not None:
        return SameChange(message=same)
    now = time.time()
    cur = conn.execute(
        _INSERT_JOB,
        (
            job_id,
            sub.verb.value,
            sub.state.value,
            sub.team_id,
            sub.actor_id,
            sub.channel_id,
            sub.card_ts,
            sub.thread_ts,
            sub.response_url,
            sub.source,
            key,
            sub.params.model_dump_json(),
            now,
            now,
        ),
    )
    if cur.rowcount == 0:
        return DuplicateDelivery(interaction_key=key)
    conn.executemany(INSERT_ITEMS, item_rows(job_id, sub.targets, start=0, now=now))
    return job_from_row(conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone())


def _same_change(conn: sqlite3.Connection, sub: Submission) -> str | None:
    """Why this exact change must not be stored again (in flight, or just made), or None.

    Only single-item requests of idempotent verbs are checked; the rest rely on the
    unique interaction key.
    """
    verb, targets = sub.verb, sub.targets
    if verb not in IDEMPOTENT_VERBS or len(targets) != 1:
        return None
    target = targets[0]
    wanted = sub.params.assignee if verb is Verb.ASSIGN else None
    row = conn.execute(_IN_FLIGHT_SQL, (target.key, verb.value)).fetchone()
    if row is not None:
        job = job_from_row(row)
        if job.params.assignee == wanted or verb is not Verb.ASSIGN or sub.from_card:
            ago = time.time() - job.created_at
            return (
                f"{target.key} is already being handled: <@{job.actor_id}> asked to "
                f"{job.verb.phrase(job.params.assignee)} {ago:.0f} s ago"
            )
    latest = recent_from_row(conn.execute(LATEST_CHANGE_SQL, (target.key,)).fetchone(), within=DUPLICATE_WINDOW_S)
    if latest is None or latest.entry.verb != verb.value:
        return None
    if wanted is not None and latest.assignee != wanted and not sub.from_card:
        return None
    ago = time.time() - latest.entry.at
    to = f" to <@{latest.assignee}>" if verb is Verb.ASSIGN and latest.assignee else ""
    return f"{target.key} was already {verb.past}{to} by <@{latest.entry.actor_id}> {ago:.0f} s ago"
