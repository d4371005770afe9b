"""Datadog users: the look-ups by email and by UUID over ``GET /api/v2/users``."""

from __future__ import annotations

from typing import Any

from bot import rules
from bot.errors import PlatformError
from bot.models import Platform, PlatformUser, Verb
from bot.platforms.datadog.wire import as_dict, platform_user
from bot.platforms.http import PlatformHttp, json_or_none

USERS_PAGE = 100
# Users pages to scan for get_user before giving up (USERS_PAGE users each).
USER_SCAN_PAGES = 50
# Pages of substring matches to compare for one email (a short email can match many users).
EMAIL_SCAN_PAGES = 10


class DatadogUsers:
    """The identity half of ``DatadogClient`` (needs its ``_http``)."""

    _http: PlatformHttp

    async def find_user_by_email(self, email: str) -> PlatformUser | None:
        """The active, human Datadog user whose email is exactly ``email`` (case-insensitive).

        The users filter is a substring match, so every page of candidates is compared
        exactly; disabled and service accounts are skipped. Raises ``UsageError`` for a
        malformed email and the ``PlatformError`` met for a failed call.
        """
        rules.normalise_email(email)
        wanted = email.strip()
        folded = wanted.casefold()
        for number in range(EMAIL_SCAN_PAGES):
            page = await self._users_page({"filter": wanted, "filter[status]": "Active"}, number)
            for user in page:
                attrs = as_dict(user.get("attributes"))
                if str(attrs.get("email") or "").casefold() != folded:
                    continue
                if attrs.get("disabled") or attrs.get("service_account"):
                    continue
                if attrs.get("status") not in (None, "Active"):
                    continue
                return platform_user(user, attrs)
            if len(page) < USERS_PAGE:
                break
        return None

    async def get_user(self, user_id: str) -> PlatformUser | None:
        """The active Datadog user with this UUID, or None when it is gone or disabled.

        The contract has no get-by-id for users and the list filter matches text, not ids,
        so this scans the active users page by page (``USERS_PAGE`` each, at most
        ``USER_SCAN_PAGES`` pages). Raises ``UsageError`` for a malformed id, and
        ``PlatformError`` when the organisation is too large to scan or a call fails:
        "could not tell" must never read as "gone".
        """
        uuid = rules.normalise_datadog_user_id(user_id, verb=Verb.WHOAMI)
        for number in range(USER_SCAN_PAGES):
            page = await self._users_page({"filter[status]": "Active"}, number)
            for user in page:
                if str(user.get("id", "")).lower() != uuid:
                    continue
                attrs = as_dict(user.get("attributes"))
                if attrs.get("disabled") or attrs.get("status") not in (None, "Active"):
                    return None
                return platform_user(user, attrs)
            if len(page) < USERS_PAGE:
                return None
        raise PlatformError(
            Platform.DATADOG.value,
            f"could not confirm user {uuid}: more than {USERS_PAGE * USER_SCAN_PAGES} active users to scan",
        )

    async def _users_page(self, params: dict[str, str], number: int) -> list[dict[str, Any]]:
        """One page of ``GET /api/v2/users`` (pages start at 0, ``USERS_PAGE`` users each)."""
        response = await self._http.request(
            "GET",
            "/api/v2/users",
            operation="list_users",
            params={**params, "page[size]": USERS_PAGE, "page[number]": number},
        )
        body = json_or_none(response)
        data = body.get("data") if isinstance(body, dict) else None
        return [u for u in data if isinstance(u, dict)] if isinstance(data, list) else []
