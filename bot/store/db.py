"""The bot's database: SQLite (embedded, the default) or PostgreSQL (several replicas).

``TRIAGE_DB`` is a SQLite path or a ``postgresql://`` URL; both are reached through one
SQLAlchemy async engine (aiosqlite, asyncpg; made by ``bot.store.engines``) and the same Core
queries on the tables of ``bot.store.tables``. Stores read with ``read()`` and write inside ``transaction()``.

What makes writes safe across processes and replicas is the database: unique keys,
conditional updates, row locks. On SQLite a write transaction is ``BEGIN IMMEDIATE``,
the file's write lock, so a second process on the same file waits (``busy_timeout``);
in this process a ``WriteLock`` only keeps tasks from queueing on that file lock (and
lets urgent writers go first). On PostgreSQL each transaction has its own pooled
connection, and contended rows are locked (``SELECT … FOR UPDATE``, ``SKIP LOCKED``
for claims) where a check and a write must not interleave.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.ext.compiler import compiles

from bot.errors import StoreError
from bot.store.engines import BUSY_TIMEOUT_MS, CACHE, database_url, is_postgres, postgres_engine, sqlite_engine
from bot.store.migrate import HEAD, read_version, refuse_newer, upgrade
from bot.store.raw import Call, Raw, UrgentSqlite, raw_in
from bot.store.statements import dialect_insert
from bot.store.urgent_pg import UrgentPostgres

log = structlog.get_logger(__name__)

T = TypeVar("T")


def redacted(target: str | Path) -> str:
    """``TRIAGE_DB`` as it may be shown: a URL's password replaced by ``***``."""
    text = str(target)
    if not is_postgres(text):
        return text
    try:
        return make_url(text).render_as_string(hide_password=True)
    except (sa.exc.ArgumentError, ValueError):
        return "postgresql://(unparseable URL)"


class Written(NamedTuple):
    """What ``Store.write_one`` did: the statement's row count and the rows it returned."""

    rowcount: int
    rows: list[Any]


class SchemaBehind(StoreError):
    """The database is at an older revision and the caller asked not to migrate it."""


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


@asynccontextmanager
async def _no_lock() -> AsyncIterator[None]:
    yield


