"""Typed values that flow through the bot: platforms, verbs, targets and results (``items``),
and durable jobs with their states and parameters (``jobs``)."""

from __future__ import annotations

from bot.models.items import (
    IDEMPOTENT_VERBS,
    WRITE_VERBS,
    BatchResult,
    ItemResult,
    ItemState,
    Outcome,
    Platform,
    PlatformUser,
    Target,
    Verb,
)
from bot.models.jobs import (
    HandoffPhase,
    HandoffPlan,
    ItemStatus,
    Job,
    JobItem,
    JobParams,
    JobState,
    UndoOffer,
    job_outcome,
)

__all__ = [
    "IDEMPOTENT_VERBS",
    "WRITE_VERBS",
    "BatchResult",
    "HandoffPhase",
    "HandoffPlan",
    "ItemResult",
    "ItemState",
    "ItemStatus",
    "Job",
    "JobItem",
    "JobParams",
    "JobState",
    "Outcome",
    "Platform",
    "PlatformUser",
    "Target",
    "UndoOffer",
    "Verb",
    "job_outcome",
]
