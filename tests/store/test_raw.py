"""The acknowledgement path's transaction on the driver's cursor (``bot.store.raw``)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import asyncpg
from sqlalchemy.dialects.sqlite import pysqlite

from bot.store.db import Store
from bot.store.raw import Call, Prepared, Raw, UrgentSqlite
from bot.store.statements import IN_FLIGHT
from bot.store.tables import rate_budgets  # a text key and a number: the scratch table here

_ROW = Prepared.of(sa.insert(rate_budgets), keys=("name", "next_at"))
_ROWS = Prepared.of(sa.select(rate_budgets.c.name, rate_budgets.c.next_at).order_by(rate_budgets.c.name))


@pytest.mark.parametrize("dialect", [pysqlite.dialect(), asyncpg.dialect()], ids=["sqlite", "postgresql"])  # type: ignore[no-untyped-call]
def test_a_statement_is_compiled_once_with_its_own_values_in_the_drivers_order(dialect: sa.Dialect) -> None:
    prepared = Prepared.of(IN_FLIGHT)
    compiled = prepared.compiled(dialect)
    assert prepared.compiled(dialect) is compiled
    values = compiled.values({"target": "datadog:abc", "verb": "assign"})
    # The IN lists and the LIMIT are the statement's own; the two named parameters are bound per call.
    assert {"pending", "running", "queued", 1} <= set(compiled.fixed.values())
    assert sorted(map(str, values)) == sorted(["datadog:abc", "assign", *map(str, compiled.fixed.values())])
    placeholders = compiled.sql.count("?") if dialect.name == "sqlite" else compiled.sql.count("$")
    assert placeholders == len(values)
    if dialect.name == "postgresql":  # $n in the order of the values
        assert compiled.sql.index("job_items.target = $1") > 0


async def test_the_write_is_one_transaction_and_rolls_back_on_error(db_url: str) -> None:
    async with await Store.open(db_url) as store:

        def two(conn: Raw) -> int:
            conn.execute(_ROW, {"name": "a", "next_at": 1.0})
            conn.execute_many(_ROW, [{"name": "b", "next_at": 2.0}, {"name": "c", "next_at": 3.0}])
            row = conn.first(_ROWS, {})
            assert row == {"name": "a", "next_at": 1.0}
            return 3

        assert await store.write_now(two) == 3

        def fails(conn: Raw) -> None:
            conn.execute(_ROW, {"name": "d", "next_at": 4.0})
            raise RuntimeError("after the first statement")

        with pytest.raises(RuntimeError):
            await store.write_now(fails)
        with pytest.raises(Exception, match=r"(?i)unique|duplicate"):  # the driver's own error
            await store.write_now(lambda conn: conn.execute(_ROW, {"name": "a", "next_at": 5.0}))
        # Usable after both failures, and neither left anything.
        assert await store.write_now(lambda conn: conn.first(_ROWS, {})) == {"name": "a", "next_at": 1.0}
        async with store.read() as conn:
            rows = (await conn.execute(sa.select(rate_budgets.c.name))).scalars().all()
    assert rows == ["a", "b", "c"]


def _insert(name: str, *, then_fail: bool = False) -> Callable[[Raw], str]:
    """A transaction body that inserts the row ``name`` (and then raises, with ``then_fail``)."""

    def body(conn: Raw) -> str:
        conn.execute(_ROW, {"name": name, "next_at": 1.0})
        if then_fail:
            raise RuntimeError(f"after inserting {name}")
        return name

    return body


async def test_urgent_writes_that_arrive_together_share_one_commit_and_each_fails_alone(tmp_path: Path) -> None:
    """SQLite's group commit: one transaction for a burst, each body in a savepoint of its own."""
    async with await Store.open(tmp_path / "t.db") as store:
        await store.write_now(lambda conn: conn.execute(_ROW, {"name": "warm", "next_at": 0.0}))
        statements: list[str] = []
        assert store._urgent is not None
        store._urgent._connection().set_trace_callback(statements.append)

        bodies = [_insert("g0"), _insert("g1"), _insert("g2", then_fail=True), _insert("g0"), _insert("g3")]
        results = await asyncio.gather(*(store.write_now(b) for b in bodies), return_exceptions=True)
        assert results[:2] == ["g0", "g1"] and results[4] == "g3"
        assert isinstance(results[2], RuntimeError)
        assert isinstance(results[3], sqlite3.IntegrityError)  # the second g0: the driver's own error
        assert statements.count("COMMIT") == 1 and statements.count("BEGIN IMMEDIATE") == 1
        async with store.read() as conn:
            rows = (await conn.execute(sa.select(rate_budgets.c.name).order_by(rate_budgets.c.name))).scalars()
            assert list(rows) == ["g0", "g1", "g3", "warm"]  # neither failed body left anything
        # A write on its own afterwards is a transaction of its own.
        assert await store.write_now(_insert("g4")) == "g4"
        assert statements.count("COMMIT") == 2


