"""``triage-bot db``: migrate the database, or move an installation to another one.

``db upgrade`` brings ``TRIAGE_DB`` to the newest schema revision (``serve`` does the
same on start, under the same lock, so running it first is optional but lets an
operator migrate before rolling out replicas). ``db copy --from A --to B`` copies every
row of every table (mappings, jobs and their items, the ledger, on-call, intake, cards,
leases) from one database to another, typically from the embedded SQLite file to
PostgreSQL; the target is migrated first and must hold no rows, and the copy is one
transaction on the target, so a failed copy leaves it empty.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
import structlog
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.errors import StoreError
from bot.store.db import Store, redacted
from bot.store.engines import is_postgres
from bot.store.tables import metadata

log = structlog.get_logger(__name__)

BATCH = 1000


async def upgrade(target: str) -> list[str]:
    """Migrate ``target``; lines saying what was done."""
    async with await Store.open(target) as store:
        return [f"{store.where}: at revision {store.schema_revision} ({store.dialect})"]


def _missing(source: str) -> bool:
    return not is_postgres(source) and source != ":memory:" and not Path(source).exists()


async def copy(source: str, target: str) -> list[str]:
    """Copy every row from ``source`` to the empty database ``target``; one line per table copied."""
    if _missing(source):
        raise StoreError(f"there is no database at {redacted(source)}")
    if redacted(source) == redacted(target):
        raise StoreError("--from and --to name the same database")
    lines: list[str] = []
    async with await Store.open(source) as src, await Store.open(target) as dst:
        tables = metadata.sorted_tables  # parents before children (foreign keys)
        async with dst.read() as conn:
            for table in tables:
                if (await conn.execute(sa.select(sa.func.count()).select_from(table))).scalar():
                    raise StoreError(
                        f"{dst.where} already holds rows (in {table.name}): copy only into an empty database"
                    )
        async with src.read() as read, dst.transaction() as write:
            for table in tables:
                count = 0
                result = await read.stream(sa.select(table))
                async for chunk in result.mappings().partitions(BATCH):
                    await write.execute(sa.insert(table), [dict(r) for r in chunk])
                    count += len(chunk)
                await _continue_ids(write, table)
                lines.append(f"{table.name}: {count} rows")
    lines.append(f"copied {redacted(source)} to {redacted(target)}")
    log.info("store.copied", source=redacted(source), target=redacted(target))
    return lines


async def _continue_ids(conn: AsyncConnection, table: sa.Table) -> None:
    """After copying explicit ids, PostgreSQL's id sequence must continue after the largest one."""
    if conn.dialect.name != "postgresql":
        return  # SQLite continues after the largest rowid by itself
    for column in table.primary_key.columns:
        if column.autoincrement is True:
            await conn.execute(
                sa.text(
                    "SELECT setval(pg_get_serial_sequence(:table, :column),"
                    f" COALESCE((SELECT MAX({column.name}) FROM {table.name}), 0) + 1, false)"
                ),
                {"table": table.name, "column": column.name},
            )
