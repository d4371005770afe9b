"""Who is on call: the one small interface every schedule source (PagerDuty, Datadog On-Call) offers.

Every schedule API is pull-only, so a source only answers "who is on call at ``at``, and who
is next"; the watcher (``bot.core.oncall``) polls and diffs. A source never guesses: any
failure (after the shared HTTP layer's retries) leaves as a ``PlatformError``, which the
watcher treats as "no data", never as "nobody on call". An empty ``current`` is a real
answer: nobody is on call.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict


class Responder(BaseModel):
    """One person on call: matched to Slack by ``email``; ``source_id`` is the vendor's user id."""

    model_config = ConfigDict(frozen=True)

    email: str
    name: str | None = None
    source_id: str
    start: datetime | None = None  # None: a permanent on-call (PagerDuty)
    end: datetime | None = None


class Roster(BaseModel):
    """Who is on call for one schedule at ``at`` (several at once is normal), and who is next."""

    schedule_id: str
    at: datetime
    current: list[Responder]
    next: list[Responder]

    @property
    def current_emails(self) -> list[str]:
        return sorted({r.email for r in self.current})


@runtime_checkable
class ScheduleSource(Protocol):
    """A schedule API: who is on call at a time; raises ``PlatformError`` when it cannot say."""

    kind: str  # "pagerduty" or "datadog", as the TRIAGE_ONCALL file names it
    missing_permission: str  # what a 401/403 means the key lacks, for messages and `check`

    async def roster(self, schedule_id: str, *, at: datetime) -> Roster:
        """The current and next responders of ``schedule_id`` at ``at``."""
        ...

    async def aclose(self) -> None: ...


def rfc3339(when: datetime) -> str:
    """``when`` in UTC as ``2026-07-10T09:31:38Z`` (no ``+`` for anyone to mis-encode)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: object) -> datetime | None:
    """An RFC3339 / ISO time from a vendor answer (nanoseconds and ``Z`` allowed), else None."""
    if not isinstance(value, str) or not value:
        return None
    text = value.replace("Z", "+00:00")
    head, dot, rest = text.partition(".")
    if dot:  # trim fractional seconds beyond microseconds (Datadog sends nanoseconds)
        digits = "".join(ch for ch in rest if ch.isdigit())
        tail = rest[len(digits) :]
        text = f"{head}.{digits[:6]}{tail}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