async def test_writes_that_arrive_together_each_commit_or_fail_alone_on_either_engine(db_url: str) -> None:
    """A burst with failing bodies in it: every other body is stored, the failing ones leave nothing."""
    async with await Store.open(db_url) as store:
        for burst in range(2):  # the second burst repeats every key: each body now fails on its own
            bodies = [_insert("p0"), _insert("p1", then_fail=True), _insert("p2"), _insert("p0"), _insert("p3")]
            results = await asyncio.gather(*(store.write_now(b) for b in bodies), return_exceptions=True)
            assert isinstance(results[1], RuntimeError) and isinstance(results[3], Exception)
            if burst == 0:
                assert [results[0], results[2], results[4]] == ["p0", "p2", "p3"]
            else:
                assert all(isinstance(r, Exception) for r in results)
        async with store.read() as conn:
            rows = (await conn.execute(sa.select(rate_budgets.c.name).order_by(rate_budgets.c.name))).scalars()
            assert list(rows) == ["p0", "p2", "p3"]


_ROW_RETURNING = Prepared.of(
    sa.insert(rate_budgets)
    .values(name=sa.bindparam("name"), next_at=sa.bindparam("next_at", type_=sa.Float()))
    .returning(rate_budgets.c.name)
)


def _call(target: str) -> Call[str]:
    """A whole write as one statement: insert the row ``target``, answered with its target."""
    return Call(_ROW_RETURNING, {"name": target, "next_at": 1.0}, lambda value: f"stored {value}")


async def test_postgresql_calls_that_arrive_together_go_in_one_round_trip_and_each_fails_alone(
    postgres_url: str,
) -> None:
    async with await Store.open(postgres_url) as store:
        await store.call_now(_call("warm"))
        urgent = store._urgent_pg
        assert urgent is not None and urgent._conn is not None
        driver = (await urgent._conn.get_raw_connection()).driver_connection
        assert driver is not None
        requests: list[int] = []  # per request to the server: how many calls it carried
        driver.add_query_logger(
            lambda q: requests.append(len(q.args) if q.args and isinstance(q.args[0], tuple) else 1)
        )

        ok = await asyncio.gather(*(store.call_now(_call(f"c{n}")) for n in range(4)))
        assert ok == ["stored c0", "stored c1", "stored c2", "stored c3"] and requests == [4]
        requests.clear()
        # The second c1 and the repeated warm fail: the batch is undone, then each call runs alone.
        names = ["c4", "c1", "c5", "warm", "c6"]
        results = await asyncio.gather(*(store.call_now(_call(n)) for n in names), return_exceptions=True)
        assert [results[0], results[2], results[4]] == ["stored c4", "stored c5", "stored c6"]
        assert all(isinstance(results[n], Exception) and "unique" in str(results[n]) for n in (1, 3))
        assert requests == [5, 1, 1, 1, 1, 1]
        async with store.read() as conn:
            rows = (await conn.execute(sa.select(rate_budgets.c.name).order_by(rate_budgets.c.name))).scalars()
            assert list(rows) == ["c0", "c1", "c2", "c3", "c4", "c5", "c6", "warm"]
    with pytest.raises(TypeError, match="PostgreSQL"):
        async with await Store.open(":memory:") as sqlite_store:
            await sqlite_store.call_now(_call("x"))


