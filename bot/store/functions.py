"""A function stored in PostgreSQL: the acknowledgement path's write in one statement.

Storing a job checks the interaction key, takes a single item's lock (a
transaction-scoped advisory lock on the item's key), reads the same change in flight
and the item's latest change, and inserts the job and its items. On PostgreSQL each
statement is a round trip while Slack waits, and the reads must follow the lock in
statements of their own: a statement waiting on the lock reads from the snapshot it
started with, so it would miss the job of the replica it waited for.
``triage_accept`` does it all in one call (a ``VOLATILE`` PL/pgSQL function takes a
fresh snapshot for each of its statements), and one call per
request is what lets the driver send a whole burst of them in one round trip
(``UrgentPostgres``). It returns JSON: ``{"outcome": "stored" | "duplicate" |
"in_flight" | "latest", "row": …}``, where ``row`` is the job in flight or the latest
change (a stored job is built by the caller from the values it sent, so it is not
sent back); ``bot.store.accept`` words the answer.

Its statements are the Core statements the SQLite path runs (``accept``), compiled to
PostgreSQL with the call's arguments in place of their parameters; the decisions
between them are the ones ``accept`` makes in Python, and the store tests run every
case on both engines. A new database gets the function with its tables, migration
``0003`` creates it in an existing one, and a test checks that the database's copy is
the one this code would create. Migration ``0004`` replaced the first version, which
locked a guard row per item (an upsert into ``item_guards``, a table that gained a row
for every item ever changed) and sent the stored job back as JSON that nobody read.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql import visitors
from sqlalchemy.sql.elements import BindParameter

from bot.store.statements import BY_KEY, IN_FLIGHT, LATEST_CHANGE
from bot.store.tables import jobs

ACCEPT = "triage_accept"
# The first key of the items' advisory locks (the second is the item key's hash); two-key advisory
# locks never collide with one-key ones such as the migration lock.
ITEM_LOCK_SPACE = 0x74726961  # "tria" in ASCII
# The function's arguments in order, with their PostgreSQL types: the job's columns, its items
# (one array per column), and what the checks need.
JOB_ARGS = (
    ("id", "text"),
    ("verb", "text"),
    ("state", "text"),
    ("team_id", "text"),
    ("actor_id", "text"),
    ("channel_id", "text"),
    ("card_ts", "text"),
    ("thread_ts", "text"),
    ("response_url", "text"),
    ("source", "text"),
    ("interaction_key", "text"),
    ("params", "text"),
    ("created_at", "double precision"),
    ("updated_at", "double precision"),
)
ACCEPT_ARGS = (
    *JOB_ARGS,
    ("platforms", "text[]"),
    ("targets", "text[]"),
    ("spaces", "text[]"),
    ("item_ids", "text[]"),
    ("item_state", "text"),
    ("check", "boolean"),  # check for the same change (a single item, an idempotent verb)
    ("assign", "boolean"),  # the verb is assign: a job in flight for another assignee does not count
    ("from_card", "boolean"),
    ("wanted", "text"),  # the assignee asked for
    ("since", "double precision"),  # a latest change before this is not "just made"
)
# What the checks' statement parameters are in the function.
_CHECK_PARAMETERS = {"key": "p_interaction_key", "target": "p_targets[1]", "verb": "p_verb", "at": "p_created_at"}


def _with_arguments(statement: Any) -> Any:
    def swap(element: Any, **_: Any) -> Any:
        if isinstance(element, BindParameter) and element.key in _CHECK_PARAMETERS:
            return sa.literal_column(_CHECK_PARAMETERS[element.key])
        return None

    opts: dict[str, Any] = {}
    return visitors.replacement_traverse(statement, opts, swap)


def _sql(statement: Any) -> str:
    dialect: sa.Dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    compiled = _with_arguments(statement).compile(dialect=dialect, compile_kwargs={"literal_binds": True})
    return " ".join(str(compiled).split())


def accept_body() -> str:
    """The PL/pgSQL body of ``triage_accept``, from the acknowledgement path's statements."""
    job = postgresql.insert(jobs).inline().values({name: sa.literal_column(f"p_{name}") for name, _ in JOB_ARGS})
    assignee = "::json->>'assignee'"
    return " ".join(
        (
            "DECLARE flight json; latest json; stored boolean;",
            "BEGIN",
            "IF p_check THEN",
            f"IF p_interaction_key IS NOT NULL AND EXISTS ({_sql(BY_KEY)}) THEN",
            "RETURN json_build_object('outcome', 'duplicate');",
            "END IF;",
            f"PERFORM pg_advisory_xact_lock({ITEM_LOCK_SPACE}, hashtext(p_targets[1]));",
            f"SELECT row_to_json(f) INTO flight FROM ({_sql(IN_FLIGHT)}) AS f;",
            "IF flight IS NOT NULL AND (NOT p_assign OR p_from_card",
            f"OR ((flight->>'params'){assignee}) IS NOT DISTINCT FROM p_wanted) THEN",
            "RETURN json_build_object('outcome', 'in_flight', 'row', flight);",
            "END IF;",
            f"SELECT row_to_json(l) INTO latest FROM ({_sql(LATEST_CHANGE)}) AS l;",
            "IF latest IS NOT NULL AND (latest->>'at')::double precision >= p_since AND latest->>'verb' = p_verb",
            "AND (p_wanted IS NULL OR p_from_card",
            f"OR ((latest->>'job_params'){assignee}) IS NOT DISTINCT FROM p_wanted)",
            "THEN RETURN json_build_object('outcome', 'latest', 'row', latest);",
            "END IF;",
            "END IF;",
            f"{_sql(job.on_conflict_do_nothing())} RETURNING true INTO stored;",
            "IF stored IS NULL THEN RETURN json_build_object('outcome', 'duplicate'); END IF;",
            "INSERT INTO job_items (job_id, seq, platform, target, space, item_id, state, updated_at)",
            "SELECT p_id, t.n - 1, t.platform, t.target, t.space, t.item_id, p_item_state, p_created_at",
            "FROM unnest(p_platforms, p_targets, p_spaces, p_item_ids) WITH ORDINALITY",
            "AS t(platform, target, space, item_id, n);",
            "RETURN json_build_object('outcome', 'stored');",
            "END",
        )
    )


def create_functions(conn: sa.Connection, *, body: str | None = None) -> None:
    """Create (or replace) the stored functions on a PostgreSQL connection; nothing on SQLite.

    ``body``: another body for ``triage_accept`` than this code's (a migration's downgrade)."""
    if conn.dialect.name != "postgresql":
        return
    arguments = ", ".join(f"p_{name} {kind}" for name, kind in ACCEPT_ARGS)
    conn.exec_driver_sql(
        f"CREATE OR REPLACE FUNCTION {ACCEPT}({arguments}) RETURNS json "
        f"LANGUAGE plpgsql VOLATILE AS $body$ {body if body is not None else accept_body()} $body$"
    )


def drop_functions(conn: sa.Connection) -> None:
    """Drop the stored functions (PostgreSQL only)."""
    if conn.dialect.name != "postgresql":
        return
    kinds = ", ".join(kind for _, kind in ACCEPT_ARGS)
    conn.exec_driver_sql(f"DROP FUNCTION IF EXISTS {ACCEPT}({kinds})")
