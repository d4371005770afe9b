"""Plain SQL against a test's store (either engine), for setting up or checking rows directly."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from bot.store.db import Store


async def run_sql(store: Store, statement: str, **params: Any) -> list[tuple[Any, ...]]:
    """Run ``statement`` (``:name`` parameters) in one write transaction; the rows it returned."""
    async with store.transaction() as conn:
        result = await conn.execute(sa.text(statement), params)
        return [tuple(r) for r in result.all()] if result.returns_rows else []


async def scalar(store: Store, statement: str, **params: Any) -> Any:
    """The first column of the first row ``statement`` returns."""
    rows = await run_sql(store, statement, **params)
    return rows[0][0] if rows else None
