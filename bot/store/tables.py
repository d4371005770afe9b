"""The schema, once, for SQLite and PostgreSQL: SQLAlchemy Core tables.

Every query of the store is built from these tables, and the migrations under
``bot/store/migrations`` bring a database to exactly this shape (a test compares
the two). Times are seconds since the epoch (floats), as ``time.time()`` gives them.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

# Autoincrementing ids: BIGINT identity on PostgreSQL, SQLite's INTEGER PRIMARY KEY rowid.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Time = sa.Float()

# Slack user -> platform identity, one row per (workspace, user, platform). Normalised
# rather than one wide row so a fourth platform needs no migration.
mappings = sa.Table(
    "mappings",
    metadata,
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

jobs = sa.Table(
    "jobs",
    metadata,
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
    sa.Column("created_at", Time, nullable=False),
    sa.Column("updated_at", Time, nullable=False),
    sa.Column("reported_at", Time),
    # Which worker runs the job, until when its lease holds.
    sa.Column("claimed_by", sa.Text),
    sa.Column("lease_until", Time),
    # Which worker is posting the job's report, until when (a report is posted once).
    sa.Column("reporting_by", sa.Text),
    sa.Column("reporting_until", Time),
    sa.Index("jobs_state", "state"),
)

job_items = sa.Table(
    "job_items",
    metadata,
    sa.Column("job_id", sa.Text, sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
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
    sa.Column("updated_at", Time, nullable=False),
    sa.Index("job_items_target", "target", "state"),
)

ledger = sa.Table(
    "ledger",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("at", Time, nullable=False),
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

# On-call schedules: the responders last seen per schedule, and one row per shift-change
# handoff; the unique key makes a handoff happen at most once across replicas.
oncall_baseline = sa.Table(
    "oncall_baseline",
    metadata,
    sa.Column("schedule", sa.Text, primary_key=True),
    sa.Column("responders", sa.Text, nullable=False),
    sa.Column("updated_at", Time, nullable=False),
)

oncall_handoffs = sa.Table(
    "oncall_handoffs",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("schedule", sa.Text, nullable=False),
    sa.Column("shift_start", sa.Text, nullable=False),
    sa.Column("from_email", sa.Text, nullable=False),
    sa.Column("to_email", sa.Text, nullable=False),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("job_id", sa.Text),
    sa.Column("due_at", Time),
    sa.Column("detail", sa.Text, nullable=False, server_default=""),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("updated_at", Time, nullable=False),
    sa.CheckConstraint(
        "state IN ('pending', 'applied', 'cancelled', 'unmatched', 'ended')", name="oncall_handoffs_state_values"
    ),
    sa.UniqueConstraint("schedule", "shift_start", "from_email", "to_email", name="oncall_handoffs_once"),
    sa.Index("oncall_handoffs_state", "schedule", "state"),
    sqlite_autoincrement=True,
)

# Intake: accepted webhook alerts waiting for a channel's poster, the per-channel lease and
# Retry-After, digests and the rows each lists.
intake_alerts = sa.Table(
    "intake_alerts",
    metadata,
    sa.Column("platform", sa.Text, primary_key=True),
    sa.Column("item_id", sa.Text, primary_key=True),
    sa.Column("space", sa.Text, primary_key=True, server_default=""),
    sa.Column("channel", sa.Text, nullable=False),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("received_at", Time, nullable=False),
    sa.Column("updated_at", Time, nullable=False),
    sa.Column("attempt_at", Time),
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

intake_channels = sa.Table(
    "intake_channels",
    metadata,
    sa.Column("channel", sa.Text, primary_key=True),
    sa.Column("lease_owner", sa.Text),
    sa.Column("lease_until", Time, nullable=False, server_default="0"),
    sa.Column("blocked_until", Time, nullable=False, server_default="0"),
)

intake_digests = sa.Table(
    "intake_digests",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("channel", sa.Text, nullable=False),
    sa.Column("ts", sa.Text),
    sa.Column("created_at", Time, nullable=False),
)

intake_digest_rows = sa.Table(
    "intake_digest_rows",
    metadata,
    sa.Column("digest_id", sa.Text, sa.ForeignKey("intake_digests.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("target", sa.Text, nullable=False),
    sa.Column("severity", sa.Text, nullable=False, server_default=""),
    sa.Column("title", sa.Text, nullable=False, server_default=""),
)

# Live cards (what each card the bot posted showed, for the reconciler), the one reminder
# per item, and named leases so one replica at a time runs a background loop.
live_cards = sa.Table(
    "live_cards",
    metadata,
    sa.Column("channel", sa.Text, primary_key=True),
    sa.Column("ts", sa.Text, primary_key=True),
    sa.Column("thread_ts", sa.Text),
    sa.Column("target", sa.Text, nullable=False),
    sa.Column("shown", sa.Text, nullable=False),
    sa.Column("posted_at", Time, nullable=False),
    sa.Column("updated_at", Time, nullable=False),
    sa.Index("live_cards_updated", "updated_at"),
    sa.Index("live_cards_target", "target"),
)

card_reminders = sa.Table(
    "card_reminders",
    metadata,
    sa.Column("target", sa.Text, primary_key=True),
    sa.Column("channel", sa.Text, nullable=False),
    sa.Column("ts", sa.Text, nullable=False),
    sa.Column("sent_at", Time, nullable=False),
)

loop_leases = sa.Table(
    "loop_leases",
    metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("owner", sa.Text),
    sa.Column("until", Time, nullable=False, server_default="0"),
)

# Shared request budgets (a tenant's rate limit for all replicas together): the earliest
# moment the next request may go, per budget. A replica takes a slot by locking the row,
# moving ``next_at`` one interval on and committing, then waits for its slot, so requests
# from every replica are spaced as one client's would be.
rate_budgets = sa.Table(
    "rate_budgets",
    metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("next_at", Time, nullable=False),
)
