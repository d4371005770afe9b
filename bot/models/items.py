"""Platforms, verbs, targets and what a platform says about an item."""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterable
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


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
    REOPEN = "reopen"
    ACK = "ack"
    TAG = "tag"
    DETACH = "detach"
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
    UNDO = "undo"  # a result's Undo button: put back what one write changed

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
    Verb.REOPEN: "reopened",
    Verb.ACK: "acknowledged",
    Verb.TAG: "tagged",
    Verb.DETACH: "detached",
    Verb.COMMENT: "commented on",
    Verb.SEVERITY: "set the severity of",
    Verb.REFRESH: "refreshed",
    Verb.HANDOFF: "handed off",
    Verb.UNDO: "undid the change to",
}
_PHRASE: dict[Verb, str] = {
    Verb.UNASSIGN: "unassign it",
    Verb.RESOLVE: "resolve it",
    Verb.ATTACH: "attach it to a case",
    Verb.REOPEN: "reopen it",
    Verb.ACK: "acknowledge it",
    Verb.TAG: "tag it",
    Verb.DETACH: "detach it from its case",
    Verb.SEVERITY: "set its severity",
    Verb.UNDO: "undo the change",
}

# Verbs that change platform state and run as jobs.
WRITE_VERBS = frozenset(
    {
        Verb.ASSIGN,
        Verb.UNASSIGN,
        Verb.ATTACH,
        Verb.DETACH,
        Verb.RESOLVE,
        Verb.REOPEN,
        Verb.ACK,
        Verb.TAG,
        Verb.COMMENT,
        Verb.SEVERITY,
    }
)
# Re-sending these cannot change the outcome, so an interrupted item is simply re-applied:
# mute/unmute, a status, a case link and tag set/unset are all set operations. (Kibana's
# attribution note is the one side effect that can repeat; a second note is harmless.)
# An undo reads each item again before it writes, so re-running it after a crash is safe.
IDEMPOTENT_VERBS = (WRITE_VERBS - {Verb.COMMENT}) | {Verb.HANDOFF, Verb.UNDO}


class Target(BaseModel):
    """One item on one platform; Kibana alerts also carry their space."""

    model_config = ConfigDict(frozen=True)

    platform: Platform
    id: str = Field(min_length=1)
    space: str | None = None

    @functools.cached_property
    def key(self) -> str:
        """The canonical text form, the one ``/triage`` accepts back (computed once per target)."""
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
    # Datadog: the finding's mute (the reason in the bot's lower case, the expiry in Unix ms).
    muted: bool | None = None
    mute_reason: str | None = None
    mute_until: int | None = None
    # Xpanse: from the incident details, the alert count and the assets most alerts name.
    alert_count: int | None = None
    top_assets: list[str] = Field(default_factory=list)

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
