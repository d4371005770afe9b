"""The one interface the rest of the bot uses to act on a platform.

``PlatformClient`` is what services depend on. ``BasePlatformClient`` gives
every operation a default that raises ``UnsupportedError`` so each client
implements only what its vendor offers (Datadog has no comments, Xpanse no
cases, …) and the analyst gets a clear sentence instead of a crash.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

from bot.errors import UnsupportedError
from bot.models import BatchResult, ItemResult, ItemState, Platform, PlatformUser, Target


@runtime_checkable
class PlatformClient(Protocol):
    """Operations on one platform; every write returns one ``ItemResult`` per target."""

    platform: Platform

    def validate_id(self, item_id: str) -> str:
        """Return the id normalised, or raise ``UsageError`` if it cannot be one of this platform's."""
        ...

    async def fetch(self, targets: Sequence[Target]) -> dict[Target, ItemState]:
        """Current state of each target; targets the platform does not hold are absent."""
        ...

    async def assign(self, targets: Sequence[Target], user_id: str, *, user_name: str | None = None) -> BatchResult:
        """Make ``user_id`` the (only) assignee of each target."""
        ...

    async def unassign(self, targets: Sequence[Target]) -> BatchResult:
        """Remove every assignee from each target."""
        ...

    async def resolve(
        self, targets: Sequence[Target], *, reason: str | None = None, comment: str | None = None
    ) -> BatchResult:
        """Close / resolve each target, with an optional reason and comment."""
        ...

    async def attach_case(self, targets: Sequence[Target], case: str) -> BatchResult:
        """Attach the targets to a case given by UUID or key."""
        ...

    async def comment(self, target: Target, text: str) -> ItemResult:
        """Add a comment to one target (not idempotent: never retried blindly)."""
        ...

    async def set_severity(self, targets: Sequence[Target], severity: str) -> BatchResult:
        """Set a manual severity on each target."""
        ...

    async def mute(
        self, targets: Sequence[Target], *, reason: str, description: str | None = None, expire_at: int | None = None
    ) -> BatchResult:
        """Mute each target with a reason, an optional description and expiry (Unix ms): Datadog's resolve."""
        ...

    async def reopen(
        self, targets: Sequence[Target], *, reason: str | None = None, comment: str | None = None
    ) -> BatchResult:
        """Put each target back in work (Datadog: unmute; Kibana: open; Xpanse: under investigation)."""
        ...

    async def acknowledge(self, targets: Sequence[Target]) -> BatchResult:
        """Mark each target acknowledged."""
        ...

    async def tag(self, targets: Sequence[Target], *, add: Sequence[str], remove: Sequence[str]) -> BatchResult:
        """Add and remove tags on each target."""
        ...

    async def detach_case(self, targets: Sequence[Target]) -> BatchResult:
        """Take each target out of whichever case holds it."""
        ...

    async def add_notes(self, notes: Mapping[Target, str]) -> dict[Target, str | None]:
        """Write an attribution note on each target: per target written, None or why it failed."""
        ...

    async def with_details(self, state: ItemState) -> ItemState:
        """``state`` with what only a card shows (Xpanse: alert count, top assets); never raises."""
        ...

    async def list_assigned(self, user_id: str, *, limit: int = 1000) -> list[ItemState]:
        """Open items assigned to ``user_id`` (Datadog UUID, Kibana uid, Xpanse email)."""
        ...

    async def find_user_by_email(self, email: str) -> PlatformUser | None:
        """The platform user with exactly this email (case-insensitive), if any and active."""
        ...

    async def get_user(self, user_id: str) -> PlatformUser | None:
        """The platform user with this id, or None when it is gone."""
        ...

    async def check(self) -> str:
        """Call the cheapest authenticated endpoint; return a short description or raise."""
        ...

    def call_counts(self) -> Counter[str]:
        """Requests sent so far, per operation (attempts included)."""
        ...

    async def aclose(self) -> None: ...


class BasePlatformClient:
    """Defaults for operations a platform does not have."""

    platform: Platform

    def _unsupported(self, what: str) -> UnsupportedError:
        return UnsupportedError(f"{self.platform.label} has no {what}")

    async def attach_case(self, targets: Sequence[Target], case: str) -> BatchResult:
        raise UnsupportedError(f"only Datadog findings can be attached to a case, not {self.platform.label} items")

    async def comment(self, target: Target, text: str) -> ItemResult:
        raise UnsupportedError(f"comments are for Xpanse incidents; {self.platform.label} has none the bot can add")

    async def set_severity(self, targets: Sequence[Target], severity: str) -> BatchResult:
        raise UnsupportedError(f"severity can be set on Xpanse incidents only, not on {self.platform.label} items")

    async def resolve(
        self, targets: Sequence[Target], *, reason: str | None = None, comment: str | None = None
    ) -> BatchResult:
        raise self._unsupported("resolve operation the bot can call")

    async def mute(
        self, targets: Sequence[Target], *, reason: str, description: str | None = None, expire_at: int | None = None
    ) -> BatchResult:
        raise UnsupportedError(f"only Datadog findings can be muted, not {self.platform.label} items")

    async def reopen(
        self, targets: Sequence[Target], *, reason: str | None = None, comment: str | None = None
    ) -> BatchResult:
        raise self._unsupported("reopen operation the bot can call")

    async def acknowledge(self, targets: Sequence[Target]) -> BatchResult:
        raise UnsupportedError(f"only Kibana alerts can be acknowledged, not {self.platform.label} items")

    async def tag(self, targets: Sequence[Target], *, add: Sequence[str], remove: Sequence[str]) -> BatchResult:
        raise UnsupportedError(f"only Kibana alerts can be tagged, not {self.platform.label} items")

    async def detach_case(self, targets: Sequence[Target]) -> BatchResult:
        raise UnsupportedError(f"only Datadog findings can be detached from a case, not {self.platform.label} items")

    async def add_notes(self, notes: Mapping[Target, str]) -> dict[Target, str | None]:
        """Platforms that record who acted need no note: nothing is written."""
        return {}

    async def with_details(self, state: ItemState) -> ItemState:
        """Most platforms' reads already carry everything a card shows."""
        return state
