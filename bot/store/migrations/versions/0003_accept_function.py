"""PostgreSQL: the acknowledgement path's write as one stored function (``bot.store.functions``).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02

Nothing changes on SQLite.
"""

from __future__ import annotations

from alembic import op

from bot.store.functions import create_functions, drop_functions

revision = "0003"
down_revision: str | None = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_functions(op.get_bind())


def downgrade() -> None:
    drop_functions(op.get_bind())
