"""The schema of the last release before Alembic (SQLite ``user_version`` 6).

Revision ID: 0001
Revises:
Create Date: 2026-12-02

A database made by that release is stamped at this revision without running it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "mappings",
        sa.Column("team_id", sa.Text, primary_key=True),
        sa.Column("user_id", sa.Text, primary_key=True),
        sa.Column("platform", sa.Text, primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("set_by", sa.Text),
        sa.Column("updated_at", sa.Text, nullable=False),
        sa.Column("verified_at", sa.Text),
        sa.CheckConstraint("platform IN ('datadog', 'kibana', 'xpanse')", name="mappings_platform"),
        sa.CheckConstraint("value <> ''", name="mappings_value"),
        sa.CheckConstraint("source IN ('admin', 'self', 'auto')", name="mappings_source"),
        # One platform identity belongs to at most one Slack user per workspace.
        sa.Index("mappings_by_value", "platform", "value", "team_id", unique=True),
        sqlite_with_rowid=False,
    )

    op.create_table(
        "jobs",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("verb", sa.Text, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("team_id", sa.Text, nullable=False),
        sa.Column("actor_id", sa.Text, nullable=False),
        sa.Column("channel_id", sa.Text),
        sa.Column("card_ts", sa.Text),
        sa.Column("thread_ts", sa.Text),
        sa.Column("response_url", sa.Text),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("interaction_key", sa.Text, unique=True),
        sa.Column("params", sa.Text, nullable=False),
        sa.Column("summary", sa.Text),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("reported_at", sa.Float()),
        # Which worker runs the job, until when its lease holds.
        sa.Column("claimed_by", sa.Text),
        sa.Column("lease_until", sa.Float()),
        sa.Index("jobs_state", "state"),
    )

    op.create_table(
        "job_items",
        sa.Column("job_id", sa.Text, primary_key=True),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("platform", sa.Text, nullable=False),
        sa.Column("target", sa.Text, nullable=False),
        sa.Column("space", sa.Text),
        sa.Column("item_id", sa.Text, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("detail", sa.Text, nullable=False, server_default=""),
        sa.Column("status", sa.Integer),
        sa.Column("before", sa.Text),
        sa.Column("after", sa.Text),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Index("job_items_target", "target", "state"),
    )

    op.create_table(
        "ledger",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("job_id", sa.Text),
        sa.Column("team_id", sa.Text, nullable=False),
        sa.Column("actor_id", sa.Text, nullable=False),
        sa.Column("verb", sa.Text, nullable=False),
        sa.Column("platform", sa.Text),
        sa.Column("target", sa.Text),
        sa.Column("before", sa.Text),
        sa.Column("after", sa.Text),
        sa.Column("outcome", sa.Text, nullable=False),
        sa.Column("detail", sa.Text, nullable=False, server_default=""),
        sa.Column("status", sa.Integer),
        sa.Index("ledger_target", "target", "at"),
        sa.Index("ledger_at", "at"),
        sqlite_autoincrement=True,
    )

    op.create_table(
        "oncall_baseline",
        sa.Column("schedule", sa.Text, primary_key=True),
        sa.Column("responders", sa.Text, nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
    )

    op.create_table(
        "oncall_handoffs",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("schedule", sa.Text, nullable=False),
        sa.Column("shift_start", sa.Text, nullable=False),
        sa.Column("from_email", sa.Text, nullable=False),
        sa.Column("to_email", sa.Text, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("job_id", sa.Text),
        sa.Column("due_at", sa.Float()),
        sa.Column("detail", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.CheckConstraint(
            "state IN ('pending', 'applied', 'cancelled', 'unmatched', 'ended')", name="oncall_handoffs_state_values"
        ),
        sa.UniqueConstraint("schedule", "shift_start", "from_email", "to_email", name="oncall_handoffs_once"),
        sa.Index("oncall_handoffs_state", "schedule", "state"),
        sqlite_autoincrement=True,
    )

    op.create_table(
        "intake_alerts",
        sa.Column("platform", sa.Text, primary_key=True),
        sa.Column("item_id", sa.Text, primary_key=True),
        sa.Column("space", sa.Text, primary_key=True, server_default=""),
        sa.Column("channel", sa.Text, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("received_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("attempt_at", sa.Float()),
        sa.Column("card_ts", sa.Text),
        sa.Column("digest_id", sa.Text),
        sa.Column("change_note", sa.Text),
        sa.CheckConstraint(
            "status IN ('waiting', 'posting', 'carded', 'digesting', 'digested')", name="intake_alerts_status_values"
        ),
        sa.Index("intake_alerts_waiting", "channel", "status", "received_at"),
        sa.Index("intake_alerts_status", "status"),
        sa.Index(
            "intake_alerts_changed",
            "channel",
            sqlite_where=sa.text("change_note IS NOT NULL"),
            postgresql_where=sa.text("change_note IS NOT NULL"),
        ),
    )

    op.create_table(
        "intake_channels",
        sa.Column("channel", sa.Text, primary_key=True),
        sa.Column("lease_owner", sa.Text),
        sa.Column("lease_until", sa.Float(), nullable=False, server_default="0"),
        sa.Column("blocked_until", sa.Float(), nullable=False, server_default="0"),
    )

    op.create_table(
        "intake_digests",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("channel", sa.Text, nullable=False),
        sa.Column("ts", sa.Text),
        sa.Column("created_at", sa.Float(), nullable=False),
    )

    op.create_table(
        "intake_digest_rows",
        sa.Column("digest_id", sa.Text, primary_key=True),
        sa.ForeignKeyConstraint(["digest_id"], ["intake_digests.id"], ondelete="CASCADE"),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("target", sa.Text, nullable=False),
        sa.Column("severity", sa.Text, nullable=False, server_default=""),
        sa.Column("title", sa.Text, nullable=False, server_default=""),
    )

    op.create_table(
        "live_cards",
        sa.Column("channel", sa.Text, primary_key=True),
        sa.Column("ts", sa.Text, primary_key=True),
        sa.Column("thread_ts", sa.Text),
        sa.Column("target", sa.Text, nullable=False),
        sa.Column("shown", sa.Text, nullable=False),
        sa.Column("posted_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Index("live_cards_updated", "updated_at"),
        sa.Index("live_cards_target", "target"),
    )

    op.create_table(
        "card_reminders",
        sa.Column("target", sa.Text, primary_key=True),
        sa.Column("channel", sa.Text, nullable=False),
        sa.Column("ts", sa.Text, nullable=False),
        sa.Column("sent_at", sa.Float(), nullable=False),
    )

    op.create_table(
        "loop_leases",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("owner", sa.Text),
        sa.Column("until", sa.Float(), nullable=False, server_default="0"),
    )


def downgrade() -> None:
    op.drop_table("loop_leases")
    op.drop_table("card_reminders")
    op.drop_table("live_cards")
    op.drop_table("intake_digest_rows")
    op.drop_table("intake_digests")
    op.drop_table("intake_channels")
    op.drop_table("intake_alerts")
    op.drop_table("oncall_handoffs")
    op.drop_table("oncall_baseline")
    op.drop_table("ledger")
    op.drop_table("job_items")
    op.drop_table("jobs")
    op.drop_table("mappings")
