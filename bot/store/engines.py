"""The SQLAlchemy engines behind ``Store``: which database ``TRIAGE_DB`` names, and how each
engine's connections are set up (SQLite's pragmas and transaction kinds; PostgreSQL's pool)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.engine.url import URL
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

BUSY_TIMEOUT_MS = 5000
# PostgreSQL: a pooled connection unused for this long is checked before it is used again.
IDLE_CHECK_S = 1.0
# Each SQLite connection's page cache, at most 1 MiB (the default is 2 MiB per connection).
CACHE = "cache_size = -1024"
POSTGRES_SCHEMES = ("postgresql", "postgres", "postgresql+asyncpg")


def is_postgres(target: str) -> bool:
    """True when ``TRIAGE_DB`` names a PostgreSQL database (a URL) rather than a SQLite file."""
    return target.split("://", 1)[0] in POSTGRES_SCHEMES and "://" in target


def database_url(target: str | Path) -> URL:
    """The SQLAlchemy URL of ``TRIAGE_DB``: ``postgresql+asyncpg://…`` or ``sqlite+aiosqlite:///path``."""
    text = str(target)
    if is_postgres(text):
        url = make_url(text)
        return url.set(drivername="postgresql+asyncpg")
    return URL.create("sqlite+aiosqlite", database=text)


# Engines are made with ``hide_parameters``: an error's message never carries the values of
# the statement (comment text, identities), only the statement itself.
def sqlite_engine(url: URL) -> AsyncEngine:
    # Few connections: SQLite has one writer at a time anyway, and each connection keeps its
    # own page cache (capped below) and driver thread.
    engine = create_async_engine(url, pool_size=3, max_overflow=3, hide_parameters=True)

    @event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        # The driver must not open transactions by itself: ``_begin`` does, with the right kind.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in (f"busy_timeout = {BUSY_TIMEOUT_MS}", "foreign_keys = ON", "synchronous = NORMAL", CACHE):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        # Writers take the write lock up front, so a check and its write cannot be split by
        # another process; readers get a snapshot and take no lock.
        options = conn.get_execution_options()
        if options.get("triage_single", False):
            return  # one statement, its own transaction (the driver is in autocommit mode)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if options.get("triage_write", False) else "BEGIN")

    return engine


def postgres_engine(url: URL) -> AsyncEngine:
    # At most 10 connections per process: a replica is two processes, and PostgreSQL allows 100
    # connections by default.
    engine = create_async_engine(url, pool_size=5, max_overflow=5, pool_recycle=1800, hide_parameters=True)
    sync = engine.sync_engine

    # A connection that sat in the pool for IDLE_CHECK_S or more is checked before use, so a database
    # restart, or a network device cutting idle connections, costs a new connection, not an error;
    # the pool then replaces every connection older than the one that failed. A connection in steady
    # use is not checked: the driver's check is three round trips (a transaction around an empty
    # statement), once per checkout, which was a third of a busy worker's round trips.
    @event.listens_for(sync, "checkin")
    def _checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(sync, "checkout")
    def _checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since < IDLE_CHECK_S:
            return
        try:
            sync.dialect.do_ping(dbapi_connection)
        except Exception as exc:  # the pool discards it and checks out another (a fresh one)
            raise sa.exc.DisconnectionError(f"idle connection is gone: {type(exc).__name__}") from exc

    return engine
