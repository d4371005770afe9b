"""PagerDuty as a schedule source: ``GET /oncalls`` for one schedule, with its users' emails.

Follows ``../shared/contracts/pagerduty.yaml`` and NOTES 6.3: ``Authorization: Token
token=<key>`` with the v2 ``Accept`` and ``Content-Type`` headers on every request;
``schedule_ids[]`` with ``include[]=users`` (the user then arrives whole, with ``email``);
classic offset paging (``limit`` 100, advance ``offset`` until ``more`` is false, never past
10000). One request covers ``[at, at + LOOKAHEAD]``: entries covering ``at`` are current,
the earliest-starting later ones are next. An on-call without ``start`` is permanent.
Errors are ``{"error":{"code","message","errors"}}``; 401/403 mean the key lacks
``oncalls.read`` / ``users.read``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx

from bot.permissions import PAGERDUTY
from bot.platforms.http import PlatformHttp, json_or_none
from bot.platforms.oncall import Responder, Roster, parse_time, rfc3339
from bot.settings import PagerDutyConfig

LOOKAHEAD = timedelta(days=7)
PAGE = 100
MAX_OFFSET = 10000
ACCEPT = "application/vnd.pagerduty+json;version=2"


def parse_pagerduty_error(response: httpx.Response) -> str:
    """The vendor's message (and details) from ``{"error": {...}}``, else the status text."""
    body = json_or_none(response)
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return response.reason_phrase
    message = str(error.get("message") or response.reason_phrase)
    details = [str(e) for e in error.get("errors") or [] if e]
    code = error.get("code")
    return f"{message}{' (' + '; '.join(details) + ')' if details else ''}{f' [code {code}]' if code else ''}"


class PagerDutySource:
    """Who is on call in a PagerDuty schedule, read with ``GET /oncalls``."""

    kind = "pagerduty"
    missing_permission = "the PagerDuty API key needs read access to on-calls and users (oncalls.read, users.read)"

    def __init__(self, config: PagerDutyConfig) -> None:
        key = config.api_key.get_secret_value()
        self.http = PlatformHttp(
            platform="pagerduty",
            base_url=config.api_url,
            policy=config.http,
            headers={"Authorization": f"Token token={key}", "Accept": ACCEPT, "Content-Type": "application/json"},
            error_parser=parse_pagerduty_error,
            secrets=[key],
            permissions=PAGERDUTY,
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    async def roster(self, schedule_id: str, *, at: datetime) -> Roster:
        """Current and next responders of ``schedule_id``; raises ``PlatformError`` on any failure."""
        entries: list[dict[str, Any]] = []
        offset = 0
        while True:
            params = {
                "schedule_ids[]": schedule_id,
                "include[]": "users",
                "since": rfc3339(at),
                "until": rfc3339(at + LOOKAHEAD),
                "limit": PAGE,
                "offset": offset,
            }
            response = await self.http.request("GET", "/oncalls", operation="listOnCalls", params=params)
            body = json_or_none(response) or {}
            entries += [e for e in body.get("oncalls") or [] if isinstance(e, dict)]
            offset += PAGE
            if not body.get("more") or offset + PAGE > MAX_OFFSET:
                break
        current: dict[str, Responder] = {}
        upcoming: list[Responder] = []
        for entry in entries:
            responder = await self._responder(entry)
            if responder is None:
                continue
            if responder.start is None or responder.start <= at:
                if responder.end is None or responder.end > at:
                    current.setdefault(responder.source_id, responder)
            else:
                upcoming.append(responder)
        first = min((r.start for r in upcoming if r.start), default=None)
        following = {r.source_id: r for r in upcoming if r.start == first and r.source_id not in current}
        return Roster(schedule_id=schedule_id, at=at, current=list(current.values()), next=list(following.values()))

    async def _responder(self, entry: dict[str, Any]) -> Responder | None:
        user = entry.get("user")
        if not isinstance(user, dict) or not user.get("id"):
            return None
        email = user.get("email")
        if not email:  # a user reference only: ask for the user (scope users.read)
            response = await self.http.request("GET", f"/users/{user['id']}", operation="getUser")
            full = (json_or_none(response) or {}).get("user") or {}
            email, user = full.get("email"), {**user, **full}
        if not email:
            return None
        return Responder(
            email=str(email).strip().lower(),
            name=user.get("name") or user.get("summary"),
            source_id=str(user["id"]),
            start=parse_time(entry.get("start")),
            end=parse_time(entry.get("end")),
        )
