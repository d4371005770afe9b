"""Alembic's environment: migrations run on the connection ``bot.store.migrate`` hands over.

That connection is already inside the transaction that holds the migration lock
(SQLite's write lock, or a PostgreSQL advisory lock), so every pending revision and
the version stamp commit together or not at all.
"""

from __future__ import annotations

from alembic import context

from bot.store.tables import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    # SQLite changes most table definitions only by copying the table: let Alembic do it.
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
