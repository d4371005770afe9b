"""Reading Xpanse incidents and users; the base of the client."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from bot import permissions, rules
from bot.errors import (
    PlatformUnavailable,
    UsageError,
)
from bot.models import ItemState, Platform, PlatformUser, Target
from bot.platforms.base import BasePlatformClient
from bot.platforms.http import Limiter, PlatformHttp, json_or_none
from bot.platforms.xpanse.auth import XpanseAuth
from bot.platforms.xpanse.wire import (
    GET_INCIDENTS,
    GET_USERS,
    PAGE_SIZE,
    USERS_TTL,
    incident_list,
    incident_state,
    is_business_error,
    parse_error,
)
from bot.settings import XpanseConfig


class XpanseReader(BasePlatformClient):
    """Xpanse incidents and users: the plumbing, validation and reads."""

    platform = Platform.XPANSE

    def __init__(self, config: XpanseConfig, *, limiter: Limiter | None = None) -> None:
        self._config = config
        auth = XpanseAuth(config.api_key.get_secret_value(), config.api_key_id, advanced=config.auth == "advanced")
        common: dict[str, Any] = {
            "platform": Platform.XPANSE.value,
            "base_url": config.api_url.rstrip("/"),
            "headers": {"Content-Type": "application/json", "Accept": "application/json"},
            "error_parser": parse_error,
            # Business errors arrive as HTTP 500 with the cause in err_extra: not retried.
            "refusal": is_business_error,
            "auth": auth,
            "secrets": [config.api_key.get_secret_value()],
            "permissions": permissions.XPANSE,
        }
        # ``limiter``: the tenant's rate limit shared with other processes; else this client's own.
        self._http = PlatformHttp(policy=config.http, rate_limit=config.rate_limit, limiter=limiter, **common)
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
            for incident in incident_list(reply):
                found[str(incident.get("incident_id"))] = incident
        return found

    async def fetch(self, targets: Sequence[Target]) -> dict[Target, ItemState]:
        """Current state of each incident (absent ids absent); ``PlatformError`` if a read fails."""
        wanted = self._targets(targets)
        incidents = await self._incidents([t.id for t in wanted])
        return {t: incident_state(t, incidents[t.id]) for t in wanted if t.id in incidents}

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
            page = incident_list(reply)
            for incident in page:
                if str(incident.get("assigned_user_mail") or "").lower() != wanted:
                    continue
                incident_id = str(incident.get("incident_id"))
                state = incident_state(Target(platform=Platform.XPANSE, id=incident_id), incident)
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
