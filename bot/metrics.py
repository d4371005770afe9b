"""Prometheus metrics, in one registry per process (served at ``GET /metrics``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

ACTIONS = Counter(
    "triage_actions_total",
    "Item outcomes of bot actions, by platform, verb and outcome.",
    ["platform", "verb", "outcome"],
    registry=REGISTRY,
)
PLATFORM_LATENCY = Histogram(
    "triage_platform_request_seconds",
    "Latency of one HTTP request to a platform API (each attempt).",
    ["platform", "operation", "status"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
PLATFORM_RETRIES = Counter(
    "triage_platform_retries_total",
    "Platform requests retried after a 429, a 5xx, a timeout or a connection error.",
    ["platform", "reason"],
    registry=REGISTRY,
)
JOB_QUEUE_DEPTH = Gauge("triage_job_queue_depth", "Jobs accepted but not finished.", registry=REGISTRY)
JOB_OLDEST_AGE = Gauge("triage_job_oldest_age_seconds", "Age of the oldest unfinished job.", registry=REGISTRY)
SLACK_ACK_LATENCY = Histogram(
    "triage_slack_ack_seconds",
    "Time from receiving a Slack request to acknowledging it.",
    ["kind"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
    registry=REGISTRY,
)
ACK_STORE_WAIT = Histogram(
    "triage_ack_store_wait_seconds",
    "SQLite: how long storing a job before its ack waited for another process's write to finish.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5),
    registry=REGISTRY,
)
SLACK_REJECTED = Counter(
    "triage_slack_requests_rejected_total",
    "Correctly signed requests on /slack/events the bot could not use (answered 4xx), by kind and reason.",
    ["kind", "reason"],
    registry=REGISTRY,
)
ONCALL_POLLS = Counter(
    "triage_oncall_polls_total",
    "Polls of an on-call schedule, by schedule and outcome (ok, baseline, error).",
    ["schedule", "outcome"],
    registry=REGISTRY,
)
ONCALL_CHANGES = Counter(
    "triage_oncall_changes_total",
    "Changes of the current responders seen on an on-call schedule.",
    ["schedule"],
    registry=REGISTRY,
)
ONCALL_HANDOFFS = Counter(
    "triage_oncall_handoffs_total",
    "Shift-change handoffs started (previews posted), by schedule and mode.",
    ["schedule", "mode"],
    registry=REGISTRY,
)
INTAKE_QUEUE_DEPTH = Gauge(
    "triage_intake_queue_depth",
    "Accepted webhook alerts not yet represented in Slack (no card, no digest row), by channel.",
    ["channel"],
    registry=REGISTRY,
)
INTAKE_OLDEST = Gauge(
    "triage_intake_oldest_waiting_seconds",
    "Age of the oldest accepted alert still waiting for its channel's poster, by channel.",
    ["channel"],
    registry=REGISTRY,
)
INTAKE_ALERTS = Counter(
    "triage_intake_alerts_total",
    "Alerts the poster represented in Slack: posted (own card), updated (card redrawn), digested (digest row).",
    ["outcome"],
    registry=REGISTRY,
)
INTAKE_DIGESTS = Counter("triage_intake_digests_total", "Digest messages posted.", registry=REGISTRY)
INTAKE_RATE_LIMITED = Counter(
    "triage_intake_rate_limited_total",
    "HTTP 429 answers Slack gave the poster (the channel then waits Retry-After), by channel.",
    ["channel"],
    registry=REGISTRY,
)
CARDS_CHECKED = Counter(
    "triage_cards_checked_total",
    "Live cards whose item the reconciler re-read from its platform.",
    registry=REGISTRY,
)
CARDS_UPDATED = Counter(
    "triage_cards_updated_total",
    "Live cards the reconciler redrew because the item changed outside Slack, by platform.",
    ["platform"],
    registry=REGISTRY,
)
REMINDERS_SENT = Counter(
    "triage_reminders_sent_total",
    "Nudges posted in a card's thread for an item still unassigned, by platform.",
    ["platform"],
    registry=REGISTRY,
)
