"""Datadog On-Call as a schedule source: ``GET /api/v2/on-call/schedules/{id}/responders``.

Follows ``../shared/contracts/datadog.yaml`` (GetScheduleOnCallResponders) and NOTES 6.2:
always ``include=responders.shifts.user`` (without it there is no ``included`` at all),
``filter[position]=previous,current,next`` and ``filter[at_ts]`` in UTC with ``Z``. The
answer is walked responders -> ``schedule_oncall_responder`` (its ``position``) -> ``shifts``
(``start``/``end``, the user's id) -> thin ``users`` (read only ``email``). Several shifts at
one position are concurrent responders; a position with no shift is omitted, so an empty
list is "nobody", not an error. The deprecated single-user endpoint is never used. The key
needs ``on_call_read``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.permissions import DATADOG_ONCALL
from bot.platforms.datadog.wire import parse_datadog_error
from bot.platforms.http import PlatformHttp, json_or_none
from bot.platforms.oncall import Responder, Roster, parse_time, rfc3339
from bot.settings import DatadogConfig

INCLUDE = "responders.shifts.user"
POSITIONS = "previous,current,next"


def read_responders(body: Any, *, schedule_id: str, at: datetime) -> Roster:
    """The roster in one GetScheduleOnCallResponders answer (pure)."""
    data = body.get("data") if isinstance(body, dict) else None
    included = body.get("included") if isinstance(body, dict) else None
    index = {(i.get("type"), i.get("id")): i for i in included or [] if isinstance(i, dict)}
    refs = ((data or {}).get("relationships") or {}).get("responders", {}).get("data") or []
    by_position: dict[str, list[Responder]] = {}
    for ref in refs:
        group = index.get(("schedule_oncall_responder", ref.get("id"))) or {}
        position = str((group.get("attributes") or {}).get("position") or "")
        for shift_ref in ((group.get("relationships") or {}).get("shifts") or {}).get("data") or []:
            shift = index.get(("shifts", shift_ref.get("id"))) or {}
            user_id = (((shift.get("relationships") or {}).get("user") or {}).get("data") or {}).get("id")
            user = index.get(("users", user_id)) or {}
            email = (user.get("attributes") or {}).get("email")
            if not user_id or not email:
                continue
            attrs = shift.get("attributes") or {}
            by_position.setdefault(position, []).append(
                Responder(
                    email=str(email).strip().lower(),
                    name=(user.get("attributes") or {}).get("name") or None,
                    source_id=str(user_id),
                    start=parse_time(attrs.get("start")),
                    end=parse_time(attrs.get("end")),
                )
            )
    return Roster(
        schedule_id=schedule_id, at=at, current=by_position.get("current", []), next=by_position.get("next", [])
    )


class DatadogOnCall:
    """Who is on call in a Datadog On-Call schedule."""

    kind = "datadog"
    missing_permission = "the Datadog application key needs the on_call_read permission"

    def __init__(self, config: DatadogConfig) -> None:
        self.http = PlatformHttp(
            platform="datadog",
            base_url=config.api_url,
            policy=config.http,
            headers={
                "DD-API-KEY": config.api_key.get_secret_value(),
                "DD-APPLICATION-KEY": config.app_key.get_secret_value(),
                "Accept": "application/json",
            },
            error_parser=parse_datadog_error,
            permissions=DATADOG_ONCALL,
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    async def roster(self, schedule_id: str, *, at: datetime) -> Roster:
        """Current and next responders of ``schedule_id``; raises ``PlatformError`` on any failure."""
        response = await self.http.request(
            "GET",
            f"/api/v2/on-call/schedules/{schedule_id}/responders",
            operation="GetScheduleOnCallResponders",
            params={"include": INCLUDE, "filter[position]": POSITIONS, "filter[at_ts]": rfc3339(at)},
        )
        return read_responders(json_or_none(response), schedule_id=schedule_id, at=at)
