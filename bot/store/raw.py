"""The acknowledgement path's transaction, run on the driver's own connection.

Slack waits while a job is stored, so that one transaction skips SQLAlchemy's
per-statement work (execution contexts, events, result objects), which costs
more than the statements themselves: each Core statement (still built from
``bot.store.tables``) is compiled once per dialect to the driver's SQL and its
parameter order (``Prepared``), and executed on the DBAPI cursor (``Raw``).

On SQLite the transaction runs on the event loop itself (``UrgentSqlite``), on a
connection of its own with no busy handler: ``BEGIN IMMEDIATE`` either takes the
file's write lock at once or fails, and while another process holds the lock the
loop stays free and tries again every ``URGENT_RETRY_S``. A hop to a thread costs
more than the whole body (a handful of indexed statements, and a commit that
does not sync in WAL mode with ``synchronous = NORMAL``). That connection never
checkpoints the WAL (``wal_autocheckpoint = 0``): the other connections do, when
they commit, off the acknowledgement path. The writes that arrive together (a burst
of requests) share one transaction and one commit, each in a savepoint of its own.
PostgreSQL's form of the write is ``bot.store.urgent_pg``.
"""

from __future__ import annotations

import asyncio
import functools
import operator
import sqlite3
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import sqlalchemy as sa

from bot.metrics import ACK_STORE_WAIT

T = TypeVar("T")

# How often the acknowledgement path's write retries while another process holds the lock.
URGENT_RETRY_S = 0.0002


@dataclass(frozen=True)
class _Compiled:
    sql: str
    order: tuple[str, ...]
    fixed: Mapping[str, Any]  # the statement's own values (IN lists, LIMIT), by parameter name
    processors: Mapping[str, Callable[[Any], Any]]

    @functools.cached_property
    def _pick(self) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
        """Two or more parameters in the driver's order, picked in C (six statements per stored job)."""
        return operator.itemgetter(*self.order)

    def values(self, params: Mapping[str, Any]) -> tuple[Any, ...]:
        merged = {**self.fixed, **params} if self.fixed else params
        if self.processors:
            return tuple([self.processors[n](merged[n]) if n in self.processors else merged[n] for n in self.order])
        if len(self.order) < 2:  # itemgetter of one name gives the value itself, not a tuple
            return tuple([merged[n] for n in self.order])
        return self._pick(merged)


class Prepared:
    """A Core statement compiled once per dialect to the driver's SQL and parameter order.

    ``build(dialect_name)`` makes the statement (a dialect's own INSERT … ON CONFLICT);
    ``keys`` are an INSERT's columns (the parameters every execution passes).
    """

    def __init__(self, build: Callable[[str], Any], *, keys: Sequence[str] | None = None) -> None:
        self._build = build
        self._keys = list(keys) if keys is not None else None
        self._compiled: dict[str, _Compiled] = {}

    @classmethod
    def of(cls, statement: Any, *, keys: Sequence[str] | None = None) -> Prepared:
        """The same statement in every dialect."""
        return cls(lambda _name: statement, keys=keys)

    def compiled(self, dialect: sa.Dialect) -> _Compiled:
        found = self._compiled.get(dialect.name)
        if found is None:
            statement = self._build(dialect.name)
            compiled = statement.compile(dialect=dialect, column_keys=self._keys)
            if not compiled.positional:  # both drivers take positional parameters (qmark, $n)
                raise TypeError(f"{dialect.name}: a positional paramstyle is needed, not {dialect.paramstyle}")
            names = {b.key for b in compiled.binds.values() if b.value is None and b.callable is None}
            names |= set(self._keys or ())
            state = compiled.construct_expanded_state(dict.fromkeys(names))
            fixed = {k: v for k, v in state.parameters.items() if k not in names}
            processors = {k: p for k, p in state.processors.items() if p is not None}
            found = _Compiled(state.statement, tuple(state.positiontup or ()), fixed, processors)
            self._compiled[dialect.name] = found
        return found


class Raw:
    """A DBAPI cursor inside the caller's transaction, running ``Prepared`` statements."""

    def __init__(self, cursor: Any, dialect: sa.Dialect) -> None:
        self.cursor = cursor
        self.dialect = dialect

    def execute(self, statement: Prepared, params: Mapping[str, Any]) -> None:
        compiled = statement.compiled(self.dialect)
        self.cursor.execute(compiled.sql, compiled.values(params))

    def count(self, statement: Prepared, params: Mapping[str, Any]) -> int:
        """Execute ``statement``; the number of rows it wrote (0 for an insert that did nothing)."""
        self.execute(statement, params)
        return int(self.cursor.rowcount)

    def execute_many(self, statement: Prepared, rows: Sequence[Mapping[str, Any]]) -> None:
        compiled = statement.compiled(self.dialect)
        self.cursor.executemany(compiled.sql, [compiled.values(row) for row in rows])

    def first(self, statement: Prepared, params: Mapping[str, Any]) -> dict[str, Any] | None:
        """The first row as a dict by column name, or None."""
        self.execute(statement, params)
        row = self.cursor.fetchone()
        if row is None:
            return None
        names = [d[0] for d in self.cursor.description]
        # Drain the rest so the driver's statement is finished before the next one.
        self.cursor.fetchall()
        return dict(zip(names, row, strict=True))


