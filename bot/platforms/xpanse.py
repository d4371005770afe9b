"""Cortex Xpanse incidents through the ``public_api/v1`` REST API.

Every call is ``POST <path>/`` with ``{"request_data": {...}}`` and every
answer is ``{"reply": ...}``; errors share ``{"reply": {"err_code",
"err_msg", "err_extra"}}``. Keys are *standard* (the raw key in
``Authorization``) or *advanced* (a SHA-256 over key, nonce and timestamp,
fresh for every attempt). ``update_incident`` changes one incident per call
and ``get_incidents`` has no assignee filter, so assignee searches page and
filter client-side. Comments are not idempotent and are sent without
automatic retries (see ``XpanseClient.comment``).
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import string
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Generator, Iterable, Sequence
from typing import Any

import httpx
import stamina
import structlog

from bot import rules
from bot.errors import (
    PlatformAuthError,
    PlatformError,
    PlatformRateLimited,
    PlatformUnavailable,
    UsageError,
)
from bot.models import BatchResult, ItemResult, ItemState, Outcome, Platform, PlatformUser, Target
from bot.platforms.base import BasePlatformClient
from bot.platforms.http import PlatformHttp, json_or_none
from bot.settings import XpanseConfig

log = structlog.get_logger(__name__)

GET_INCIDENTS = "/public_api/v1/incidents/get_incidents/"
UPDATE_INCIDENT = "/public_api/v1/incidents/update_incident/"
GET_USERS = "/public_api/v1/rbac/get_users/"

PAGE_SIZE = 100  # get_incidents answers at most 100 incidents per request
USERS_TTL = 60.0  # seconds a get_users answer is reused, so a burst of look-ups is one call
MAX_COMMENT_LENGTH = 10_000

_NONCE_ALPHABET = string.ascii_letters + string.digits

RESOLVED = rules.XPANSE_RESOLVED
RESOLVE_REASONS = rules.XPANSE_RESOLVE_REASONS
SEVERITIES = rules.XPANSE_SEVERITIES


def new_nonce() -> str:
    """64 random characters from [A-Za-z0-9], as the advanced-key scheme requires."""
    return "".join(secrets.choice(_NONCE_ALPHABET) for _ in range(64))


class XpanseAuth(httpx.Auth):
    """Signs every request (every retry attempt too) with a standard or advanced Xpanse key."""

    def __init__(
        self,
        api_key: str,
        key_id: str,
        *,
        advanced: bool,
        nonce_factory: Callable[[], str] = new_nonce,
    ) -> None:
        self._api_key = api_key
        self._key_id = key_id
        self._advanced = advanced
        self._nonce_factory = nonce_factory

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Set the auth headers for this attempt; never fails."""
        request.headers["x-xdr-auth-id"] = self._key_id
        if self._advanced:
            nonce = self._nonce_factory()
            timestamp = str(int(time.time() * 1000))
            digest = hashlib.sha256(f"{self._api_key}{nonce}{timestamp}".encode()).hexdigest()
            request.headers["x-xdr-nonce"] = nonce
            request.headers["x-xdr-timestamp"] = timestamp
            request.headers["Authorization"] = digest
        else:
            request.headers["Authorization"] = self._api_key
        yield request


def parse_error(response: httpx.Response) -> str:
    """A readable reason from an Xpanse error body (the reply envelope, other JSON or text)."""
    body = json_or_none(response)
    if body is None:
        return " ".join(response.text.split())[:300]
    return _envelope_reason(body)


def _envelope_reason(body: Any) -> str:
    reply = body.get("reply", body) if isinstance(body, dict) else body
    if isinstance(reply, dict):
        msg = str(reply.get("err_msg") or "").strip()
        extra = reply.get("err_extra")
        extra_text = str(extra).strip() if extra not in (None, "", {}, []) else ""
        code = str(reply.get("err_code") or "").strip()
        parts = [p for p in (msg, extra_text) if p]
        text = ": ".join(parts) if parts else ""
        if code and text:
            return f"{text} (code {code})"
        return text or (f"error code {code}" if code else str(reply)[:300])
    return str(reply)[:300]


class _NotApplied(Exception):
    """update_incident answered 200 without ``reply: true``."""


