"""The SQLite schema history from before Alembic, frozen: versions 1 to 6.

A SQLite file written by those releases records its version in ``PRAGMA
user_version``. ``bot.store.migrate`` applies the scripts it is missing (version
N-1 to N is script N), which brings it to version 6, the shape of Alembic's first
revision (``0001``), stamps that revision and continues with Alembic. New schema
changes are Alembic revisions under ``bot/store/migrations/versions``; these
scripts never change.
"""

from __future__ import annotations

LEGACY_MIGRATIONS: list[str] = [
    # 1. Slack user -> platform identity, one row per (workspace, user, platform).
    # Normalised rather than one wide row so a fourth platform needs no migration,
    # and the reverse look-up (which Slack user is Datadog user X) is one index.
    """
    CREATE TABLE mappings (
        team_id     TEXT NOT NULL,
        user_id     TEXT NOT NULL,
        platform    TEXT NOT NULL CHECK (platform IN ('datadog', 'kibana', 'xpanse')),
        value       TEXT NOT NULL CHECK (value <> ''),
        source      TEXT NOT NULL CHECK (source IN ('admin', 'self', 'auto')),
        set_by      TEXT,
        updated_at  TEXT NOT NULL,
        verified_at TEXT,
        PRIMARY KEY (team_id, user_id, platform)
    ) WITHOUT ROWID;
    -- One platform identity belongs to at most one Slack user per workspace, so an
    -- assignee always renders as exactly one mention.
    CREATE UNIQUE INDEX mappings_by_value ON mappings (platform, value, team_id);
    """,
    # 2. Durable jobs with their items, and the ledger of every change, refusal and failure.
    """
CREATE TABLE jobs (
    id              TEXT PRIMARY KEY,
    verb            TEXT NOT NULL,
    state           TEXT NOT NULL,
    team_id         TEXT NOT NULL,
    actor_id        TEXT NOT NULL,
    channel_id      TEXT,
    card_ts         TEXT,
    thread_ts       TEXT,
    response_url    TEXT,
    source          TEXT NOT NULL,
    interaction_key TEXT UNIQUE,
    params          TEXT NOT NULL,
    summary         TEXT,
    created_at      REAL NOT NULL,
    updated_at      REAL NOT NULL,
    reported_at     REAL
);
CREATE INDEX jobs_state ON jobs(state);

CREATE TABLE job_items (
    job_id      TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    seq         INTEGER NOT NULL,
    platform    TEXT NOT NULL,
    target      TEXT NOT NULL,
    space       TEXT,
    item_id     TEXT NOT NULL,
    state       TEXT NOT NULL,
    detail      TEXT NOT NULL DEFAULT '',
    status      INTEGER,
    before      TEXT,
    after       TEXT,
    updated_at  REAL NOT NULL,
    PRIMARY KEY (job_id, seq)
);
CREATE INDEX job_items_target ON job_items(target, state);

CREATE TABLE ledger (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          REAL NOT NULL,
    job_id      TEXT,
    team_id     TEXT NOT NULL,
    actor_id    TEXT NOT NULL,
    verb        TEXT NOT NULL,
    platform    TEXT,
    target      TEXT,
    before      TEXT,
    after       TEXT,
    outcome     TEXT NOT NULL,
    detail      TEXT NOT NULL DEFAULT '',
    status      INTEGER
);
CREATE INDEX ledger_target ON ledger(target, at);
CREATE INDEX ledger_at ON ledger(at);
""",
    # 3. On-call schedules: the last responders seen per schedule (the baseline the watcher
    # diffs against) and one row per shift-change handoff. The unique key is what makes a
    # handoff happen at most once per (schedule, shift start, from, to), across restarts and
    # across replicas sharing the database.
    """
CREATE TABLE oncall_baseline (
    schedule    TEXT PRIMARY KEY,
    responders  TEXT NOT NULL,
    updated_at  REAL NOT NULL
);
CREATE TABLE oncall_handoffs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    schedule    TEXT NOT NULL,
    shift_start TEXT NOT NULL,
    from_email  TEXT NOT NULL,
    to_email    TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('pending', 'applied', 'cancelled', 'unmatched', 'ended')),
    job_id      TEXT,
    due_at      REAL,
    detail      TEXT NOT NULL DEFAULT '',
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL,
    UNIQUE (schedule, shift_start, from_email, to_email)
);
CREATE INDEX oncall_handoffs_state ON oncall_handoffs(schedule, state);
""",
    # 4. Job claims: which worker process runs a job, until when its lease holds. A worker
    # process apart from the web process finds queued jobs in the store and claims each
    # with one conditional UPDATE, so two workers never run the same job.
    """
ALTER TABLE jobs ADD COLUMN claimed_by TEXT;
ALTER TABLE jobs ADD COLUMN lease_until REAL;
""",
    # 5. Intake (alert ingestion): accepted webhook alerts, deduplicated on platform + id +
    # space, waiting for a channel's poster; the per-channel lease and Retry-After; digests
    # and the rows each one lists (a digest button carries only the digest id).
    """
CREATE TABLE intake_alerts (
    platform      TEXT NOT NULL,
    item_id       TEXT NOT NULL,
    space         TEXT NOT NULL DEFAULT '',
    channel       TEXT NOT NULL,
    state         TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('waiting', 'posting', 'carded', 'digesting', 'digested')),
    received_at   REAL NOT NULL,
    updated_at    REAL NOT NULL,
    attempt_at    REAL,
    card_ts       TEXT,
    digest_id     TEXT,
    change_note   TEXT,
    PRIMARY KEY (platform, item_id, space)
);
CREATE INDEX intake_alerts_waiting ON intake_alerts(channel, status, received_at);
CREATE INDEX intake_alerts_status ON intake_alerts(status);
CREATE INDEX intake_alerts_changed ON intake_alerts(channel) WHERE change_note IS NOT NULL;

CREATE TABLE intake_channels (
    channel       TEXT PRIMARY KEY,
    lease_owner   TEXT,
    lease_until   REAL NOT NULL DEFAULT 0,
    blocked_until REAL NOT NULL DEFAULT 0
);

CREATE TABLE intake_digests (
    id            TEXT PRIMARY KEY,
    channel       TEXT NOT NULL,
    ts            TEXT,
    created_at    REAL NOT NULL
);

CREATE TABLE intake_digest_rows (
    digest_id     TEXT NOT NULL REFERENCES intake_digests(id) ON DELETE CASCADE,
    seq           INTEGER NOT NULL,
    target        TEXT NOT NULL,
    severity      TEXT NOT NULL DEFAULT '',
    title         TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (digest_id, seq)
);
""",
    # 6. Live cards: every alert card the bot posted or updated (channel, ts, thread), the item
    # it shows and what it showed, for the reconciler that keeps cards true; the one reminder
    # per item (the primary key makes it once, across restarts and replicas); and named leases
    # so one replica at a time runs the reconciler. Self-contained: no other table is touched.
    """
CREATE TABLE live_cards (
    channel     TEXT NOT NULL,
    ts          TEXT NOT NULL,
    thread_ts   TEXT,
    target      TEXT NOT NULL,
    shown       TEXT NOT NULL,
    posted_at   REAL NOT NULL,
    updated_at  REAL NOT NULL,
    PRIMARY KEY (channel, ts)
);
CREATE INDEX live_cards_updated ON live_cards(updated_at);
CREATE INDEX live_cards_target ON live_cards(target);

CREATE TABLE card_reminders (
    target      TEXT PRIMARY KEY,
    channel     TEXT NOT NULL,
    ts          TEXT NOT NULL,
    sent_at     REAL NOT NULL
);

CREATE TABLE loop_leases (
    name        TEXT PRIMARY KEY,
    owner       TEXT,
    until       REAL NOT NULL DEFAULT 0
);
""",
]
