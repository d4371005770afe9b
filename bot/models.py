"""Typed values that flow through the bot: platforms, verbs, targets and results."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Platform(StrEnum):
    """The three platforms the bot acts on."""

    DATADOG = "datadog"
    KIBANA = "kibana"
    XPANSE = "xpanse"

    @property
    def label(self) -> str:
        return {"datadog": "Datadog", "kibana": "Kibana", "xpanse": "Xpanse"}[self.value]


class Verb(StrEnum):
    """Every verb of ``/triage``; buttons and modals map onto the same verbs."""

    ASSIGN = "assign"
    UNASSIGN = "unassign"
    ATTACH = "attach"
    RESOLVE = "resolve"
    COMMENT = "comment"
    SEVERITY = "severity"
    SHOW = "show"
    REFRESH = "refresh"
    HANDOFF = "handoff"
    HISTORY = "history"
    MINE = "mine"
    MAP = "map"
    UNMAP = "unmap"
    WHOAMI = "whoami"
    HELP = "help"
    ONCALL = "oncall"

    @property
    def past(self) -> str:
        """The verb done, as the bot words it ("assigned 2 items", "was already resolved")."""
        return _PAST.get(self, "handled")

    def phrase(self, assignee: str | None = None) -> str:
        """The verb asked for, as the bot words it ("asked to assign it to <@U…>")."""
        if self is Verb.ASSIGN and assignee:
            return f"assign it to <@{assignee}>"
        return _PHRASE.get(self, self.value)


_PAST: dict[Verb, str] = {
    Verb.ASSIGN: "assigned",
    Verb.UNASSIGN: "unassigned",
    Verb.ATTACH: "attached",
    Verb.RESOLVE: "resolved",
    Verb.COMMENT: "commented on",
    Verb.SEVERITY: "set the severity of",
    Verb.REFRESH: "refreshed",
    Verb.HANDOFF: "handed off",
}
_PHRASE: dict[Verb, str] = {
    Verb.UNASSIGN: "unassign it",
    Verb.RESOLVE: "resolve it",
    Verb.ATTACH: "attach it to a case",
    Verb.SEVERITY: "set its severity",
}

# Verbs that change platform state and run as jobs.
WRITE_VERBS = frozenset({Verb.ASSIGN, Verb.UNASSIGN, Verb.ATTACH, Verb.RESOLVE, Verb.COMMENT, Verb.SEVERITY})
# Re-sending these cannot change the outcome, so an interrupted item is simply re-applied.
IDEMPOTENT_VERBS = (WRITE_VERBS - {Verb.COMMENT}) | {Verb.HANDOFF}


class Target(BaseModel):
    """One item on one platform; Kibana alerts also carry their space."""

    model_config = ConfigDict(frozen=True)

    platform: Platform
    id: str = Field(min_length=1)
    space: str | None = None

    @property
    def key(self) -> str:
        """The canonical text form, the one ``/triage`` accepts back."""
        if self.platform is Platform.KIBANA and self.space:
            return f"kibana:{self.space}/{self.id}"
        prefix = "dd" if self.platform is Platform.DATADOG else self.platform.value
        return f"{prefix}:{self.id}"

    def __str__(self) -> str:
        return self.key

    @classmethod
    def from_key(cls, key: str) -> Target:
        """Parse the canonical form produced by ``key`` (``dd:…``, ``kibana:[space/]…``, ``xpanse:…``)."""
        prefix, _, rest = key.partition(":")
        platform = Platform.DATADOG if prefix in ("dd", "datadog") else Platform(prefix)
        if platform is Platform.KIBANA and "/" in rest:
            space, _, item = rest.partition("/")
            return cls(platform=platform, id=item, space=space)
        return cls(platform=platform, id=rest)


class Outcome(StrEnum):
    """What happened to one item."""

    DONE = "done"
    WARNING = "warning"
    NOT_FOUND = "not_found"
    FAILED = "failed"
    SKIPPED = "skipped"

    @property
    def ok(self) -> bool:
        return self in (Outcome.DONE, Outcome.WARNING)


class ItemResult(BaseModel):
    """The vendor-confirmed outcome for one item, with the vendor's reason when it failed."""

    target: Target
    outcome: Outcome
    detail: str = ""
    status: int | None = None
    # What the item was and became, as the platform's own values (e.g. assignee ids),
    # when the client knows them: the ledger records both.
    before: str | None = None
    after: str | None = None


class BatchResult(BaseModel):
    """The per-item results of one operation over many items."""

    items: list[ItemResult] = Field(default_factory=list)

    @classmethod
    def of(cls, items: Iterable[ItemResult]) -> BatchResult:
        return cls(items=list(items))

    def extend(self, other: BatchResult) -> None:
        self.items.extend(other.items)

    @property
    def counts(self) -> dict[Outcome, int]:
        return dict(Counter(i.outcome for i in self.items))

    @property
    def all_ok(self) -> bool:
        return all(i.outcome.ok for i in self.items)

    def for_target(self, target: Target) -> ItemResult | None:
        return next((i for i in self.items if i.target == target), None)


class ItemState(BaseModel):
    """What a platform says about one item now: what an alert card shows."""

    target: Target
    title: str = ""
    severity: str | None = None
    status: str | None = None
    # The platform's own identities of the assignees (Datadog user UUID, Kibana
    # profile uids, Xpanse email); Kibana alerts can have several.
    assignees: list[str] = Field(default_factory=list)
    assignee_name: str | None = None
    case: str | None = None
    link: str | None = None

    @property
    def is_open(self) -> bool:
        status = (self.status or "").lower()
        # auto_closed: Datadog closed the finding itself because its cause went away.
        return status not in {"closed", "resolved", "auto_closed"} and not status.startswith("resolved")


class PlatformUser(BaseModel):
    """A person as a platform knows them: the id the platform's writes take."""

    platform: Platform
    id: str
    email: str | None = None
    name: str | None = None
    active: bool = True


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
    # Resolved platform identities, filled by the worker before the writes.
    identities: dict[str, str] = Field(default_factory=dict)
    handoff: HandoffPlan | None = None
    # Why the worker refused the whole job before any platform write (e.g. the assignee's
    # Slack account is deactivated); None when it ran.
    refused: str | None = None

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