class Store:
    """An open database at the current schema revision."""

    def __init__(self, engine: AsyncEngine, *, where: str, scratch: tempfile.TemporaryDirectory[str] | None = None):
        self.engine = engine
        self.dialect = engine.dialect.name
        self.where = where  # for messages and logs: the path, or the URL without its password
        self._writer = engine.execution_options(triage_write=True)
        self._single = engine.execution_options(triage_single=True)
        # PostgreSQL: reads and single-statement writes without BEGIN and COMMIT (two round trips
        # each); at READ COMMITTED each statement has its own snapshot either way, and one statement
        # is a transaction of its own.
        self._autocommit = (
            engine.execution_options(isolation_level="AUTOCOMMIT") if self.dialect == "postgresql" else None
        )
        self._write_lock = WriteLock() if self.dialect == "sqlite" else None
        self._scratch = scratch
        self._urgent: UrgentSqlite | None = None
        if self.is_sqlite and engine.url.database:
            lock = self._write_lock
            assert lock is not None
            self._urgent = UrgentSqlite(
                engine.url.database,
                engine.dialect,
                cache_pragma=CACHE,
                timeout_ms=BUSY_TIMEOUT_MS,
                hold=lambda: lock.hold(urgent=True),
            )
        self._urgent_pg = UrgentPostgres(self._writer.connect, engine.dialect) if self.dialect == "postgresql" else None
        self.schema_revision = ""
        # Seconds to pause after each commit, set in a worker process so that the web
        # process's urgent writes find a gap between the worker's transactions.
        self.yield_after_commit = 0.0

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @classmethod
    async def open(cls, target: str | Path, *, migrate_schema: bool = True) -> Store:
        """Open (creating if needed) the database ``target`` (a SQLite path, ``":memory:"``, or a
        PostgreSQL URL) and bring it to the current schema; raise ``StoreError`` if it cannot be
        reached or is not a database, a migration fails (nothing of it stays), or the schema is
        newer than this code knows (the database is left untouched)."""
        text = str(target)
        scratch = None
        if is_postgres(text):
            try:
                engine = postgres_engine(database_url(text))
            except (sa.exc.ArgumentError, ValueError) as exc:
                raise StoreError(
                    "TRIAGE_DB is not a usable PostgreSQL URL: write it as "
                    "postgresql://user:password@host:5432/database"
                ) from exc
        else:
            if text == ":memory:":
                # Several pooled connections must see one database: a private file instead.
                scratch = tempfile.TemporaryDirectory(prefix="triage-db-")
                text = str(Path(scratch.name) / "memory.db")
            Path(text).parent.mkdir(parents=True, exist_ok=True)
            engine = sqlite_engine(database_url(text))
        store = cls(engine, where=redacted(target), scratch=scratch)
        try:
            await store._prepare(migrate_schema)
        except BaseException:
            await store.close()
            raise
        return store

    async def _prepare(self, migrate_schema: bool) -> None:
        try:
            async with self.engine.connect() as conn:
                version = await conn.run_sync(read_version)
        except (sa.exc.SQLAlchemyError, OSError, TimeoutError) as exc:
            raise StoreError(f"cannot open the database {self.where}: {_reason(exc)}") from exc
        # Refuse a newer database before anything writes to it (WAL rewrites SQLite's header).
        refuse_newer(version, self.where)
        if self.is_sqlite:
            async with self.engine.connect() as conn:
                # On the driver's connection, outside any transaction (WAL cannot be set inside one).
                raw = await conn.get_raw_connection()
                driver: Any = raw.driver_connection
                async with driver.execute("PRAGMA journal_mode = WAL") as cur:
                    row = await cur.fetchone()
                self.journal_mode = str(row[0]) if row else ""
        if not version.current:
            if not migrate_schema:
                state = "has no tables yet" if version.empty else f"is at {version.describe()}"
                raise SchemaBehind(
                    f"the database {self.where} {state}, not revision {HEAD}: run `triage-bot db upgrade` first"
                )
            try:
                async with self.transaction() as conn:
                    applied = await conn.run_sync(upgrade, self.where)
            except sa.exc.DBAPIError as exc:
                raise StoreError(f"migrating {self.where} failed: {_reason(exc)}") from exc
            if applied:
                log.info("store.migrated", where=self.where, applied=applied)
        self.schema_revision = HEAD

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reads (a consistent snapshot on SQLite; each statement's own on PostgreSQL)."""
        async with (self._autocommit or self.engine).connect() as conn:
            yield conn

    @asynccontextmanager
    async def transaction(self, *, urgent: bool = False) -> AsyncIterator[AsyncConnection]:
        """Run the block as one write transaction, committed on success and rolled back on any
        exception (which propagates). Not re-entrant: do not nest.

        ``urgent`` writers (a job being accepted while Slack waits for its ack) go ahead of
        every queued ordinary writer of this process (the workers' bookkeeping)."""
        lock = self._write_lock.hold(urgent=urgent) if self._write_lock is not None else _no_lock()
        async with lock:
            async with self._writer.begin() as conn:
                yield conn
            if self.yield_after_commit:
                await asyncio.sleep(self.yield_after_commit)

    async def write_one(self, statement: Any) -> Written:
        """Run one write statement as its own transaction: its row count, and its rows if it returns any.

        On SQLite the statement runs without ``BEGIN``: SQLite takes the file's write lock for
        that statement alone, so another process (the web process storing a job before its
        ack) waits for one statement, not for a transaction spread over several turns of
        this process's event loop. On PostgreSQL it runs in autocommit mode, without the round
        trips of ``BEGIN`` and ``COMMIT``."""
        if self._autocommit is not None:
            async with self._autocommit.connect() as conn:
                result = await conn.execute(statement)
                return Written(result.rowcount, list(result.all()) if result.returns_rows else [])
        if self._write_lock is None:
            async with self.transaction() as conn:
                result = await conn.execute(statement)
                return Written(result.rowcount, list(result.all()) if result.returns_rows else [])
        async with self._write_lock.hold():
            async with self._single.connect() as conn:
                result = await conn.execute(statement)
                written = Written(result.rowcount, list(result.all()) if result.returns_rows else [])
                await conn.commit()
            if self.yield_after_commit:
                await asyncio.sleep(self.yield_after_commit)
        return written

    async def write_now(self, fn: Callable[[Raw], T]) -> T:
        """Run ``fn(raw)``, a synchronous transaction body of prepared statements (``bot.store.raw``),
        as one urgent write: for the acknowledgement path, ahead of this process's queued writers.

        The urgent writes that arrive together share one transaction (a group commit,
        ``GroupCommit``): a burst of requests costs one commit, not one each, and a body that
        raises changes nothing and raises to its own caller only. On SQLite a write joins the
        batch until the batch gets the write lock, each body runs in a savepoint of its own, and
        the batch runs on the event loop on a connection of its own (``UrgentSqlite``: while
        another process holds the file's write lock the start is retried every ``URGENT_RETRY_S``
        for up to ``BUSY_TIMEOUT_MS``; SQLite's own busy handler sleeps 1, 2, 5, 10 … ms and loses
        every race against a worker that writes back to back). On PostgreSQL the batch runs on a
        connection kept for it, on the driver's cursor (``UrgentPostgres``)."""
        if self._urgent_pg is not None:
            return await self._urgent_pg.run(fn)
        if self._urgent is None:  # an in-memory SQLite database: one connection, no batching
            async with self._writer.begin() as conn:
                return await conn.run_sync(lambda sync: fn(raw_in(sync)))
        result = await self._urgent.run(fn)
        if self.yield_after_commit:
            await asyncio.sleep(self.yield_after_commit)
        return result

    async def call_now(self, call: Call[T]) -> T:
        """PostgreSQL: ``call`` (a whole write as one statement) as one urgent write; the calls that
        arrive together go to the server in one round trip and commit together (``UrgentPostgres``)."""
        if self._urgent_pg is None:
            raise TypeError(f"{self.dialect}: stored calls are for PostgreSQL")
        return await self._urgent_pg.call(call)

    async def ping(self, timeout: float = 2.0) -> bool:
        """True when the database answers a trivial query within ``timeout`` s (readiness)."""
        try:
            async with asyncio.timeout(timeout), self.read() as conn:
                return (await conn.execute(sa.text("SELECT 1"))).scalar() == 1
        except (sa.exc.SQLAlchemyError, OSError, TimeoutError):
            return False

    async def close(self) -> None:
        """Close every connection; further use raises."""
        if self._urgent_pg is not None:
            await self._urgent_pg.close()
        await self.engine.dispose()
        if self._urgent is not None:
            self._urgent.close()
        if self._scratch is not None:
            self._scratch.cleanup()
            self._scratch = None

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _reason(exc: BaseException) -> str:
    """The driver's own words, without SQLAlchemy's statement dump (which may hold values)."""
    orig = getattr(exc, "orig", None)
    return str(orig if orig is not None else exc).splitlines()[0][:300]


def insert(conn: AsyncConnection | sa.Connection, table: sa.Table) -> Any:
    """An ``INSERT`` for ``table`` in the connection's dialect, which has ``on_conflict_do_nothing``
    and ``on_conflict_do_update`` (the same on SQLite and PostgreSQL)."""
    return dialect_insert(conn.dialect.name, table)


def database_now() -> sa.ColumnElement[float]:
    """The database server's clock in seconds since the epoch: one clock for every replica."""
    return _EpochNow()


class _EpochNow(sa.sql.functions.GenericFunction[float]):
    type = sa.Float()
    name = "triage_epoch_now"
    inherit_cache = True


@compiles(_EpochNow, "postgresql")
def _epoch_now_pg(_element: Any, _compiler: Any, **_kw: Any) -> str:
    return "EXTRACT(EPOCH FROM clock_timestamp())::float8"


@compiles(_EpochNow, "sqlite")
def _epoch_now_sqlite(_element: Any, _compiler: Any, **_kw: Any) -> str:
    return "((julianday('now') - 2440587.5) * 86400.0)"
