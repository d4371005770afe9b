"""Bringing a database to the schema this code knows, once, under a lock.

One migration history for both engines: the Alembic revisions under
``bot/store/migrations/versions``. ``upgrade`` runs every pending revision in one
transaction that first takes the migration lock (SQLite: ``BEGIN IMMEDIATE``, the
database's write lock; PostgreSQL: a transaction-scoped advisory lock), then re-reads
the version, so replicas starting together migrate once and the others find the work
done. A database stamped with a revision this code does not know was written by a
newer release: it is refused before anything is written to it.

SQLite files from before Alembic carry their version in ``PRAGMA user_version``
(1 to 6): the missing scripts of ``bot.store.legacy`` bring them to 6, which is
revision ``0001``, and Alembic goes on from there. Alembic-managed SQLite files get
``user_version`` 7, so an older release refuses them as newer instead of trying to
migrate them again.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Connection

from bot.errors import StoreError
from bot.store.functions import create_functions
from bot.store.legacy import LEGACY_MIGRATIONS
from bot.store.tables import metadata

if TYPE_CHECKING:
    from alembic.config import Config

log = structlog.get_logger(__name__)

# Every revision, oldest first (a test checks this against the scripts themselves).
REVISIONS: tuple[str, ...] = ("0001", "0002", "0003", "0004")
HEAD = REVISIONS[-1]
LEGACY_VERSION = len(LEGACY_MIGRATIONS)  # the last pre-Alembic SQLite schema = revision 0001
ALEMBIC_USER_VERSION = LEGACY_VERSION + 1
# pg_advisory_xact_lock key of the migration lock ("triage" in ASCII).
PG_MIGRATION_LOCK = 0x747269616765

_alembic_version = sa.Table(
    "alembic_version",
    sa.MetaData(),
    sa.Column("version_num", sa.String(32), primary_key=True),
)


class Version:
    """What a database says about its schema, read without writing to it."""

    def __init__(self, *, revision: str | None, user_version: int, empty: bool) -> None:
        self.revision = revision
        self.user_version = user_version
        self.empty = empty

    @property
    def current(self) -> bool:
        return self.revision == HEAD

    def describe(self) -> str:
        if self.revision is not None:
            return f"revision {self.revision}"
        return f"schema version {self.user_version}" if self.user_version else "an empty database"


def read_version(conn: Connection) -> Version:
    """The schema revision of the database on ``conn`` (no write)."""
    sqlite = conn.dialect.name == "sqlite"
    user_version = 0
    if sqlite:
        user_version = int(conn.exec_driver_sql("PRAGMA user_version").scalar() or 0)
    names = set(sa.inspect(conn).get_table_names())
    revision = None
    if "alembic_version" in names:
        revision = conn.execute(sa.select(_alembic_version.c.version_num)).scalar()
    return Version(revision=revision, user_version=user_version, empty=not (names - {"alembic_version"}))


def refuse_newer(version: Version, where: str) -> None:
    """Raise ``StoreError`` when the database was written by a newer release."""
    newer = (version.revision is not None and version.revision not in REVISIONS) or (
        version.revision is None and version.user_version > LEGACY_VERSION
    )
    if version.user_version > ALEMBIC_USER_VERSION:
        newer = True
    if newer:
        raise StoreError(
            f"the database {where} is at {version.describe()}, but this version of the bot only knows up to "
            f"revision {HEAD}: it was written by a newer version of the bot and has been left untouched; "
            "upgrade the bot or point TRIAGE_DB elsewhere"
        )


def upgrade(conn: Connection, where: str) -> list[str]:
    """Bring the database on ``conn`` (inside its migration transaction) to ``HEAD``; the revisions applied."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_MIGRATION_LOCK})
    version = read_version(conn)  # again, under the lock: another replica may have done it
    refuse_newer(version, where)
    if version.current:
        return []
    if version.empty and version.revision is None:
        # A new database: the tables as the revisions leave them, then the stamp.
        metadata.create_all(conn)
        create_functions(conn)
        _stamp(conn, HEAD)
        return [f"new database at {HEAD}"]
    applied: list[str] = []
    if version.revision is None:
        _legacy_to_baseline(conn, version.user_version, where)
        _stamp(conn, REVISIONS[0])
        applied.append(f"legacy {version.user_version} -> {REVISIONS[0]}")
        version = read_version(conn)
    start = version.revision
    _run_alembic(conn)
    applied.extend(REVISIONS[REVISIONS.index(start or REVISIONS[0]) + 1 :])
    return applied


def _legacy_to_baseline(conn: Connection, user_version: int, where: str) -> None:
    for number, script in enumerate(LEGACY_MIGRATIONS, start=1):
        if number <= user_version:
            continue
        try:
            for statement in split_statements(script):
                conn.exec_driver_sql(statement)
        except sa.exc.DBAPIError as exc:
            raise StoreError(f"migration {number} failed on {where}: {exc.orig}") from exc
        conn.exec_driver_sql(f"PRAGMA user_version = {number:d}")


def _stamp(conn: Connection, revision: str) -> None:
    """Record ``revision`` as Alembic does, and mark the file as managed by Alembic."""
    _alembic_version.create(conn, checkfirst=True)
    conn.execute(sa.delete(_alembic_version))
    conn.execute(sa.insert(_alembic_version).values(version_num=revision))
    _mark_managed(conn)


def _mark_managed(conn: Connection) -> None:
    """SQLite only: a ``user_version`` past the legacy ones, so an older release refuses the file."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql(f"PRAGMA user_version = {ALEMBIC_USER_VERSION:d}")


def _run_alembic(conn: Connection) -> None:
    from alembic import command

    cfg = alembic_config()
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, HEAD)
    _mark_managed(conn)


def alembic_config() -> Config:
    """Alembic's configuration for this package's revisions (no alembic.ini needed)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).with_name("migrations")))
    return cfg


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
