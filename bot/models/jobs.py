"""A durable job: its states and their allowed moves, its items, and its typed parameters."""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field, model_validator

from bot.models.items import ItemResult, Outcome, Platform, Target, Verb

# ---- jobs ------------------------------------------------------------------------------


class JobState(StrEnum):
    """Where a durable job is; ``next_states`` is the one table of allowed moves."""

    QUEUED = "queued"
    AWAITING_CONFIRM = "awaiting_confirm"  # a handoff preview waiting for Confirm / Cancel
    RUNNING = "running"
    DONE = "done"
    PARTIAL = "partial"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in (JobState.DONE, JobState.PARTIAL, JobState.FAILED, JobState.CANCELLED)

    @property
    def reportable(self) -> bool:
        """A job in this state gets a report: finished, or a handoff preview waiting for Confirm.
        A queued or running one is reported by whoever finishes it."""
        return self.terminal or self is JobState.AWAITING_CONFIRM

    @property
    def next_states(self) -> frozenset[JobState]:
        """The states a job in this state may move to (none once terminal)."""
        return _NEXT_STATES.get(self, frozenset())

    @property
    def sources(self) -> frozenset[JobState]:
        """The states a job may move to this one from."""
        return frozenset(s for s, nexts in _NEXT_STATES.items() if self in nexts)


_FINISHED = frozenset({JobState.DONE, JobState.PARTIAL, JobState.FAILED})
_NEXT_STATES: dict[JobState, frozenset[JobState]] = {
    # A handoff's collection parks the job for confirmation without running it first.
    JobState.QUEUED: frozenset({JobState.RUNNING, JobState.AWAITING_CONFIRM}),
    # RUNNING -> RUNNING: a job resumed after a restart starts again where it stopped.
    JobState.RUNNING: frozenset({JobState.RUNNING, JobState.AWAITING_CONFIRM}) | _FINISHED,
    # Confirm queues the apply phase (once: a double click loses the race); Cancel ends it.
    JobState.AWAITING_CONFIRM: frozenset({JobState.QUEUED, JobState.CANCELLED}),
}


class ItemStatus(StrEnum):
    """Where one item of a job is: pending, in flight, or one of the terminal outcomes."""

    PENDING = "pending"
    RUNNING = "running"  # sent (or about to be); on resume, re-applied if idempotent
    DONE = Outcome.DONE.value
    WARNING = Outcome.WARNING.value
    NOT_FOUND = Outcome.NOT_FOUND.value
    FAILED = Outcome.FAILED.value
    SKIPPED = Outcome.SKIPPED.value

    @property
    def terminal(self) -> bool:
        return self not in (ItemStatus.PENDING, ItemStatus.RUNNING)


class HandoffPhase(StrEnum):
    """``collect`` lists what the outgoing person holds; ``apply`` (after Confirm) reassigns it."""

    COLLECT = "collect"
    APPLY = "apply"


class HandoffPlan(BaseModel):
    """A handoff's own state, kept in its job: the phase, the preview's findings, who confirmed."""

    phase: HandoffPhase = HandoffPhase.COLLECT
    counts: dict[Platform, int] = Field(default_factory=dict)  # items collected per platform
    problems: dict[Platform, str] = Field(default_factory=dict)  # platforms that could not be listed
    unmapped: list[Platform] = Field(default_factory=list)  # where the receiver has no identity
    confirmed_by: str | None = None  # Slack user id of whoever pressed Confirm
    retry_of: str | None = None  # the handoff job whose failed items this one retries
    from_identities: dict[Platform, str] = Field(default_factory=dict)  # the outgoing person, resolved
    # A handoff the on-call watcher started at a shift change (bot.core.oncall): the schedule's
    # name, the new shift's start, the platforms to collect from (empty: all) and, in auto
    # mode, when it applies unless cancelled (epoch seconds).
    schedule: str | None = None
    shift_start: str | None = None
    platforms: list[Platform] = Field(default_factory=list)
    auto_at: float | None = None