class XpanseClient(BasePlatformClient):
    """Xpanse incidents: read, assign, resolve, comment, set severity; users by email."""

    platform = Platform.XPANSE

    def __init__(self, config: XpanseConfig) -> None:
        self._config = config
        auth = XpanseAuth(config.api_key.get_secret_value(), config.api_key_id, advanced=config.auth == "advanced")
        common: dict[str, Any] = {
            "platform": Platform.XPANSE.value,
            "base_url": config.api_url.rstrip("/"),
            "headers": {"Content-Type": "application/json", "Accept": "application/json"},
            "error_parser": parse_error,
            "auth": auth,
            "secrets": [config.api_key.get_secret_value()],
        }
        self._http = PlatformHttp(policy=config.http, rate_limit=config.rate_limit, **common)
        # Comments are not idempotent: a retried timeout could post the same comment twice,
        # so they go through a client that tries exactly once (comment() retries only the
        # failures that prove nothing was applied).
        # It shares the main client's limiter so both together stay under the tenant's rate limit.
        self._once = PlatformHttp(
            policy=config.http.model_copy(update={"retry_attempts": 1}), limiter=self._http.limiter, **common
        )
        self._users_cache: tuple[float, list[dict[str, Any]]] | None = None
        self._users_lock = asyncio.Lock()

    # ---- plumbing -----------------------------------------------------------------------

    def call_counts(self) -> Counter[str]:
        """Requests sent so far, per operation (attempts included)."""
        return self._http.calls + self._once.calls

    async def aclose(self) -> None:
        """Close both HTTP clients."""
        await self._http.aclose()
        await self._once.aclose()

    async def _post(
        self,
        path: str,
        request_data: dict[str, Any],
        *,
        operation: str,
        http: PlatformHttp | None = None,
    ) -> Any:
        response = await (http or self._http).request(
            "POST", path, operation=operation, json={"request_data": request_data}
        )
        body = json_or_none(response)
        if not isinstance(body, dict) or "reply" not in body:
            raise PlatformUnavailable(
                self.platform.value,
                f"{operation}: unexpected answer (no reply)",
                status=response.status_code,
            )
        return body["reply"]

    def validate_id(self, item_id: str) -> str:
        """Return the incident id stripped, or raise ``UsageError`` unless it is numeric."""
        return rules.normalise_xpanse_incident_id(item_id)

    def _targets(self, targets: Sequence[Target]) -> list[Target]:
        """Check every target before any call; drop duplicates, keep order."""
        seen: dict[Target, None] = {}
        for target in targets:
            if target.platform is not Platform.XPANSE:
                raise UsageError(f"{target} is not an Xpanse incident")
            self.validate_id(target.id)
            seen.setdefault(target, None)
        return list(seen)

    @staticmethod
    def _email(email: str) -> str:
        rules.normalise_email(email)
        return email.strip()  # as typed: the tenant's spelling comes from get_users

    # ---- reads --------------------------------------------------------------------------

    async def _incidents(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Raw incidents by id, 100 per get_incidents call; absent ids are absent."""
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(ids), PAGE_SIZE):
            chunk = list(ids[start : start + PAGE_SIZE])
            reply = await self._post(
                GET_INCIDENTS,
                {
                    "filters": [{"field": "incident_id_list", "operator": "in", "value": chunk}],
                    "search_from": 0,
                    "search_to": len(chunk),
                },
                operation="get_incidents",
            )
            for incident in _incident_list(reply):
                found[str(incident.get("incident_id"))] = incident
        return found

    def _state(self, target: Target, incident: dict[str, Any]) -> ItemState:
        mail = incident.get("assigned_user_mail") or None
        return ItemState(
            target=target,
            title=str(incident.get("description") or incident.get("incident_name") or f"Incident {target.id}").strip(),
            severity=incident.get("manual_severity") or incident.get("severity") or None,
            status=incident.get("status") or None,
            assignees=[mail] if mail else [],
            assignee_name=incident.get("assigned_user_pretty_name") or None,
            link=incident.get("xdr_url") or None,
        )

    async def fetch(self, targets: Sequence[Target]) -> dict[Target, ItemState]:
        """Current state of each incident (absent ids absent); ``PlatformError`` if a read fails."""
        wanted = self._targets(targets)
        incidents = await self._incidents([t.id for t in wanted])
        return {t: self._state(t, incidents[t.id]) for t in wanted if t.id in incidents}

    async def _users(self, *, max_age: float = USERS_TTL) -> list[dict[str, Any]]:
        """rbac/get_users, reused for ``max_age`` seconds (one call for a burst of look-ups)."""
        async with self._users_lock:
            now = time.monotonic()
            if self._users_cache and now - self._users_cache[0] < max_age:
                return self._users_cache[1]
            reply = await self._post(GET_USERS, {}, operation="get_users")
            users = [u for u in reply if isinstance(u, dict)] if isinstance(reply, list) else []
            self._users_cache = (now, users)
            return users

    async def find_user_by_email(self, email: str) -> PlatformUser | None:
        """The tenant user with exactly this email (any case), or None; raises ``PlatformError``."""
        return await self._find_user(email, max_age=USERS_TTL)

    async def _find_user(self, email: str, *, max_age: float) -> PlatformUser | None:
        wanted = email.strip().lower()
        for user in await self._users(max_age=max_age):
            if str(user.get("user_email") or "").lower() == wanted:
                name = " ".join(str(p) for p in (user.get("user_first_name"), user.get("user_last_name")) if p).strip()
                return PlatformUser(
                    platform=Platform.XPANSE,
                    id=str(user["user_email"]),
                    email=str(user["user_email"]),
                    name=name or None,
                )
        return None

    async def get_user(self, user_id: str) -> PlatformUser | None:
        """The tenant user with this email (ids are emails), or None; raises ``PlatformError``."""
        return await self.find_user_by_email(user_id)

    async def list_assigned(self, user_id: str, *, limit: int = 1000) -> list[ItemState]:
        """Unresolved incidents assigned to this email, newest first, at most ``limit``.

        get_incidents cannot filter on the assignee, so this pages through the
        open incidents (100 a call) and keeps those whose ``assigned_user_mail``
        matches; raises ``PlatformError`` when a page cannot be read.
        """
        wanted = self._email(user_id).lower()
        if limit <= 0:
            return []
        filters = [{"field": "status", "operator": "neq", "value": s} for s in rules.XPANSE_CLOSED_STATUSES]
        found: dict[str, ItemState] = {}
        start = 0
        while len(found) < limit:
            reply = await self._post(
                GET_INCIDENTS,
                {
                    "filters": filters,
                    "search_from": start,
                    "search_to": start + PAGE_SIZE,
                    "sort": {"field": "creation_time", "keyword": "desc"},
                },
                operation="get_incidents",
            )
            page = _incident_list(reply)
            for incident in page:
                if str(incident.get("assigned_user_mail") or "").lower() != wanted:
                    continue
                incident_id = str(incident.get("incident_id"))
                state = self._state(Target(platform=Platform.XPANSE, id=incident_id), incident)
                # The filter excludes resolved ones; this guards against new resolved_* values.
                if state.is_open and incident_id not in found:
                    found[incident_id] = state
                    if len(found) >= limit:
                        break
            start += PAGE_SIZE
            total = reply.get("total_count") if isinstance(reply, dict) else None
            if not page or len(page) < PAGE_SIZE or (isinstance(total, int) and start >= total):
                break
        return list(found.values())

    async def check(self) -> str:
        """One get_incidents call for one incident; a short description, or ``PlatformError``."""
        reply = await self._post(GET_INCIDENTS, {"search_from": 0, "search_to": 1}, operation="get_incidents")
        total = reply.get("total_count") if isinstance(reply, dict) else None
        suffix = f", {total} incidents visible" if isinstance(total, int) else ""
        return f"Xpanse: authenticated ({self._config.auth} key {self._config.api_key_id}){suffix}"

    # ---- writes -------------------------------------------------------------------------

    async def _update(self, incident_id: str, update_data: dict[str, Any], *, http: PlatformHttp | None = None) -> None:
        """One update_incident; raises ``PlatformError`` or ``_NotApplied``."""
        reply = await self._post(
            UPDATE_INCIDENT,
            {"incident_id": incident_id, "update_data": update_data},
            operation="update_incident",
            http=http,
        )
        if reply is not True:
            reason = _envelope_reason({"reply": reply}) if isinstance(reply, dict) else f"reply: {reply}"
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
        except (PlatformAuthError, PlatformRateLimited, _NotApplied) as exc:
            # The server answered and refused: nothing was added.
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


def _incident_list(reply: Any) -> list[dict[str, Any]]:
    incidents = reply.get("incidents") if isinstance(reply, dict) else None
    return [i for i in incidents or [] if isinstance(i, dict)]


async def _gather(items: Iterable[Awaitable[ItemResult]]) -> list[ItemResult]:
    return list(await asyncio.gather(*items))
