"""The SQLite store: one connection shared by mappings, jobs and the ledger."""

from __future__ import annotations

from pathlib import Path

from bot.store.db import Store


async def open_store(path: str | Path) -> Store:
    """Open (creating and migrating as needed) the bot's database."""
    return await Store.open(path)