# Keys of the untyped ``extra`` dict that the first job rows carried.
_LEGACY_PLAN_KEYS = frozenset(HandoffPlan.model_fields)


class UndoOffer(BaseModel):
    """Where a write's Undo button is and until when it may be pressed (epoch seconds)."""

    channel: str
    ts: str = ""  # filled once Slack took the message
    until: float
    closed: bool = False  # the button was taken off the message (window over, or used)
    text: str = ""  # the message's text, and its blocks without the button
    blocks: list[dict[str, Any]] = Field(default_factory=list)


class JobParams(BaseModel):
    """Everything a verb needs beyond its targets, as chosen by the actor."""

    assignee: str | None = None  # Slack user id of the new assignee
    assignee_name: str | None = None  # the assignee's display name, for platforms that store one
    from_user: str | None = None  # handoff: Slack user id of the outgoing person
    case: str | None = None
    reason: str | None = None
    comment: str | None = None
    text: str | None = None
    severity: str | None = None
    expire_at: int | None = None  # a Datadog mute's expiry, Unix ms (None: indefinitely)
    tags_add: list[str] = Field(default_factory=list)  # tag: Kibana tags to add and remove
    tags_remove: list[str] = Field(default_factory=list)
    actor_name: str | None = None  # the actor's Slack name, for notes on platforms that cannot say who acted
    # Resolved platform identities, filled by the worker before the writes.
    identities: dict[str, str] = Field(default_factory=dict)
    handoff: HandoffPlan | None = None
    # Why the worker refused the whole job before any platform write (e.g. the assignee's
    # Slack account is deactivated); None when it ran.
    refused: str | None = None
    undo: UndoOffer | None = None  # a write's Undo button, while it is offered
    undo_of: str | None = None  # an undo job: the id of the write it puts back

    @model_validator(mode="before")
    @classmethod
    def _from_legacy_extra(cls, data: Any) -> Any:
        """Rows written before the typed plan kept it in an untyped ``extra`` dict: map it."""
        if not isinstance(data, dict) or "extra" not in data:
            return data
        data = dict(data)
        extra = data.pop("extra") or {}
        if extra.get("assignee_name") is not None:
            data.setdefault("assignee_name", extra["assignee_name"])
        plan = {k: v for k, v in extra.items() if k in _LEGACY_PLAN_KEYS}
        if plan and data.get("handoff") is None:
            data["handoff"] = plan
        return data

    def plan(self) -> HandoffPlan:
        """The handoff plan, created (in the collect phase) if this job has none yet."""
        if self.handoff is None:
            self.handoff = HandoffPlan()
        return self.handoff


class Job(BaseModel):
    """One durable request: a verb over some items, written before Slack is acknowledged."""

    id: str
    verb: Verb
    state: JobState
    team_id: str
    actor_id: str
    channel_id: str | None = None
    card_ts: str | None = None
    thread_ts: str | None = None
    response_url: str | None = None
    source: str
    interaction_key: str | None = None
    params: JobParams
    summary: str | None = None
    created_at: float
    updated_at: float
    reported_at: float | None = None


class JobItem(BaseModel):
    """One target of a job, with its state and, once settled, the platform's answer."""

    job_id: str
    seq: int
    target: Target
    state: ItemStatus
    detail: str = ""
    status: int | None = None
    before: str | None = None
    after: str | None = None
    updated_at: float = 0.0

    def result(self) -> ItemResult:
        outcome = Outcome(self.state.value) if self.state.terminal else Outcome.FAILED
        return ItemResult(
            target=self.target,
            outcome=outcome,
            detail=self.detail,
            status=self.status,
            before=self.before,
            after=self.after,
        )


def job_outcome(items: Sequence[JobItem]) -> JobState:
    """DONE when every item is ok or skipped as already in state, FAILED when none is, else PARTIAL."""
    ok = [i for i in items if i.state in (ItemStatus.DONE, ItemStatus.WARNING, ItemStatus.SKIPPED)]
    if len(ok) == len(items):
        return JobState.DONE
    if not ok:
        return JobState.FAILED
    return JobState.PARTIAL
