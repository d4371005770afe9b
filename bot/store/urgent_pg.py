"""The acknowledgement path's write on PostgreSQL: one kept connection, one batch at a time.

Slack waits while a job is stored, and on PostgreSQL every statement is a round trip to
the server. Storing a job is one statement, a call of the stored function
``triage_accept`` (``bot.store.functions``), and the calls that arrive together are sent
in one go: the driver pipelines them in one implicit transaction, so a burst of
requests costs one round trip and one commit (``UrgentPostgres.run_calls``). Transaction
bodies of several statements on the driver's cursor (``bot.store.raw``) share a
transaction in the same way (``UrgentPostgres.run_many``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.store.raw import Call, GroupCommit, Outcome, Raw, raw_in

T = TypeVar("T")


class UrgentPostgres:
    """One connection kept for the acknowledgement path's write on PostgreSQL, one batch at a time.

    A connection checked out of the pool for each write would cost the pool's ping (with asyncpg
    three round trips: BEGIN, a statement, ROLLBACK) and its reset on the way back, more than the
    write's own handful of statements. This one is kept; when it turns out to be gone (the
    database restarted) it is dropped and the bodies without an outcome run again on a new one.
    """

    def __init__(self, connect: Callable[[], Awaitable[AsyncConnection]], dialect: sa.Dialect) -> None:
        self._connect, self._dialect = connect, dialect
        # The bodies run on the driver's cursor, so their errors are the driver's own (PEP 249) classes.
        dbapi: Any = dialect.dbapi
        # The calls run on asyncpg itself, so its own classes too: the connection is closed or unusable
        # (InterfaceError), lost (class 08), or the server is shutting down or starting.
        import asyncpg  # type: ignore[import-untyped,unused-ignore]

        self._connection_errors: tuple[type[BaseException], ...] = (
            dbapi.InterfaceError,
            dbapi.OperationalError,
            dbapi.InternalError,
            asyncpg.InterfaceError,
            asyncpg.PostgresConnectionError,
            asyncpg.exceptions.AdminShutdownError,
            asyncpg.exceptions.CrashShutdownError,
            asyncpg.exceptions.CannotConnectNowError,
            OSError,
        )
        self._conn: AsyncConnection | None = None
        self._one_batch = asyncio.Lock()
        self.group = GroupCommit(self.run_many, hold=lambda: self._one_batch)
        self.calls = GroupCommit(self.run_calls, hold=lambda: self._one_batch)  # type: ignore[arg-type]

    async def run(self, fn: Callable[[Raw], T]) -> T:
        return await self.group.run(fn)

    async def call(self, call: Call[T]) -> T:
        """``call``'s answer; the calls that arrive together go to the server in one round trip."""
        return await self.calls.run(call)  # type: ignore[arg-type]

    def _lost(self, exc: BaseException) -> bool:
        """Whether the error is the connection's (gone, or in a state the driver cannot use), not a body's:
        SQLAlchemy invalidated it, the driver's class says so, or the dialect finds the connection closed."""
        if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
            return True
        orig = exc.orig if isinstance(exc, sa.exc.DBAPIError) else exc
        if isinstance(orig, self._connection_errors):
            return True
        try:
            sync = self._conn.sync_connection if self._conn is not None else None
            driver = sync.connection.dbapi_connection if sync is not None else None
        except sa.exc.SQLAlchemyError:  # already invalidated or closed
            return True
        return driver is not None and bool(self._dialect.is_disconnect(orig, driver, None))  # type: ignore[arg-type]

    async def run_calls(self, calls: Sequence[Call[Any]]) -> list[Outcome]:
        """The calls pipelined in one implicit transaction on the driver (one round trip, one commit);
        if one raises, each again on its own. Each call is a whole write, so running it again is harmless."""

        async def on(conn: AsyncConnection, outcomes: dict[int, Outcome]) -> None:
            driver = (await conn.get_raw_connection()).driver_connection
            await self._calls_on(driver, calls, outcomes)

        return await self._reconnecting(on, len(calls))

    async def _reconnecting(
        self, run: Callable[[AsyncConnection, dict[int, Outcome]], Awaitable[None]], count: int
    ) -> list[Outcome]:
        """``run`` on the kept connection, filling in the outcomes of ``count`` writes; if the connection
        turns out to be lost, once more on a new one, for the writes still without an outcome."""
        outcomes: dict[int, Outcome] = {}
        for attempt in (1, 2):
            try:
                if self._conn is None or self._conn.closed or self._conn.invalidated:
                    self._conn = await self._connect()
                await run(self._conn, outcomes)
                return [outcomes[n] for n in range(count)]
            except Exception as exc:
                if not self._lost(exc) or attempt == 2:
                    raise
                await self._drop()
        raise AssertionError("unreachable")

    async def _calls_on(self, driver: Any, calls: Sequence[Call[Any]], outcomes: dict[int, Outcome]) -> None:
        compiled = [c.statement.compiled(self._dialect) for c in calls]
        if len(calls) > 1 and len({c.sql for c in compiled}) == 1:
            try:
                rows = await driver.fetchmany(
                    compiled[0].sql, [c.values(call.params) for c, call in zip(compiled, calls, strict=True)]
                )
            except Exception as exc:  # a call's: each again, alone, below
                if self._lost(exc):
                    raise
            else:
                for n, (call, row) in enumerate(zip(calls, rows, strict=True)):
                    outcomes[n] = _answered(call, row[0])
                return
        for n, (call, c) in enumerate(zip(calls, compiled, strict=True)):
            if n in outcomes:
                continue
            try:
                row = await driver.fetchrow(c.sql, *c.values(call.params))
            except Exception as exc:
                if self._lost(exc):
                    raise
                outcomes[n] = (False, exc)
            else:
                outcomes[n] = _answered(call, row[0])

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.invalidate()  # not back into the pool

    async def run_many(self, fns: Sequence[Callable[[Raw], Any]]) -> list[Outcome]:
        """All the bodies in one transaction; if one raises, each again in a transaction of its own
        (a savepoint per body would cost two more round trips each, and a body only touches the
        database, so running it again is harmless)."""
        return await self._reconnecting(lambda conn, outcomes: self._run_on(conn, fns, outcomes), len(fns))

    async def _run_on(
        self, conn: AsyncConnection, fns: Sequence[Callable[[Raw], Any]], outcomes: dict[int, Outcome]
    ) -> None:
        if len(fns) > 1 and not outcomes:
            try:
                async with conn.begin():
                    results = await conn.run_sync(lambda sync: [fn(raw_in(sync)) for fn in fns])
                outcomes.update((n, (True, r)) for n, r in enumerate(results))
                return
            except Exception as exc:  # a body's: each body again, alone, gets its own outcome below
                if self._lost(exc):
                    raise
        for n, fn in enumerate(fns):
            if n in outcomes:
                continue
            try:
                async with conn.begin():
                    outcomes[n] = (True, await conn.run_sync(_on_driver(fn)))
            except Exception as exc:
                if self._lost(exc):
                    raise
                outcomes[n] = (False, exc)

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()


def _answered(call: Call[Any], value: Any) -> Outcome:
    try:
        return (True, call.answer(value))
    except Exception as exc:
        return (False, exc)


def _on_driver(fn: Callable[[Raw], T]) -> Callable[[sa.Connection], T]:
    return lambda sync: fn(raw_in(sync))
