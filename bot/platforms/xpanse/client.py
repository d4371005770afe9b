"""The Xpanse client: the writes (one update_incident per incident), each read first."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

import httpx
import stamina
import structlog

from bot import rules
from bot.errors import (
    PlatformAuthError,
    PlatformError,
    PlatformRateLimited,
    PlatformRejected,
    PlatformUnavailable,
    UsageError,
)
from bot.models import BatchResult, ItemResult, Outcome, Platform, PlatformUser, Target
from bot.platforms.http import PlatformHttp
from bot.platforms.xpanse.reads import XpanseReader
from bot.platforms.xpanse.wire import (
    MAX_COMMENT_LENGTH,
    RESOLVED,
    UPDATE_INCIDENT,
    envelope_reason,
)

log = structlog.get_logger(__name__)


class _NotApplied(Exception):
    """update_incident answered 200 without ``reply: true``."""


class XpanseWriter(XpanseReader):
    """Xpanse incidents: read, assign, resolve, comment, set severity; users by email."""

    async def _update(self, incident_id: str, update_data: dict[str, Any], *, http: PlatformHttp | None = None) -> None:
        """One update_incident; raises ``PlatformError`` or ``_NotApplied``."""
        reply = await self._post(
            UPDATE_INCIDENT,
            {"incident_id": incident_id, "update_data": update_data},
            operation="update_incident",
            http=http,
        )
        if reply is not True:
            reason = envelope_reason({"reply": reply}) if isinstance(reply, dict) else f"reply: {reply}"
            raise _NotApplied(f"Xpanse did not apply the update ({reason})")

    async def _write(
        self,
        targets: Sequence[Target],
        decide: Callable[[Target, dict[str, Any]], ItemResult | tuple[dict[str, Any], str | None, str | None]],
        *,
        done: str,
    ) -> BatchResult:
        """Read the incidents, let ``decide`` skip or give an update, apply updates concurrently.

        ``decide`` returns a final ``ItemResult`` (skip / fail) or
        ``(update_data, before, after)``. Per-incident errors become FAILED
        results; a failed read raises ``PlatformError``.
        """
        wanted = self._targets(targets)
        incidents = await self._incidents([t.id for t in wanted])

        async def one(target: Target) -> ItemResult:
            incident = incidents.get(target.id)
            if incident is None:
                return ItemResult(target=target, outcome=Outcome.NOT_FOUND, detail="no such Xpanse incident")
            decision = decide(target, incident)
            if isinstance(decision, ItemResult):
                return decision
            update_data, before, after = decision
            try:
                await self._update(target.id, update_data)
            except PlatformError as exc:
                log.warning("xpanse_update_failed", incident=target.id, status=exc.status, reason=exc.reason)
                return ItemResult(
                    target=target,
                    outcome=Outcome.FAILED,
                    detail=exc.reason,
                    status=exc.status,
                    before=before,
                )
            except _NotApplied as exc:
                return ItemResult(target=target, outcome=Outcome.FAILED, detail=str(exc), before=before)
            return ItemResult(target=target, outcome=Outcome.DONE, detail=done, before=before, after=after)

        return BatchResult.of(await _gather(one(t) for t in wanted))

    async def assign(self, targets: Sequence[Target], user_id: str, *, user_name: str | None = None) -> BatchResult:
        """Assign each incident to this email (one update per incident).

        Missing incidents are NOT_FOUND, incidents already assigned to the email
        SKIPPED, an email that is not a tenant user FAILED (when the key may list
        users), vendor errors FAILED per incident. ``UsageError`` for bad input.
        """
        email = self._email(user_id)
        wanted = self._targets(targets)
        pretty = user_name.strip() if user_name and user_name.strip() else None
        known: PlatformUser | None = None
        checked = True
        try:
            known = await self.find_user_by_email(email)
            if known is None:
                # The cached list may predate a newly added user: ask once more before refusing.
                known = await self._find_user(email, max_age=0)
        except PlatformAuthError as exc:
            if exc.status == 401:
                raise
            # A key without the rbac permission (402/403) can still assign: update_incident
            # validates the email itself.
            checked = False

        def decide(target: Target, incident: dict[str, Any]) -> Any:
            current = incident.get("assigned_user_mail") or None
            if current and current.lower() == email.lower():
                return ItemResult(
                    target=target,
                    outcome=Outcome.SKIPPED,
                    detail=f"already assigned to {current}",
                    before=current,
                    after=current,
                )
            if checked and known is None:
                return ItemResult(
                    target=target,
                    outcome=Outcome.FAILED,
                    before=current,
                    detail=f"{email} is not a user of this Xpanse tenant",
                )
            mail = known.id if known else email
            update: dict[str, Any] = {"assigned_user_mail": mail}
            name = pretty or (known.name if known else None)
            if name:
                update["assigned_user_pretty_name"] = name
            return update, current, mail

        return await self._write(wanted, decide, done=f"assigned to {email}")

    async def unassign(self, targets: Sequence[Target]) -> BatchResult:
        """Clear each incident's assignee; unassigned ones SKIPPED, errors FAILED per incident."""

        def decide(target: Target, incident: dict[str, Any]) -> Any:
            current = incident.get("assigned_user_mail") or None
            if not current:
                return ItemResult(target=target, outcome=Outcome.SKIPPED, detail="already unassigned")
            return {"assigned_user_mail": ""}, current, None

        return await self._write(targets, decide, done="unassigned")

    @staticmethod
    def resolve_status(reason: str | None) -> str:
        """The status for a resolve reason (enum value or short form); ``UsageError`` if unknown."""
        return rules.xpanse_resolve_status(reason)

    async def resolve(
        self, targets: Sequence[Target], *, reason: str | None = None, comment: str | None = None
    ) -> BatchResult:
        """Resolve each incident (status from ``reason``) with ``comment`` as the resolve comment.

        Already-resolved incidents are SKIPPED; ``UsageError`` for an unknown
        reason before any call; vendor errors FAILED per incident.
        """
        status = self.resolve_status(reason)
        note = comment.strip() if comment and comment.strip() else None
        if note and len(note) > MAX_COMMENT_LENGTH:
            raise UsageError(
                f"the resolve comment is longer than {MAX_COMMENT_LENGTH} characters",
                verb="resolve",
            )

        def decide(target: Target, incident: dict[str, Any]) -> Any:
            current = str(incident.get("status") or "")
            if current.startswith(RESOLVED):
                return ItemResult(
                    target=target,
                    outcome=Outcome.SKIPPED,
                    detail=f"already resolved ({current})",
                    before=current,
                    after=current,
                )
            update: dict[str, Any] = {"status": status}
            if note:
                update["resolve_comment"] = note
            return update, current or None, status

        return await self._write(targets, decide, done=f"resolved ({status})")

    async def set_severity(self, targets: Sequence[Target], severity: str) -> BatchResult:
        """Set each incident's manual severity (low, medium, high); ``UsageError`` for others."""
        value = rules.normalise_severity(Platform.XPANSE, severity)

        def decide(target: Target, incident: dict[str, Any]) -> Any:
            manual = incident.get("manual_severity") or None
            if manual == value:
                return ItemResult(
                    target=target,
                    outcome=Outcome.SKIPPED,
                    detail=f"severity already {value}",
                    before=manual,
                    after=manual,
                )
            return {"manual_severity": value}, manual or incident.get("severity") or None, value

        return await self._write(targets, decide, done=f"severity set to {value}")

    async def comment(self, target: Target, text: str) -> ItemResult:
        """Add a comment to one incident, sent once: an uncertain outcome is FAILED, never DONE.

        Only failures that prove nothing reached the server (429, connection
        refused) are retried; after a timeout, dropped connection or 5xx the
        result says the comment may or may not have been added. ``UsageError``
        for an empty or over-long text or a bad id; a failed read raises
        ``PlatformError``.
        """
        (target,) = self._targets([target])
        value = text.strip()
        if not value:
            raise UsageError("the comment is empty", verb="comment")
        if len(value) > MAX_COMMENT_LENGTH:
            raise UsageError(f"the comment is longer than {MAX_COMMENT_LENGTH} characters", verb="comment")
        if target.id not in await self._incidents([target.id]):
            return ItemResult(target=target, outcome=Outcome.NOT_FOUND, detail="no such Xpanse incident")
        update = {"comment": {"comment_action": "add", "value": value}}
        policy = self._config.http
        try:
            async for attempt in stamina.retry_context(
                on=_never_applied,
                attempts=policy.retry_attempts,
                timeout=policy.retry_timeout,
                wait_initial=policy.retry_wait_initial,
                wait_max=policy.retry_wait_max,
                wait_jitter=policy.retry_wait_initial,
            ):
                with attempt:
                    await self._update(target.id, update, http=self._once)
        except (PlatformAuthError, PlatformRateLimited, PlatformRejected, _NotApplied) as exc:
            # The server answered and refused (a business error's 500 included): nothing was added.
            detail = exc.reason if isinstance(exc, PlatformError) else str(exc)
            status = exc.status if isinstance(exc, PlatformError) else None
            return ItemResult(target=target, outcome=Outcome.FAILED, detail=detail, status=status)
        except PlatformError as exc:
            if isinstance(exc, PlatformUnavailable) or (exc.status or 0) >= 500:
                log.warning(
                    "xpanse_comment_uncertain",
                    incident=target.id,
                    status=exc.status,
                    reason=exc.reason,
                )
                return ItemResult(
                    target=target,
                    outcome=Outcome.FAILED,
                    status=exc.status,
                    detail="the comment may or may not have been added (not retried, to avoid a "
                    f"duplicate): {_without_retry_note(exc.reason)}; check the incident before "
                    "adding it again",
                )
            return ItemResult(target=target, outcome=Outcome.FAILED, detail=exc.reason, status=exc.status)
        return ItemResult(target=target, outcome=Outcome.DONE, detail="comment added", after=value)


def _never_applied(exc: Exception) -> bool | float:
    """Whether a failed comment certainly reached no handler, so sending it again is safe.

    Returns the wait the vendor asked for when it gave one (stamina's ``on`` protocol).
    """
    if isinstance(exc, PlatformRateLimited):
        return exc.retry_after if exc.retry_after is not None else True
    if isinstance(exc, PlatformUnavailable) and exc.status is None:
        cause = exc.__cause__.__cause__ if exc.__cause__ is not None else None
        # Connecting failed: the request never left this process.
        return isinstance(cause, httpx.ConnectError | httpx.ConnectTimeout)
    return False


def _without_retry_note(reason: str) -> str:
    # The one-shot client made a single attempt; PlatformHttp's "retries exhausted" would mislead.
    return reason.replace(" (retries exhausted)", "").replace(", retries exhausted", "")


async def _gather(items: Iterable[Awaitable[ItemResult]]) -> list[ItemResult]:
    return list(await asyncio.gather(*items))
