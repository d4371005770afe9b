"""What the door answers: typed results that the Slack layer renders.

Each is what one verb produced, not how it looks: ``bot.slack.render`` turns
them into messages. A ``Reply`` carries the answer due now (in the
acknowledgement) and, for read verbs that must wait on the network, the
answer that follows once the acknowledgement has gone.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from bot.core.identity import IdentityStatus
from bot.models import ItemState, Job, Platform, Target, Verb
from bot.store.ledger import LedgerEntry
from bot.store.mappings import UserIdentities


@dataclass(frozen=True)
class Accepted:
    """A job was stored (or was a repeat delivery of one already stored)."""

    verb: Verb
    count: int
    job_id: str | None
    duplicate: bool = False


@dataclass(frozen=True)
class FormAllowed:
    """The actor may open the verb's form."""


@dataclass(frozen=True)
class Authorised:
    """A request from one of the bot's own edges was allowed; the edge does the rest."""


@dataclass(frozen=True)
class Help:
    verb: Verb | None


@dataclass(frozen=True)
class Mapped:
    user: str
    identities: UserIdentities


@dataclass(frozen=True)
class Unmapped:
    user: str
    platform: Platform
    removed: bool


@dataclass(frozen=True)
class History:
    target: Target
    entries: Sequence[LedgerEntry]


@dataclass(frozen=True)
class LookingUp:
    """A read that waits on the platforms has started; its answer follows."""

    verb: Verb
    user: str


@dataclass(frozen=True)
class Identities:
    user: str
    statuses: Sequence[IdentityStatus]
    configured: Sequence[Platform]


@dataclass(frozen=True)
class Holdings:
    user: str
    held: dict[Platform, list[Target] | str]


@dataclass(frozen=True)
class HomeItems:
    """The App Home of one person: their open items' states per platform (or why a platform
    could not answer), and the handoffs waiting for their Confirm."""

    user: str
    held: dict[Platform, list[ItemState] | str]
    handoffs: Sequence[Job] = ()


@dataclass(frozen=True)
class Cards:
    """The current state of items to show as compact cards (link unfurls), and the unreadable ones."""

    states: dict[str, ItemState]
    problems: dict[str, str]


@dataclass(frozen=True)
class HandoffQueued:
    from_user: str


@dataclass(frozen=True)
class HandoffDecided:
    """Confirm or Cancel was applied to a handoff preview."""

    job: Job
    confirmed: bool
    actor_id: str


@dataclass(frozen=True)
class RetryQueued:
    job_id: str | None


@dataclass(frozen=True)
class ScheduleView:
    """One schedule as ``/triage oncall`` shows it: people as mentions or, unmatched, emails."""

    name: str
    source: str
    mode: str
    current: Sequence[str] = ()
    next: Sequence[str] = ()
    pending: Sequence[str] = ()
    error: str | None = None


@dataclass(frozen=True)
class OnCallOverview:
    schedules: Sequence[ScheduleView]


class OnCallDesk(Protocol):
    """What the door asks the on-call watcher for ``/triage oncall``."""

    def schedule_names(self) -> list[str]: ...

    async def overview(self, name: str | None) -> OnCallOverview: ...


Answer = (
    Accepted
    | FormAllowed
    | Authorised
    | Help
    | Mapped
    | Unmapped
    | History
    | LookingUp
    | Identities
    | Holdings
    | HomeItems
    | Cards
    | HandoffQueued
    | HandoffDecided
    | RetryQueued
    | OnCallOverview
)


@dataclass(frozen=True)
class Reply:
    """The answer due now, and the one that follows after the acknowledgement, if any."""

    now: Answer
    later: Callable[[], Awaitable[Answer]] | None = field(default=None, compare=False)
