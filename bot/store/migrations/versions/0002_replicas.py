"""Several replicas on one database: report claims, item guards, shared rate budgets.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("reporting_by", sa.Text))
    op.add_column("jobs", sa.Column("reporting_until", sa.Float()))
    op.create_table(
        "item_guards",
        sa.Column("target", sa.Text, primary_key=True),
        sa.Column("at", sa.Float(), nullable=False),
    )

    op.create_table(
        "rate_budgets",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("next_at", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("rate_budgets")
    op.drop_table("item_guards")
    op.drop_column("jobs", "reporting_until")
    op.drop_column("jobs", "reporting_by")
