"""Accepting a change locks its item with an advisory lock, not a row of ``item_guards``.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04

``triage_accept`` (``bot.store.functions``) took a single item's lock by upserting its row in
``item_guards``, a table that kept a row for every item ever changed, and sent the stored job
back as JSON that the caller no longer read. It now takes a transaction-scoped advisory lock
on the item's key and answers "stored" alone. Its arguments and its other answers are the
same, so replicas of the previous release that are still running keep working against it.
The table goes, on SQLite too (where it was never written).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from bot.store.functions import create_functions

revision = "0004"
down_revision: str | None = "0003"
branch_labels = None
depends_on = None

# The body revision 0003 created, for the downgrade.
_BODY_0003 = (
    "DECLARE flight json; latest json; stored json; BEGIN IF p_check THEN IF p_interaction_key IS NOT "
    "NULL AND EXISTS (SELECT jobs.id FROM jobs WHERE jobs.interaction_key = p_interaction_key) THEN "
    "RETURN json_build_object('outcome', 'duplicate'); END IF; INSERT INTO item_guards (target, at) "
    "VALUES (p_targets[1], p_created_at) ON CONFLICT (target) DO UPDATE SET at = excluded.at; SELECT "
    "row_to_json(f) INTO flight FROM (SELECT jobs.id, jobs.verb, jobs.state, jobs.team_id, jobs.actor_id,"
    " jobs.channel_id, jobs.card_ts, jobs.thread_ts, jobs.response_url, jobs.source, "
    "jobs.interaction_key, jobs.params, jobs.summary, jobs.created_at, jobs.updated_at, jobs.reported_at,"
    " jobs.claimed_by, jobs.lease_until, jobs.reporting_by, jobs.reporting_until, job_items.seq AS "
    "item_seq FROM job_items JOIN jobs ON jobs.id = job_items.job_id WHERE job_items.target = "
    "p_targets[1] AND job_items.state IN ('pending', 'running') AND jobs.verb = p_verb AND jobs.state IN "
    "('queued', 'running') ORDER BY jobs.created_at LIMIT 1) AS f; IF flight IS NOT NULL AND (NOT "
    "p_assign OR p_from_card OR ((flight->>'params')::json->>'assignee') IS NOT DISTINCT FROM p_wanted) "
    "THEN RETURN json_build_object('outcome', 'in_flight', 'row', flight); END IF; SELECT row_to_json(l) "
    "INTO latest FROM (SELECT ledger.id, ledger.at, ledger.job_id, ledger.team_id, ledger.actor_id, "
    "ledger.verb, ledger.platform, ledger.target, ledger.before, ledger.after, ledger.outcome, "
    "ledger.detail, ledger.status, jobs.params AS job_params FROM ledger LEFT OUTER JOIN jobs ON jobs.id "
    "= ledger.job_id WHERE ledger.target = p_targets[1] AND ledger.outcome IN ('done', 'warning') AND "
    "ledger.verb IN ('assign', 'unassign', 'handoff', 'resolve') ORDER BY ledger.at DESC, ledger.id DESC "
    "LIMIT 1) AS l; IF latest IS NOT NULL AND (latest->>'at')::double precision >= p_since AND "
    "latest->>'verb' = p_verb AND (p_wanted IS NULL OR p_from_card OR "
    "((latest->>'job_params')::json->>'assignee') IS NOT DISTINCT FROM p_wanted) THEN RETURN "
    "json_build_object('outcome', 'latest', 'row', latest); END IF; END IF; INSERT INTO jobs (id, verb, "
    "state, team_id, actor_id, channel_id, card_ts, thread_ts, response_url, source, interaction_key, "
    "params, created_at, updated_at) VALUES (p_id, p_verb, p_state, p_team_id, p_actor_id, p_channel_id, "
    "p_card_ts, p_thread_ts, p_response_url, p_source, p_interaction_key, p_params, p_created_at, "
    "p_updated_at) ON CONFLICT DO NOTHING RETURNING row_to_json(jobs.*) INTO stored; IF stored IS NULL "
    "THEN RETURN json_build_object('outcome', 'duplicate'); END IF; INSERT INTO job_items (job_id, seq, "
    "platform, target, space, item_id, state, updated_at) SELECT p_id, t.n - 1, t.platform, t.target, "
    "t.space, t.item_id, p_item_state, p_created_at FROM unnest(p_platforms, p_targets, p_spaces, "
    "p_item_ids) WITH ORDINALITY AS t(platform, target, space, item_id, n); RETURN "
    "json_build_object('outcome', 'stored', 'row', stored); END"
)


def upgrade() -> None:
    create_functions(op.get_bind())
    op.drop_table("item_guards")


def downgrade() -> None:
    op.create_table(
        "item_guards",
        sa.Column("target", sa.Text, primary_key=True),
        sa.Column("at", sa.Float(), nullable=False),
    )
    create_functions(op.get_bind(), body=_BODY_0003)