@pytest.mark.parametrize("first", ["body", "call"])
@pytest.mark.parametrize("pause", [0.0, 0.2], ids=["at-once", "after-the-driver-saw-it"])
async def test_postgresql_the_acks_connection_lost_costs_a_reconnect_not_an_error(
    postgres_url: str, pause: float, first: str
) -> None:
    """The connection kept for the ack path's write dies (a database restart): the next write reconnects,
    a transaction body or a stored call, whether it starts before the driver has read the termination or after."""
    async with await Store.open(postgres_url) as store:
        await store.write_now(lambda conn: conn.execute(_ROW, {"name": "before", "next_at": 1.0}))
        async with store.read() as conn:
            killed = await conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
            assert any(row[0] for row in killed)
        await asyncio.sleep(pause)

        async def body() -> None:
            await store.write_now(lambda conn: conn.execute(_ROW, {"name": "after", "next_at": 2.0}))

        async def call() -> None:
            assert await store.call_now(_call("call")) == "stored call"

        for write in (body, call) if first == "body" else (call, body):
            await write()
        assert await store.write_now(lambda conn: conn.first(_ROWS, {})) == {"name": "after", "next_at": 2.0}
        async with store.read() as conn:
            rows = (await conn.execute(sa.select(rate_budgets.c.name).order_by(rate_budgets.c.name))).scalars()
            assert list(rows) == ["after", "before", "call"]


def _hold_write_lock(path: Path, held: threading.Event, release: threading.Event) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    held.set()
    release.wait(5)
    conn.execute("COMMIT")
    conn.close()


async def test_while_another_process_writes_the_loop_stays_free_and_the_write_follows(tmp_path: Path) -> None:
    """SQLite: the write waits for the lock without blocking the event loop, then commits."""
    path = tmp_path / "t.db"
    async with await Store.open(path) as store:
        held, release = threading.Event(), threading.Event()
        holder = threading.Thread(target=_hold_write_lock, args=(path, held, release))
        holder.start()
        await asyncio.to_thread(held.wait, 5)
        write = asyncio.create_task(store.write_now(lambda conn: conn.execute(_ROW, {"name": "x", "next_at": 1.0})))
        ticks = 0
        for _ in range(20):
            await asyncio.sleep(0.005)
            ticks += 1
        assert not write.done() and ticks == 20
        release.set()
        await asyncio.wait_for(write, 5)
        await asyncio.to_thread(holder.join, 5)
        assert await store.write_now(lambda conn: conn.first(_ROWS, {})) == {"name": "x", "next_at": 1.0}


async def test_a_lock_held_past_the_timeout_is_the_drivers_error(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    async with await Store.open(path):
        pass
    urgent = UrgentSqlite(str(path), pysqlite.dialect(), cache_pragma="cache_size = -1024", timeout_ms=50)
    held, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=_hold_write_lock, args=(path, held, release))
    holder.start()
    try:
        await asyncio.to_thread(held.wait, 5)
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            await urgent.run(lambda conn: conn.execute(_ROW, {"name": "y", "next_at": 1.0}))
    finally:
        release.set()
        await asyncio.to_thread(holder.join, 5)
    assert await urgent.run(lambda conn: conn.first(_ROWS, {})) is None
    urgent.close()


async def test_the_acknowledgement_connection_leaves_checkpoints_to_the_others(tmp_path: Path) -> None:
    urgent = UrgentSqlite(str(tmp_path / "t.db"), pysqlite.dialect(), cache_pragma="cache_size = -1024", timeout_ms=50)
    assert await urgent.run(lambda conn: conn.cursor.execute("PRAGMA wal_autocheckpoint").fetchone()) == (0,)
    assert await urgent.run(lambda conn: conn.cursor.execute("PRAGMA busy_timeout").fetchone()) == (0,)
    urgent.close()
