"""The one SQLite connection of the process, with migrations and serialised writers.

Every store of the bot (mappings, jobs, ledger) shares one ``aiosqlite``
connection in autocommit mode; writes go through ``Store.transaction()``, which
uses ``BEGIN IMMEDIATE``: the database's own write lock, so a second process (a
second replica) on the same file waits (``busy_timeout``) instead of failing
half-way or interleaving. A check-then-insert is safe only when both run inside
one such transaction (``JobStore.submit``). The in-process ``WriteLock`` only keeps
this process's tasks from nesting transactions on the one shared connection (and
lets urgent writers go first); no correctness rests on it. Reads outside a
transaction see committed data (and, on this shared connection, the writes of a
transaction still in progress).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar, cast

import aiosqlite
import structlog

from bot.errors import StoreError
from bot.store.schema import MIGRATIONS

log = structlog.get_logger(__name__)

BUSY_TIMEOUT_MS = 5000
T = TypeVar("T")
# An urgent writer (``write_now``: Slack waits for it) that finds another process writing retries this
# often instead of SQLite's busy handler, whose sleeps grow 1, 2, 5, 10 … ms and lose every
# race against a worker process that writes back to back.
URGENT_RETRY_S = 0.0002


def split_statements(script: str) -> list[str]:
    """Split an SQL script into complete statements (semicolons inside literals or
    trigger bodies stay put); raise ``StoreError`` if text is left after the last one."""
    statements: list[str] = []
    buffer = ""
    *pieces, tail = script.split(";")
    for piece in pieces:
        buffer += piece + ";"
        if sqlite3.complete_statement(buffer):
            if _has_sql(buffer):
                statements.append(buffer.strip())
            buffer = ""
    buffer += tail
    if _has_sql(buffer):
        raise StoreError(f"incomplete SQL statement in a migration: {buffer.strip()[:80]!r}")
    return statements


def _has_sql(text: str) -> bool:
    lines = (line.split("--", 1)[0].strip() for line in text.splitlines())
    return any(line and line != ";" for line in lines)


class WriteLock:
    """A mutex with two queues: urgent waiters are always served before ordinary ones."""

    def __init__(self) -> None:
        self._held = False
        self._urgent: deque[asyncio.Future[None]] = deque()
        self._normal: deque[asyncio.Future[None]] = deque()

    @asynccontextmanager
    async def hold(self, *, urgent: bool = False) -> AsyncIterator[None]:
        await self._acquire(urgent)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, urgent: bool) -> None:
        if not self._held and not self._urgent and not self._normal:
            self._held = True
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        (self._urgent if urgent else self._normal).append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._release()  # it was handed to us just as we were cancelled: pass it on
            else:
                (self._urgent if urgent else self._normal).remove(waiter)
            raise

    def _release(self) -> None:
        # Hand the lock straight to the next waiter (it stays held), urgent ones first.
        for queue in (self._urgent, self._normal):
            while queue:
                waiter = queue.popleft()
                if not waiter.done():
                    waiter.set_result(None)
                    return
        self._held = False


class Store:
    """An open SQLite database at the current schema version."""

    def __init__(self, conn: aiosqlite.Connection, *, path: str) -> None:
        self._conn = conn
        self.path = path
        self._write_lock = WriteLock()
        self.schema_version = 0
        # Seconds to pause after each commit, set in a worker process so that the web
        # process's urgent writes find a gap between the worker's transactions.
        self.yield_after_commit = 0.0

    @classmethod
    async def open(cls, path: str | Path, *, migrations: list[str] | None = None) -> Store:
        """Open (creating if needed) the database at ``path`` (or ``":memory:"``) and apply
        pending migrations; raise ``StoreError`` if the file is not a database, a migration
        fails (that migration is rolled back), or the schema is newer than this code knows."""
        migrations = MIGRATIONS if migrations is None else migrations
        target = str(path)
        if target != ":memory:":
            Path(target).parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = await aiosqlite.connect(target, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the database {target}: {exc}") from exc
        conn.row_factory = aiosqlite.Row
        store = cls(conn, path=target)
        try:
            await store._prepare(migrations)
        except BaseException:
            await conn.close()
            raise
        return store

    async def _prepare(self, migrations: list[str]) -> None:
        # Read the version before any pragma that writes (journal_mode=WAL rewrites the
        # header), so a database from a newer bot is left byte-for-byte untouched.
        try:
            version = await self._user_version()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path} is not a usable SQLite database: {exc}") from exc
        self._refuse_newer(version, len(migrations))
        await self._conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        await self._conn.execute("PRAGMA foreign_keys = ON")
        async with self._conn.execute("PRAGMA journal_mode = WAL") as cur:
            row = await cur.fetchone()
        self.journal_mode = str(row[0]) if row else ""
        await self._conn.execute("PRAGMA synchronous = NORMAL")
        for number, script in enumerate(migrations, start=1):
            await self._migrate(number, script, total=len(migrations))
        self.schema_version = await self._user_version()

    def _refuse_newer(self, version: int, known: int) -> None:
        if version > known:
            raise StoreError(
                f"the database {self.path} is at schema version {version}, but this version of "
                f"the bot only knows up to {known}: it was written by a newer version of the bot "
                "and has been left untouched; upgrade the bot or point TRIAGE_DB elsewhere"
            )

    async def _user_version(self) -> int:
        async with self._conn.execute("PRAGMA user_version") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def _migrate(self, number: int, script: str, *, total: int) -> None:
        async with self.transaction() as conn:
            # Re-read inside the write lock: another process may have migrated meanwhile.
            version = await self._user_version()
            self._refuse_newer(version, total)
            if version >= number:
                return
            try:
                for statement in split_statements(script):
                    await conn.execute(statement)
            except sqlite3.Error as exc:
                raise StoreError(f"migration {number} failed on {self.path}: {exc}") from exc
            # user_version is part of the transaction: a failed migration leaves it as it was.
            await conn.execute(f"PRAGMA user_version = {number:d}")
        log.info("store.migrated", path=self.path, version=number)

    @property
    def conn(self) -> aiosqlite.Connection:
        """The shared connection (rows are ``aiosqlite.Row``); write inside ``transaction()``."""
        return self._conn

    @asynccontextmanager
    async def transaction(self, *, urgent: bool = False) -> AsyncIterator[aiosqlite.Connection]:
        """Run the block as one ``BEGIN IMMEDIATE`` transaction, committed on success and
        rolled back on any exception (which propagates). Not re-entrant: do not nest.

        ``urgent`` writers (a job being accepted while Slack waits for its ack) go ahead of
        every queued ordinary writer (the workers' bookkeeping)."""
        async with self._write_lock.hold(urgent=urgent):
            await self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
                await self._conn.execute("COMMIT")
            except BaseException:
                # SQLite rolls some errors back by itself; a second ROLLBACK would raise.
                if self._conn.in_transaction:
                    await self._conn.execute("ROLLBACK")
                raise
            if self.yield_after_commit:
                await asyncio.sleep(self.yield_after_commit)

    async def write_now(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` as one ``BEGIN IMMEDIATE`` transaction, in a single hop to the
        database thread, ahead of every queued ordinary writer: for the acknowledgement path.

        ``fn`` runs synchronously on the connection (it must not block on anything but
        SQLite); it commits when ``fn`` returns and rolls back when it raises (the exception
        propagates). While another process holds the write lock the attempt is retried every
        ``URGENT_RETRY_S`` for up to ``BUSY_TIMEOUT_MS``, then ``sqlite3.OperationalError``.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + BUSY_TIMEOUT_MS / 1000
        async with self._write_lock.hold(urgent=True):
            while True:
                # aiosqlite's own way to run a function on its thread (public API has none):
                # a dozen awaited statements would cost a dozen thread hops on the ack path.
                done, result = await self._conn._execute(self._attempt, fn)  # type: ignore[no-untyped-call]
                if done:
                    return cast(T, result)
                if loop.time() >= deadline:
                    raise sqlite3.OperationalError("database is locked")
                await asyncio.sleep(URGENT_RETRY_S)

    def _attempt(self, fn: Callable[[sqlite3.Connection], T]) -> tuple[bool, T | None]:
        """On the database thread: (False, None) if another process writes, else (True, fn's result)."""
        raw = self._conn._conn
        raw.execute("PRAGMA busy_timeout = 0")
        try:
            raw.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc):
                return False, None
            raise
        finally:
            raw.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        try:
            result = fn(raw)
            raw.execute("COMMIT")
            return True, result
        except BaseException:
            if raw.in_transaction:
                raw.execute("ROLLBACK")
            raise

    async def close(self) -> None:
        """Close the connection; further use raises."""
        await self._conn.close()

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
