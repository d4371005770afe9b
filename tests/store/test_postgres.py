"""The store on a real PostgreSQL server (started by the tests): migrating once, refusing newer, copying in."""

from __future__ import annotations

import asyncio
import itertools
import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

import bot.store.migrate as migrate
from bot.errors import StoreError
from bot.models import JobParams, Platform, Target, Verb
from bot.ops import db_cli
from bot.store.budgets import SharedBudget
from bot.store.db import Store
from bot.store.engines import database_url
from bot.store.functions import ACCEPT, accept_body
from bot.store.jobs import JobStore, SameChange
from bot.store.tables import metadata
from tests.sql import run_sql, scalar

RELEASE_FILE = Path(__file__).with_name("data") / "release-schema-6.db"


async def test_three_replicas_starting_together_migrate_once(postgres_url: str) -> None:
    """Three stores opening one new database at once: all come up at the newest revision, tables made once."""
    stores = await asyncio.gather(*(Store.open(postgres_url) for _ in range(3)))
    try:
        assert {s.schema_revision for s in stores} == {migrate.HEAD}
        assert await scalar(stores[0], "SELECT count(*) FROM alembic_version") == 1
        tables = await run_sql(stores[0], "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        assert set(metadata.tables) <= {t[0] for t in tables}
    finally:
        for s in stores:
            await s.close()


async def test_the_migration_scripts_build_the_schema_the_code_queries(postgres_url: str) -> None:
    """Running every revision from empty (not the new-database shortcut) gives exactly ``tables.metadata``."""
    from alembic import command
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    eng = create_async_engine(database_url(postgres_url))
    try:
        async with eng.begin() as conn:

            def run(sync: sa.Connection) -> list[object]:
                cfg = migrate.alembic_config()
                cfg.attributes["connection"] = sync
                command.upgrade(cfg, "head")
                return list(compare_metadata(MigrationContext.configure(sync), metadata))

            diff = await conn.run_sync(run)
            source = await conn.run_sync(_function_source)
        assert diff == []
        assert source == f" {accept_body()} "  # the revisions create the function this code calls
    finally:
        await eng.dispose()


def _function_source(sync: sa.Connection) -> str | None:
    row = sync.execute(sa.text("SELECT prosrc FROM pg_proc WHERE proname = :name"), {"name": ACCEPT})
    return row.scalar()


async def test_a_new_database_gets_the_stored_function_this_code_calls(postgres_url: str) -> None:
    """The new-database shortcut (tables from the metadata) creates the function too, from the same statements."""
    async with await Store.open(postgres_url) as store, store.read() as conn:
        assert await conn.run_sync(_function_source) == f" {accept_body()} "


async def test_a_newer_database_is_refused_untouched(postgres_url: str) -> None:
    async with await Store.open(postgres_url) as store:
        await run_sql(store, "UPDATE alembic_version SET version_num = '9999'")
        await run_sql(store, "CREATE TABLE from_the_future (x int)")
    with pytest.raises(StoreError, match="newer version of the bot"):
        await Store.open(postgres_url)
    engine = create_async_engine(database_url(postgres_url))
    try:
        async with engine.connect() as conn:
            assert (await conn.execute(sa.text("SELECT version_num FROM alembic_version"))).scalar() == "9999"
    finally:
        await engine.dispose()


async def test_an_unreachable_server_is_a_store_error_without_the_password() -> None:
    url = "postgresql://triage:not-the-real-pw@127.0.0.1:9/triage"
    with pytest.raises(StoreError) as info:
        await Store.open(url)
    assert "not-the-real-pw" not in str(info.value)
    assert "127.0.0.1:9/triage" in str(info.value)


async def test_one_change_at_a_time_is_enforced_by_the_database(postgres_url: str) -> None:
    """Two replicas (two stores, two pools) accepting the same change at once: one job, one "already"."""
    a, b = await Store.open(postgres_url), await Store.open(postgres_url)
    try:
        target = Target(platform=Platform.XPANSE, id="1042")

        async def submit(store: Store, key: str) -> object:
            return await JobStore(store).submit(
                verb=Verb.ASSIGN,
                team_id="T1",
                actor_id="U0ALICE",
                targets=[target],
                params=JobParams(assignee="U0BOB"),
                source="button",
                from_card=True,
                interaction_key=key,
            )

        for round_ in range(5):
            results = await asyncio.gather(*(submit(s, f"k{round_}-{n}") for n, s in enumerate((a, b, a, b))))
            assert sum(not isinstance(r, SameChange) for r in results) == 1, results
            await run_sql(a, "UPDATE jobs SET state = 'done'")
            await run_sql(a, "UPDATE job_items SET state = 'done'")
        # The same delivery twice (one interaction key) is stored once.
        await asyncio.gather(submit(a, "same"), submit(b, "same"))
        assert await scalar(a, "SELECT count(*) FROM jobs WHERE interaction_key = 'same'") <= 1
    finally:
        await a.close()
        await b.close()


async def test_a_shared_budget_spaces_requests_across_stores(postgres_url: str) -> None:
    """Three replicas taking slots of one 20/s budget together: every slot at least 1/20 s after the last."""
    stores = [await Store.open(postgres_url) for _ in range(3)]
    try:
        budgets = [SharedBudget(s, "xpanse", rate=20) for s in stores]
        loop = asyncio.get_running_loop()
        started = loop.time()
        taken = await asyncio.gather(*(b.take() for b in budgets for _ in range(10)))
        assert loop.time() - started < 5
        slots = sorted(slot for slot, _ in taken)
        gaps = [b - a for a, b in itertools.pairwise(slots)]
        assert len(slots) == 30 and min(gaps) >= 1 / 20, gaps
    finally:
        for s in stores:
            await s.close()


async def test_db_copy_moves_a_release_file_into_postgresql(tmp_path: Path, postgres_url: str) -> None:
    """Every row of a SQLite file made by the last release arrives in PostgreSQL; ids continue after."""
    source = tmp_path / "triage.db"
    shutil.copy(RELEASE_FILE, source)
    lines = await db_cli.copy(str(source), postgres_url)
    assert "ledger: 2 rows" in lines and "jobs: 2 rows" in lines
    assert all("not-shown" not in line for line in lines)
    async with await Store.open(source) as src, await Store.open(postgres_url) as dst:
        for table in metadata.sorted_tables:
            got = sorted(map(tuple, await run_sql(dst, f"SELECT * FROM {table.name}")))
            want = sorted(map(tuple, await run_sql(src, f"SELECT * FROM {table.name}")))
            assert got == want, table.name
        jobs = JobStore(dst)
        await jobs.record(team_id="T1", actor_id="U1", verb="assign", outcome="refused")
        assert await scalar(dst, "SELECT max(id) FROM ledger") == 3
        job = await jobs.get("job000000001")
        assert job is not None and job.params.assignee == "U0ALICE"
    with pytest.raises(StoreError, match="already holds rows"):
        await db_cli.copy(str(source), postgres_url)


async def test_the_first_accept_function_is_replaced_and_both_versions_answer_alike(postgres_url: str) -> None:
    """Revision 0004 replaces 0003's ``triage_accept`` (a guard row per item, the stored job sent back) with
    one that takes an advisory lock and answers "stored" alone; this code reads either one's answers the
    same way, and the replicas still running the previous release read the new one's the same way too."""
    import importlib
    import json

    import asyncpg  # type: ignore[import-untyped,unused-ignore]
    from alembic import command
    from sqlalchemy.dialects.postgresql import asyncpg as asyncpg_dialect

    from bot.store.accept import Submission, accept_call

    body_0003 = importlib.import_module("bot.store.migrations.versions.0004_item_locks")._BODY_0003
    dialect = asyncpg_dialect.dialect()  # type: ignore[no-untyped-call]
    eng = create_async_engine(database_url(postgres_url))

    async def to(revision: str) -> tuple[str | None, bool]:
        """Migrate to ``revision``; the function's source then, and whether ``item_guards`` exists."""
        async with eng.begin() as conn:

            def run(sync: sa.Connection) -> tuple[str | None, bool]:
                cfg = migrate.alembic_config()
                cfg.attributes["connection"] = sync
                step = command.upgrade if revision == "head" else command.downgrade
                step(cfg, revision)
                return _function_source(sync), sa.inspect(sync).has_table("item_guards")

            return await conn.run_sync(run)

    driver = await asyncpg.connect(postgres_url)

    async def accept(n: int, item: str) -> tuple[dict[str, object], object]:
        """Store an Assign-me click on ``item``: the function's JSON and the answer this code makes of it."""
        sub = Submission(
            verb=Verb.ASSIGN,
            team_id="T1",
            actor_id="U0ALICE",
            targets=[Target(platform=Platform.XPANSE, id=item)],
            params=JobParams(assignee="U0BOB"),
            source="button",
            from_card=True,
            interaction_key=f"key-{n}",
        )
        call = accept_call(f"job-{n}", sub)
        compiled = call.statement.compiled(dialect)
        found = json.loads(await driver.fetchval(compiled.sql, *compiled.values(call.params)))
        return found, call.answer(found)

    try:
        await to("head")
        assert await to("0003") == (f" {body_0003} ", True)
        (found, first), (_, again) = await accept(1, "1042"), await accept(2, "1042")
        assert found["outcome"] == "stored" and "row" in found  # 0003 sent the job back
        assert getattr(first, "id", None) == "job-1" and isinstance(again, SameChange)
        assert await driver.fetchval("SELECT count(*) FROM item_guards") == 1
        assert await to("head") == (f" {accept_body()} ", False)
        (found, first), (flight, again) = await accept(3, "1043"), await accept(4, "1043")
        # The outcome alone: the previous release's callers read the row only for "in_flight" and "latest".
        assert found == {"outcome": "stored"} and flight["outcome"] == "in_flight" and "row" in flight
        assert getattr(first, "id", None) == "job-3" and isinstance(again, SameChange)
        _, still = await accept(5, "1042")  # the job stored under 0003 is still the one in flight
        assert isinstance(still, SameChange) and "xpanse:1042 is already being handled" in still.message
    finally:
        await driver.close()
        await eng.dispose()
