"""Typed values that flow through the bot: platforms, verbs, targets and results."""

from __future__ import annotations

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
        return (self.status or "").lower() not in {"closed", "resolved"} and not (self.status or "").lower().startswith(
            "resolved"
        )


class PlatformUser(BaseModel):
    """A person as a platform knows them: the id the platform's writes take."""

    platform: Platform
    id: str
    email: str | None = None
    name: str | None = None
    active: bool = True