def raw_in(conn: sa.Connection) -> Raw:
    """A ``Raw`` on the DBAPI connection behind ``conn`` (in ``conn``'s transaction)."""
    return Raw(conn.connection.dbapi_connection.cursor(), conn.dialect)  # type: ignore[union-attr]


@dataclass(frozen=True)
class Call(Generic[T]):
    """A whole write as one statement (a stored function's call) and what its first column becomes."""

    statement: Prepared
    params: Mapping[str, Any]
    answer: Callable[[Any], T]


Outcome = tuple[bool, Any]  # (True, the body's result) or (False, the exception it raised)
Batch = Callable[[Sequence[Callable[[Raw], Any]]], Awaitable[list[Outcome]]]


class GroupCommit:
    """Transaction bodies that arrive together, run as one batch (a group commit).

    The first body of a batch starts its flush; the others join until the flush holds
    ``hold`` (this process's write lock, on SQLite), and ``batch`` runs them all and gives
    each its outcome: each body is committed unless it raised, and one that raised changes
    nothing and raises to its own caller only. A burst of acknowledgements then costs one
    transaction, not one each.
    """

    def __init__(self, batch: Batch, *, hold: Callable[[], AbstractAsyncContextManager[None]] = nullcontext) -> None:
        self._batch, self._hold = batch, hold
        self._pending: list[tuple[Callable[[Raw], Any], asyncio.Future[Any]]] = []
        self._flushing: set[asyncio.Task[None]] = set()

    async def run(self, fn: Callable[[Raw], T]) -> T:
        done: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending.append((fn, done))
        if len(self._pending) == 1:
            task = asyncio.create_task(self._flush())
            self._flushing.add(task)
            task.add_done_callback(self._flushing.discard)
        return await done

    async def _flush(self) -> None:
        async with self._hold():
            batch, self._pending = self._pending, []
            try:
                outcomes = await self._batch([fn for fn, _ in batch])
            except BaseException as exc:  # nothing of the batch was committed
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise
                return
        for (_, done), (ok, value) in zip(batch, outcomes, strict=True):
            if not done.done():
                done.set_result(value) if ok else done.set_exception(value)


class UrgentSqlite:
    """One SQLite connection for the acknowledgement path's write, used on the event loop."""

    def __init__(
        self,
        path: str,
        dialect: sa.Dialect,
        *,
        cache_pragma: str,
        timeout_ms: int,
        hold: Callable[[], AbstractAsyncContextManager[None]] = nullcontext,
    ) -> None:
        self.path, self.dialect, self.cache_pragma, self.timeout_ms = path, dialect, cache_pragma, timeout_ms
        self._conn: sqlite3.Connection | None = None
        # This process's write lock is taken for each batch.
        self.group = GroupCommit(self.run_many, hold=hold)

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            for pragma in (
                "busy_timeout = 0",
                "foreign_keys = ON",
                "synchronous = NORMAL",
                "wal_autocheckpoint = 0",
                self.cache_pragma,
            ):
                conn.execute(f"PRAGMA {pragma}")
            self._conn = conn
        return self._conn

    async def run(self, fn: Callable[[Raw], T]) -> T:
        """``fn`` in a ``BEGIN IMMEDIATE`` transaction with the writes that arrive with it."""
        return await self.group.run(fn)

    async def run_many(self, fns: Sequence[Callable[[Raw], Any]]) -> list[Outcome]:
        """Each of ``fns`` in turn in one ``BEGIN IMMEDIATE`` transaction, one commit for all.

        Each body runs in a savepoint of its own (a body alone, in the transaction itself): one
        that raises ``Exception`` is rolled back alone and its outcome is ``(False, exc)``; the
        others' are ``(True, result)``. Anything else (a failed commit, a ``BaseException``) rolls
        back the whole transaction and raises.
        """
        conn = self._connection()
        started = time.monotonic()
        waited = False
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                break
            except sqlite3.OperationalError as exc:
                # With no busy handler only BEGIN IMMEDIATE can find the file locked (in WAL
                # mode a writer that holds the lock never waits again).
                if "locked" not in str(exc) or time.monotonic() - started >= self.timeout_ms / 1000:
                    raise
            waited = True
            await asyncio.sleep(URGENT_RETRY_S)
        if waited:
            ACK_STORE_WAIT.observe(time.monotonic() - started)
        cursor = conn.cursor()
        raw = Raw(cursor, self.dialect)
        outcomes: list[Outcome] = []
        alone = len(fns) == 1  # a body alone needs no savepoint: the transaction is its own
        try:
            for fn in fns:
                if not alone:
                    conn.execute("SAVEPOINT urgent")
                try:
                    outcomes.append((True, fn(raw)))
                except Exception as exc:
                    conn.execute("ROLLBACK" if alone else "ROLLBACK TO urgent")
                    outcomes.append((False, exc))
                    if alone:
                        return outcomes
                if not alone:
                    conn.execute("RELEASE urgent")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        finally:
            cursor.close()
        return outcomes

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
