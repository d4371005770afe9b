"""The benchmark's PostgreSQL: one throwaway server per run, a fresh database per section, and reads.

``bench.pgserver.PostgresServer`` starts the server (``initdb`` and ``pg_ctl`` from Debian's
``postgresql`` package, on 127.0.0.1). The bot processes reach it through ``TRIAGE_DB``; the
benchmark reads the bot's jobs through ``PgJobs``, one asyncpg connection on a thread of its own
with the same blocking calls as the SQLite reads in ``bench.procs`` (a read takes well under a
millisecond, like SQLite's), so the flows that poll a job work unchanged on either database.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
from collections.abc import AsyncIterator, Coroutine
from typing import Any, TypeVar

import asyncpg  # type: ignore[import-untyped,unused-ignore]

from bench.pgserver import PostgresServer

T = TypeVar("T")


@contextlib.asynccontextmanager
async def postgres() -> AsyncIterator[PostgresServer]:
    """One PostgreSQL server for the run, stopped (its directory deleted) on the way out, even on failure."""
    server = PostgresServer()
    await asyncio.to_thread(server.start)
    try:
        yield server
    finally:
        await asyncio.to_thread(server.stop)


async def fresh_database(server: PostgresServer, name: str) -> str:
    """Create the empty database ``bench_<name>`` and return its ``postgresql://`` URL."""
    db = "bench_" + re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    await asyncio.to_thread(server.create_database, db)
    return server.url(db)


class PgJobs:
    """The bot's jobs in one PostgreSQL database, read with blocking calls (``bench.procs.JobsDb``)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="bench-pg-reads", daemon=True)
        self._thread.start()
        self._conn: Any = self._call(asyncpg.connect(url, timeout=10))

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def close(self) -> None:
        if not self._loop.is_closed():
            with contextlib.suppress(Exception):
                self._call(self._conn.close(timeout=5))
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()

    def job_row(self, *, key: str | None = None, job_id: str | None = None) -> dict[str, Any] | None:
        where, arg = ("interaction_key = $1", key) if key is not None else ("id = $1", job_id)
        row = self._call(self._conn.fetchrow(f"SELECT id, state, card_ts, reported_at FROM jobs WHERE {where}", arg))
        return dict(row) if row is not None else None

    def item_states(self, job_id: str) -> dict[str, int]:
        sql = "SELECT state, COUNT(*) FROM job_items WHERE job_id = $1 GROUP BY 1"
        rows = self._call(self._conn.fetch(sql, job_id))
        return {str(state): int(n) for state, n in rows}

    def reported(self, verb: str) -> tuple[int, int]:
        """How many ``verb`` jobs are stored, and how many of them are reported."""
        row = self._call(self._conn.fetchrow("SELECT COUNT(*), COUNT(reported_at) FROM jobs WHERE verb = $1", verb))
        return int(row[0]), int(row[1])

    def span(self, verb: str, since: float) -> dict[str, float | None]:
        """The stored times of the ``verb`` jobs created at or after ``since`` (epoch seconds)."""
        row = self._call(
            self._conn.fetchrow(
                "SELECT MIN(created_at), MAX(reported_at) FROM jobs WHERE verb = $1 AND created_at >= $2", verb, since
            )
        )
        return {"first_created": row[0], "last_reported": row[1]}

    def states(self, verb: str, since: float) -> dict[str, int]:
        """The states of the ``verb`` jobs created at or after ``since``."""
        rows = self._call(
            self._conn.fetch(
                "SELECT state, COUNT(*) FROM jobs WHERE verb = $1 AND created_at >= $2 GROUP BY 1", verb, since
            )
        )
        return {str(state): int(n) for state, n in rows}
