"""The acknowledgement path's Core statements, shared by its two forms.

``bot.store.accept`` runs them on SQLite one by one, and ``bot.store.functions``
compiles them into the PostgreSQL function that runs them in one call. They are built
once (``:name`` parameters bound per request), from the tables alone.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from bot.models import ItemStatus, JobState
from bot.store.tables import job_items, jobs, ledger

ASSIGNMENT_VERBS = ("assign", "unassign", "handoff", "resolve")
SUCCESS = ("done", "warning")


def dialect_insert(dialect: str, table: sa.Table) -> Any:
    """``insert`` for the dialect named ``dialect`` (``sqlite`` or ``postgresql``)."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table)


# The job that holds the interaction key ``key`` (a redelivery).
BY_KEY = sa.select(jobs.c.id).where(jobs.c.interaction_key == sa.bindparam("key"))

# The oldest queued or running job of ``verb`` with ``target`` still to do.
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

# The newest successful assign/unassign/handoff/resolve of one target (``target``), with its
# job's params.
LATEST_CHANGE = (
    sa.select(ledger, jobs.c.params.label("job_params"))
    .select_from(ledger.outerjoin(jobs, jobs.c.id == ledger.c.job_id))
    .where(
        ledger.c.target == sa.bindparam("target"),
        ledger.c.outcome.in_(SUCCESS),
        ledger.c.verb.in_(ASSIGNMENT_VERBS),
    )
    .order_by(ledger.c.at.desc(), ledger.c.id.desc())
    .limit(1)
)
