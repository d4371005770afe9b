"""PostgreSQL connections: reads and single writes without a transaction around them, and an idle
connection the server cut is replaced before use."""

from __future__ import annotations

import asyncio

import asyncpg  # type: ignore[import-untyped,unused-ignore]
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

import bot.store.engines as engines
from bot.store.db import Store
from bot.store.tables import mappings


async def _backend(store: Store) -> int:
    async with store.read() as conn:
        return int((await conn.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one())


async def _xact(conn: AsyncConnection) -> int:
    """The id of the transaction this statement runs in."""
    return int((await conn.execute(sa.text("SELECT pg_current_xact_id()::text::bigint"))).scalar_one())


async def _cut(url: str, pid: int) -> None:
    """Terminate backend ``pid`` from another session, as a restart or an idle cut would."""
    other = await asyncpg.connect(url)
    try:
        assert await other.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await other.close()


async def _cut_the_pooled_connection(store: Store, url: str) -> int:
    """Use one pooled connection, then terminate its backend; its pid."""
    pid = await _backend(store)
    await _cut(url, pid)
    await asyncio.sleep(0.1)
    return pid


async def test_reads_and_single_writes_run_outside_a_transaction(postgres_url: str) -> None:
    """No BEGIN/COMMIT round trips: inside ``read()`` each statement is its own transaction, and a
    ``write_one`` is committed by itself (another session sees it at once)."""
    store = await Store.open(postgres_url)
    try:
        async with store.read() as conn:  # two statements, two transactions
            assert await _xact(conn) != await _xact(conn)
        insert = sa.insert(mappings).values(
            team_id="T1", user_id="U1", platform="datadog", value="dd-1", source="admin", updated_at="now"
        )
        assert (await store.write_one(insert)).rowcount == 1
        other = await asyncpg.connect(postgres_url)
        try:
            assert await other.fetchval("SELECT value FROM mappings WHERE user_id = 'U1'") == "dd-1"
        finally:
            await other.close()
        async with store.transaction() as conn:  # a write transaction still wraps its statements
            assert await _xact(conn) == await _xact(conn)
    finally:
        await store.close()


async def test_an_idle_connection_the_server_cut_is_replaced_before_use(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pooled connection unused for ``IDLE_CHECK_S`` is checked at checkout: a dead one costs a new
    connection, not an error."""
    monkeypatch.setattr(engines, "IDLE_CHECK_S", 0.05)
    async with await Store.open(postgres_url) as store:
        first = await _cut_the_pooled_connection(store, postgres_url)
        assert await _backend(store) != first


async def test_a_connection_in_steady_use_is_not_checked_and_the_pool_recovers(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The trade made for speed: a connection reused within ``IDLE_CHECK_S`` is not checked, so a cut
    there fails that one statement; the pool discards the connection and the next statement works."""
    monkeypatch.setattr(engines, "IDLE_CHECK_S", 3600.0)
    async with await Store.open(postgres_url) as store:
        first = await _cut_the_pooled_connection(store, postgres_url)
        with pytest.raises(sa.exc.DBAPIError):
            await _backend(store)
        assert await _backend(store) != first
