"""The SQLite store: migrations, re-opening, refusal of newer schemas, transactions."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from bot.errors import StoreError
from bot.store.db import Store, split_statements
from bot.store.schema import MIGRATIONS


async def test_open_creates_file_and_applies_every_migration(tmp_path: Path) -> None:
    """A new file is created and migrated to len(MIGRATIONS), with the mappings table."""
    path = tmp_path / "sub" / "triage.db"
    store = await Store.open(path)
    try:
        assert path.exists()
        assert store.schema_version == len(MIGRATIONS)
        async with store.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'") as cur:
            tables = {row["name"] for row in await cur.fetchall()}
        assert "mappings" in tables
    finally:
        await store.close()
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)


async def test_wal_foreign_keys_and_busy_timeout_are_on(tmp_path: Path) -> None:
    """The connection runs in WAL mode with foreign keys and a busy timeout."""
    store = await Store.open(tmp_path / "t.db")
    try:
        for pragma, expected in (("journal_mode", "wal"), ("foreign_keys", 1)):
            async with store.conn.execute(f"PRAGMA {pragma}") as cur:
                row = await cur.fetchone()
            assert row is not None and row[0] == expected
        async with store.conn.execute("PRAGMA busy_timeout") as cur:
            row = await cur.fetchone()
        assert row is not None and row[0] > 0
    finally:
        await store.close()


async def test_reopen_is_idempotent_and_keeps_data(tmp_path: Path) -> None:
    """Re-opening a migrated file applies nothing again and keeps what was written."""
    path = tmp_path / "t.db"
    store = await Store.open(path)
    async with store.transaction() as conn:
        await conn.execute(
            "INSERT INTO mappings (team_id, user_id, platform, value, source, updated_at) "
            "VALUES ('T1', 'U1', 'xpanse', 'a@b.io', 'self', '2024-01-01T00:00:00+00:00')"
        )
    await store.close()
    again = await Store.open(path)
    try:
        assert again.schema_version == len(MIGRATIONS)
        async with again.conn.execute("SELECT count(*) FROM mappings") as cur:
            row = await cur.fetchone()
        assert row is not None and row[0] == 1
    finally:
        await again.close()


async def test_later_migrations_apply_on_top_of_an_older_database(tmp_path: Path) -> None:
    """A database at version 1 is brought to the version of a longer migration list."""
    path = tmp_path / "t.db"
    await (await Store.open(path, migrations=MIGRATIONS[:1])).close()
    extra = [*MIGRATIONS, "CREATE TABLE extra (id INTEGER PRIMARY KEY, note TEXT DEFAULT 'a;b');"]
    store = await Store.open(path, migrations=extra)
    try:
        assert store.schema_version == len(extra)
        async with store.conn.execute("SELECT count(*) FROM extra") as cur:
            assert (await cur.fetchone()) is not None
    finally:
        await store.close()


async def test_failed_migration_rolls_back_and_keeps_the_version(tmp_path: Path) -> None:
    """A migration that fails leaves neither its tables nor a bumped user_version."""
    path = tmp_path / "t.db"
    broken = [*MIGRATIONS, "CREATE TABLE half (id INTEGER); INSERT INTO nowhere VALUES (1);"]
    with pytest.raises(StoreError, match=f"migration {len(broken)} failed"):
        await Store.open(path, migrations=broken)
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        names = {r[0] for r in raw.execute("SELECT name FROM sqlite_master")}
    assert "half" not in names


async def test_newer_schema_is_refused_and_the_file_left_untouched(tmp_path: Path) -> None:
    """A database from a newer bot raises StoreError and is not modified in any way."""
    path = tmp_path / "future.db"
    with sqlite3.connect(path) as raw:
        raw.execute("CREATE TABLE future (x)")
        raw.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 3}")
    raw.close()
    before = path.read_bytes()
    mtime = path.stat().st_mtime_ns
    with pytest.raises(StoreError, match="newer version of the bot") as info:
        await Store.open(path)
    assert "left untouched" in str(info.value)
    assert path.read_bytes() == before
    assert path.stat().st_mtime_ns == mtime
    assert not (tmp_path / "future.db-wal").exists()


async def test_not_a_database_is_a_store_error(tmp_path: Path) -> None:
    """A file that is not SQLite gives a StoreError naming it."""
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not a database at all, not even close" * 20)
    with pytest.raises(StoreError, match=r"junk\.db"):
        await Store.open(path)


async def test_memory_database_works() -> None:
    """':memory:' opens and migrates like a file."""
    store = await Store.open(":memory:")
    try:
        assert store.schema_version == len(MIGRATIONS)
    finally:
        await store.close()


async def test_transaction_rolls_back_on_error() -> None:
    """An exception inside transaction() undoes its writes and propagates."""
    store = await Store.open(":memory:")
    try:
        with pytest.raises(RuntimeError):
            async with store.transaction() as conn:
                await conn.execute(
                    "INSERT INTO mappings (team_id, user_id, platform, value, source, updated_at)"
                    " VALUES ('T1', 'U1', 'xpanse', 'a@b.io', 'self', 'now')"
                )
                raise RuntimeError("boom")
        async with store.conn.execute("SELECT count(*) FROM mappings") as cur:
            row = await cur.fetchone()
        assert row is not None and row[0] == 0
        assert not store.conn.in_transaction
    finally:
        await store.close()


async def test_transactions_are_serialised() -> None:
    """Concurrent transaction() blocks never interleave (the writer lock holds)."""
    store = await Store.open(":memory:")
    order: list[str] = []

    async def writer(name: str) -> None:
        async with store.transaction():
            order.append(f"{name}-start")
            await asyncio.sleep(0)  # yield to let the other writer try to get in
            order.append(f"{name}-end")

    try:
        await asyncio.gather(writer("a"), writer("b"))
    finally:
        await store.close()
    assert order in (
        ["a-start", "a-end", "b-start", "b-end"],
        ["b-start", "b-end", "a-start", "a-end"],
    )


def test_split_statements_keeps_semicolons_in_literals() -> None:
    """Scripts split on statement ends only, and trailing comments are not statements."""
    script = "CREATE TABLE a (x TEXT DEFAULT ';');\n-- done\nINSERT INTO a VALUES ('1;2');\n-- end\n"
    assert split_statements(script) == [
        "CREATE TABLE a (x TEXT DEFAULT ';');",
        "-- done\nINSERT INTO a VALUES ('1;2');",
    ]
    with pytest.raises(StoreError, match="incomplete"):
        split_statements("CREATE TABLE b (x)")


async def test_urgent_writers_go_before_queued_ordinary_writers(tmp_path: Path) -> None:
    """A job being accepted (urgent) is not stuck behind the workers' queued bookkeeping writes."""
    import asyncio

    from bot.store.db import Store

    store = await Store.open(tmp_path / "t.db")
    order: list[str] = []
    gate = asyncio.Event()

    async def writer(name: str, *, urgent: bool = False, wait: bool = False) -> None:
        async with store.transaction(urgent=urgent):
            order.append(name)
            if wait:
                await gate.wait()

    first = asyncio.create_task(writer("holder", wait=True))
    await asyncio.sleep(0.01)
    normal = [asyncio.create_task(writer(f"normal{i}")) for i in range(3)]
    await asyncio.sleep(0.01)
    urgent = asyncio.create_task(writer("urgent", urgent=True))
    await asyncio.sleep(0.01)
    gate.set()
    await asyncio.wait_for(asyncio.gather(first, *normal, urgent), 5)
    assert order == ["holder", "urgent", "normal0", "normal1", "normal2"]
    await store.close()


async def test_a_cancelled_waiter_does_not_wedge_the_lock(tmp_path: Path) -> None:
    """Cancelling a queued writer leaves the lock usable for everyone else."""
    import asyncio

    from bot.store.db import Store

    store = await Store.open(tmp_path / "t.db")
    gate = asyncio.Event()

    async def hold() -> None:
        async with store.transaction():
            await gate.wait()

    holder = asyncio.create_task(hold())
    await asyncio.sleep(0.01)

    async def queued() -> None:
        async with store.transaction():
            pass

    waiter = asyncio.create_task(queued())
    await asyncio.sleep(0.01)
    waiter.cancel()
    gate.set()
    await holder
    async with asyncio.timeout(2):
        async with store.transaction():
            pass
    await store.close()
