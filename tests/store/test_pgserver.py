"""The throwaway PostgreSQL server the PostgreSQL tests run against (bench/pgserver.py).

Two servers at most: the session's (``postgres_server``) and one started here to check that
stopping it frees its port and deletes its directory.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from pathlib import Path

import asyncpg  # type: ignore[import-untyped,unused-ignore]
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bench.pgserver import (
    BIN_ENV,
    HOST,
    PostgresNotFoundError,
    PostgresServer,
    process_alive,
    start_watchdog,
)

pytestmark = pytest.mark.timeout(60)

# The database names the parametrized isolation test saw, in run order.
_SEEN_DATABASES: list[str] = []


async def test_server_is_the_installed_postgresql(postgres_server: PostgresServer, postgres_url: str) -> None:
    """asyncpg connects with the URL to the installed major version, configured for tests."""
    conn = await asyncpg.connect(postgres_url, timeout=10)
    try:
        version: str = await conn.fetchval("SELECT version()")
        assert version.startswith(f"PostgreSQL {postgres_server.major}.")
        assert await conn.fetchval("SELECT current_user") == postgres_server.superuser
        assert await conn.fetchval("SHOW max_connections") == "200"
        assert await conn.fetchval("SHOW fsync") == "off"
        assert await conn.fetchval("SHOW server_encoding") == "UTF8"
        assert await conn.fetchval("SELECT inet_server_addr()::text") == f"{HOST}/32"
    finally:
        await conn.close()


@pytest.mark.parametrize("run", [1, 2])
async def test_each_test_gets_its_own_empty_database(postgres_url: str, run: int) -> None:
    """Each test starts in a new empty database; the previous test's database is gone."""
    conn = await asyncpg.connect(postgres_url, timeout=10)
    try:
        name: str = await conn.fetchval("SELECT current_database()")
        assert await conn.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == 0
        await conn.execute("CREATE TABLE leftover (id int)")
        if _SEEN_DATABASES:
            previous = _SEEN_DATABASES[-1]
            assert previous != name
            assert await conn.fetchval("SELECT count(*) FROM pg_database WHERE datname = $1", previous) == 0
        _SEEN_DATABASES.append(name)
    finally:
        await conn.close()


async def test_drop_database_terminates_connections_left_open(postgres_server: PostgresServer) -> None:
    """A database is dropped even while a client is still connected to it; that client is cut off."""
    postgres_server.create_database("t_left_open")
    conn = await asyncpg.connect(postgres_server.url("t_left_open"), timeout=10)
    try:
        await asyncio.to_thread(postgres_server.drop_database, "t_left_open")
        assert postgres_server.psql("SELECT count(*) FROM pg_database WHERE datname = 't_left_open'").strip() == "0"
        with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, OSError)):
            await conn.fetchval("SELECT 1")
    finally:
        conn.terminate()


async def test_advisory_locks_are_held_server_wide(postgres_url: str) -> None:
    """pg_advisory_lock on one connection blocks another until it is released."""
    first = await asyncpg.connect(postgres_url, timeout=10)
    second = await asyncpg.connect(postgres_url, timeout=10)
    try:
        await first.execute("SELECT pg_advisory_lock(4242)")
        assert await second.fetchval("SELECT pg_try_advisory_lock(4242)") is False
        assert await first.fetchval("SELECT pg_advisory_unlock(4242)") is True
        assert await second.fetchval("SELECT pg_try_advisory_lock(4242)") is True
    finally:
        await first.close()
        await second.close()


async def test_sqlalchemy_async_engine_connects(postgres_url: str) -> None:
    """The URL works for SQLAlchemy's async engine with the asyncpg driver and a pool."""
    engine = create_async_engine(postgres_url.replace("postgresql://", "postgresql+asyncpg://", 1), pool_size=5)
    try:

        async def one(i: int) -> int:
            async with engine.connect() as conn:
                return int((await conn.execute(text("SELECT CAST(:i AS integer)"), {"i": i})).scalar_one())

        assert await asyncio.gather(*(one(i) for i in range(5))) == list(range(5))
    finally:
        await engine.dispose()


def test_password_is_in_no_command_line_and_no_log(postgres_server: PostgresServer) -> None:
    """ps shows the server but not the password; the log and the data directory's config do not hold it."""
    listing = subprocess.run(["ps", "-eww", "-o", "args="], capture_output=True, text=True, timeout=10, check=True)
    assert str(postgres_server.data_dir) in listing.stdout
    assert postgres_server.password not in listing.stdout
    assert postgres_server.password not in postgres_server.log_path.read_text()
    assert postgres_server.password not in (postgres_server.data_dir / "postgresql.conf").read_text()
    assert not (postgres_server.directory / "pwfile").exists()


async def test_stop_frees_the_port_and_deletes_the_directory() -> None:
    """A server of its own: stopped with a client still connected, nothing of it is left."""
    server = PostgresServer()
    await asyncio.to_thread(server.start)
    conn = None
    try:
        port, directory, pid = server.port, server.directory, server.pid
        conn = await asyncpg.connect(server.url(), timeout=10)
        assert await conn.fetchval("SELECT 1") == 1
    finally:
        await asyncio.to_thread(server.stop)
        if conn is not None:
            conn.terminate()
    assert not directory.exists()
    assert not process_alive(pid)
    with pytest.raises(OSError):
        socket.create_connection((HOST, port), timeout=2).close()
    assert not server.running
    await asyncio.to_thread(server.stop)  # a second stop is a no-op


def test_watchdog_cleans_up_when_the_test_process_is_gone(tmp_path: Path) -> None:
    """When its pipe closes without a clean stop, the watchdog kills the postmaster and deletes the directory.

    A stand-in postmaster (a process whose working directory is the data directory, named
    in postmaster.pid) keeps this from starting another server.
    """
    directory = tmp_path / "server"
    data = directory / "data"
    data.mkdir(parents=True)
    stand_in = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], cwd=data)
    try:
        (data / "postmaster.pid").write_text(f"{stand_in.pid}\n{data}\n")
        watchdog = start_watchdog(data, directory)
        assert watchdog.stdin is not None
        watchdog.stdin.close()  # what the kernel does when the test process dies
        assert stand_in.wait(timeout=15) != 0
        assert watchdog.wait(timeout=15) == 0
        assert not directory.exists()
    finally:
        stand_in.kill()
        stand_in.wait(timeout=5)


def test_missing_binaries_fail_with_the_package_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Without initdb and friends the error names the Debian package `postgresql`."""
    monkeypatch.setenv(BIN_ENV, str(tmp_path))
    with pytest.raises(PostgresNotFoundError, match=r"Debian package `postgresql`"):
        PostgresServer()
