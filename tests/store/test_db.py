"""The store's database: creation, the migration history, refusal of newer schemas, transactions."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa

import bot.store.migrate as migrate
from bot.errors import StoreError
from bot.store.db import Store, redacted
from bot.store.engines import database_url
from bot.store.legacy import LEGACY_MIGRATIONS
from bot.store.migrate import split_statements
from bot.store.tables import metadata
from tests.sql import run_sql, scalar

RELEASE_FILE = Path(__file__).with_name("data") / "release-schema-6.db"


def _legacy_file(path: Path, version: int) -> None:
    with sqlite3.connect(path) as raw:
        for number, script in enumerate(LEGACY_MIGRATIONS[:version], start=1):
            for statement in split_statements(script):
                raw.execute(statement)
            raw.execute(f"PRAGMA user_version = {number}")
    raw.close()


async def test_a_new_file_is_created_at_the_newest_revision(tmp_path: Path) -> None:
    """A new file gets every table and the newest revision; SQLite's user_version marks it for old releases."""
    path = tmp_path / "sub" / "triage.db"
    async with await Store.open(path) as store:
        assert path.exists()
        assert store.schema_revision == migrate.HEAD
        names = {r[0] for r in await run_sql(store, "SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert set(metadata.tables) <= names
    with sqlite3.connect(path) as raw:
        assert raw.execute("SELECT version_num FROM alembic_version").fetchall() == [(migrate.HEAD,)]
        # A release from before the migration history refuses this file as newer instead of re-creating it.
        assert raw.execute("PRAGMA user_version").fetchone()[0] > len(LEGACY_MIGRATIONS)
    raw.close()


async def test_wal_foreign_keys_and_busy_timeout_are_on(tmp_path: Path) -> None:
    """Every connection runs in WAL mode with foreign keys and a busy timeout."""
    async with await Store.open(tmp_path / "t.db") as store:
        assert store.journal_mode == "wal"
        async with store.read() as conn:
            assert (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar() == "wal"
            assert (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar() == 1
            assert int((await conn.exec_driver_sql("PRAGMA busy_timeout")).scalar() or 0) > 0


async def test_reopen_applies_nothing_and_keeps_data(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    async with await Store.open(path) as store:
        await run_sql(
            store,
            "INSERT INTO mappings (team_id, user_id, platform, value, source, updated_at) "
            "VALUES ('T1', 'U1', 'xpanse', 'a@b.io', 'self', '2024-01-01T00:00:00+00:00')",
        )
    async with await Store.open(path) as again:
        assert again.schema_revision == migrate.HEAD
        assert await scalar(again, "SELECT count(*) FROM mappings") == 1


async def test_a_file_written_by_the_last_release_upgrades_in_place_with_nothing_lost(tmp_path: Path) -> None:
    """The committed file was made by the release before the migration history (schema 6), with a row
    in every table; it upgrades in place and every row reads back unchanged."""
    path = tmp_path / "release.db"
    shutil.copy(RELEASE_FILE, path)
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == 6
        tables = [r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        before = {t: sorted(raw.execute(f'SELECT * FROM "{t}"').fetchall()) for t in tables}
    raw.close()
    async with await Store.open(path) as store:
        assert store.schema_revision == migrate.HEAD
        for table, rows in before.items():
            if table == "sqlite_sequence":
                continue
            assert rows, f"the release file has no row in {table}"
            old_columns = [c[1] for c in sqlite3.connect(RELEASE_FILE).execute(f'PRAGMA table_info("{table}")')]
            got = await run_sql(store, f'SELECT {", ".join(old_columns)} FROM "{table}"')
            assert sorted(tuple(r) for r in got) == rows, table
        # New columns arrive empty, and the stores read the old rows.
        assert await scalar(store, "SELECT count(*) FROM jobs WHERE reporting_by IS NULL") == 2
        from bot.store.jobs import JobStore

        job = await JobStore(store).get("job000000001")
        assert job is not None and job.params.assignee == "U0ALICE" and job.reported_at == 1764500002.0
        assert [i.target.key for i in await JobStore(store).items("job000000002")] == ["kibana:prod/abc123"]


@pytest.mark.parametrize("version", [1, 3, 5])
async def test_older_pre_history_files_are_brought_up_to_date(tmp_path: Path, version: int) -> None:
    path = tmp_path / "old.db"
    _legacy_file(path, version)
    async with await Store.open(path) as store:
        assert store.schema_revision == migrate.HEAD
        assert await scalar(store, "SELECT count(*) FROM live_cards") == 0


async def test_a_failed_migration_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    """A migration that fails leaves neither its tables nor a changed version."""
    path = tmp_path / "t.db"
    _legacy_file(path, 5)
    with sqlite3.connect(path) as raw:
        raw.execute("CREATE TABLE live_cards (x)")  # in the way of migration 6
    raw.close()
    with pytest.raises(StoreError, match="migration 6 failed"):
        await Store.open(path)
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == 5
        names = {r[0] for r in raw.execute("SELECT name FROM sqlite_master")}
    raw.close()
    assert "card_reminders" not in names and "alembic_version" not in names


@pytest.mark.parametrize("stamp", ["revision", "user_version"])
async def test_a_newer_database_is_refused_and_left_untouched(tmp_path: Path, stamp: str) -> None:
    """A database from a newer bot raises StoreError and is not modified in any way."""
    path = tmp_path / "future.db"
    with sqlite3.connect(path) as raw:
        raw.execute("CREATE TABLE future (x)")
        if stamp == "revision":
            raw.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)")
            raw.execute("INSERT INTO alembic_version VALUES ('9999')")
            raw.execute(f"PRAGMA user_version = {migrate.ALEMBIC_USER_VERSION}")
        else:
            raw.execute("PRAGMA user_version = 42")
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
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not a database at all, not even close" * 20)
    with pytest.raises(StoreError, match=r"junk\.db"):
        await Store.open(path)


async def test_a_database_behind_is_refused_when_migrating_is_not_allowed(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _legacy_file(path, 6)
    with pytest.raises(StoreError, match="db upgrade"):
        await Store.open(path, migrate_schema=False)


async def test_memory_database_works() -> None:
    async with await Store.open(":memory:") as store:
        assert store.schema_revision == migrate.HEAD
        await run_sql(store, "INSERT INTO loop_leases (name, until) VALUES ('x', 1.0)")
        assert await scalar(store, "SELECT count(*) FROM loop_leases") == 1


async def test_transaction_rolls_back_on_error() -> None:
    """An exception inside transaction() undoes its writes and propagates."""
    async with await Store.open(":memory:") as store:
        with pytest.raises(RuntimeError):
            async with store.transaction() as conn:
                await conn.execute(
                    sa.text(
                        "INSERT INTO mappings (team_id, user_id, platform, value, source, updated_at)"
                        " VALUES ('T1', 'U1', 'xpanse', 'a@b.io', 'self', 'now')"
                    )
                )
                raise RuntimeError("boom")
        assert await scalar(store, "SELECT count(*) FROM mappings") == 0


async def test_transactions_are_serialised() -> None:
    """Concurrent transaction() blocks of one process never interleave on SQLite."""
    order: list[str] = []
    async with await Store.open(":memory:") as store:

        async def writer(name: str) -> None:
            async with store.transaction():
                order.append(f"{name}-start")
                await asyncio.sleep(0)
                order.append(f"{name}-end")

        await asyncio.gather(writer("a"), writer("b"))
    assert order in (["a-start", "a-end", "b-start", "b-end"], ["b-start", "b-end", "a-start", "a-end"])


def test_split_statements_keeps_semicolons_in_literals() -> None:
    script = "CREATE TABLE a (x TEXT DEFAULT ';');\n-- done\nINSERT INTO a VALUES ('1;2');\n-- end\n"
    assert split_statements(script) == [
        "CREATE TABLE a (x TEXT DEFAULT ';');",
        "-- done\nINSERT INTO a VALUES ('1;2');",
    ]
    with pytest.raises(StoreError, match="incomplete"):
        split_statements("CREATE TABLE b (x)")


async def test_urgent_writers_go_before_queued_ordinary_writers(tmp_path: Path) -> None:
    """A job being accepted (urgent) is not stuck behind the workers' queued bookkeeping writes."""
    order: list[str] = []
    gate = asyncio.Event()
    async with await Store.open(tmp_path / "t.db") as store:

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


async def test_a_cancelled_waiter_does_not_wedge_the_lock(tmp_path: Path) -> None:
    gate = asyncio.Event()
    async with await Store.open(tmp_path / "t.db") as store:

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
        async with asyncio.timeout(2), store.transaction():
            pass


def test_urls_and_what_is_shown_of_them() -> None:
    """A PostgreSQL URL is driven by asyncpg and its password is never shown; a path stays a path."""
    url = "postgresql://triage:s3cret-pass@db.internal:5432/triage"
    assert database_url(url).drivername == "postgresql+asyncpg"
    assert "s3cret-pass" not in redacted(url) and "db.internal:5432/triage" in redacted(url)
    assert database_url("triage.db").drivername == "sqlite+aiosqlite"
    assert redacted("/data/triage.db") == "/data/triage.db"


def test_the_revision_list_is_the_scripts_history() -> None:
    """``migrate.REVISIONS`` (what the code checks a database against) is exactly the scripts' chain."""
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(migrate.alembic_config())
    chain = [s.revision for s in reversed(list(scripts.walk_revisions()))]
    assert tuple(chain) == migrate.REVISIONS
    assert scripts.get_current_head() == migrate.HEAD


async def test_a_malformed_postgresql_url_is_a_store_error_without_the_password() -> None:
    with pytest.raises(StoreError, match="not a usable PostgreSQL URL") as info:
        await Store.open("postgresql://triage:s3cret@db:notaport/triage")
    assert "s3cret" not in str(info.value)
