"""Xpanse's triage vocabulary beyond resolve: reopen, and the incident details a card shows.

* ``reopen`` is one ``update_incident`` per resolved incident with status
  ``under_investigation``; incidents not resolved are SKIPPED.
* ``with_details`` adds, for a card, the alert count and the assets most alerts name from
  ``POST /public_api/v1/incidents/get_incident_extra_data/`` (NOTES §6.5). That route
  allows 10 requests a minute, so answers are cached (``DETAILS_TTL``), calls are kept
  under the limit (``DETAILS_PER_MINUTE``), and a skipped or failed details call only
  leaves the card without them. ``fetch`` itself is unchanged: lists and pre-reads never
  pay for details.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Sequence
from typing import Any

import structlog

from bot import rules
from bot.errors import PlatformError
from bot.models import BatchResult, ItemResult, ItemState, Outcome, Target
from bot.platforms.http import Limiter
from bot.platforms.xpanse.client import XpanseWriter
from bot.platforms.xpanse.wire import RESOLVED
from bot.settings import XpanseConfig

log = structlog.get_logger(__name__)

GET_INCIDENT_EXTRA_DATA = "/public_api/v1/incidents/get_incident_extra_data/"
DETAILS_TTL = 300.0  # seconds an incident's details are reused
DETAILS_PER_MINUTE = 8  # details calls a minute, under the route's documented 10
ALERTS_LIMIT = 100  # alerts asked for to rank the assets (the count is reply.alerts.total_count)
_ASSET_FIELDS = ("domain_names", "ipv4_addresses", "ipv6_addresses")


def _as_dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def incident_details(reply: Any, *, top: int = rules.vocabulary.XPANSE_TOP_ASSETS) -> tuple[int | None, list[str]]:
    """(alert count, the assets named by most alerts) from a get_incident_extra_data reply.

    The alert fields are comma-joined strings (NOTES §6.5); with no alerts the incident's
    own ``hosts`` are the assets.
    """
    if not isinstance(reply, dict):
        return None, []
    incident = _as_dict(reply.get("incident"))
    alerts = _as_dict(reply.get("alerts"))
    count = alerts.get("total_count")
    if not isinstance(count, int) or isinstance(count, bool):
        count = incident.get("alert_count") if isinstance(incident.get("alert_count"), int) else None
    seen: Counter[str] = Counter()
    for alert in alerts.get("data") or []:
        if not isinstance(alert, dict):
            continue
        names = dict.fromkeys(
            part.strip()
            for name in _ASSET_FIELDS
            if isinstance(alert.get(name), str)
            for part in alert[name].split(",")
            if part.strip()
        )
        seen.update(list(names))  # ties keep the order the alerts name them in
    assets = [name for name, _ in seen.most_common(top)]
    if not assets:
        hosts = incident.get("hosts")
        assets = [str(h).removesuffix(":null") for h in hosts[:top]] if isinstance(hosts, list) else []
    return count, assets


class XpanseClient(XpanseWriter):
    """Xpanse incidents: read, assign, resolve, reopen, comment, set severity; users by email."""

    def __init__(self, config: XpanseConfig, *, limiter: Limiter | None = None) -> None:
        super().__init__(config, limiter=limiter)
        self._details: dict[str, tuple[float, tuple[int | None, list[str]]]] = {}
        self._calls: deque[float] = deque()  # when the last details calls were made

    async def reopen(
        self, targets: Sequence[Target], *, reason: str | None = None, comment: str | None = None
    ) -> BatchResult:
        """Put each resolved incident back ``under_investigation``; others are SKIPPED."""
        status = rules.XPANSE_REOPEN_STATUS
        note = "; comment kept in Slack only" if comment and comment.strip() else ""

        def decide(target: Target, incident: dict[str, Any]) -> Any:
            current = str(incident.get("status") or "")
            if not current.startswith(RESOLVED):
                return ItemResult(
                    target=target,
                    outcome=Outcome.SKIPPED,
                    detail=f"not resolved ({current or 'no status'}){note}",
                    before=current or None,
                    after=current or None,
                )
            return {"status": status}, current, status

        return await self._write(targets, decide, done=f"reopened ({status}){note}")

    async def with_details(self, state: ItemState) -> ItemState:
        """``state`` with the incident's alert count and top assets, for its card.

        The route allows 10 calls a minute: answers are reused for ``DETAILS_TTL`` and at
        most ``DETAILS_PER_MINUTE`` calls are made; past that, or when the call fails, the
        card simply goes without the details.
        """
        details = await self._incident_details(state.target.id)
        if details is None:
            return state
        count, assets = details
        return state.model_copy(update={"alert_count": count, "top_assets": assets})

    async def _incident_details(self, incident_id: str) -> tuple[int | None, list[str]] | None:
        cached = self._details.get(incident_id)
        now = time.monotonic()
        if cached is not None and now - cached[0] < DETAILS_TTL:
            return cached[1]
        while self._calls and now - self._calls[0] >= 60.0:
            self._calls.popleft()
        if len(self._calls) >= DETAILS_PER_MINUTE:
            log.info("xpanse_details_skipped", incident=incident_id, reason="route limit of 10 calls a minute")
            return None
        self._calls.append(now)
        try:
            reply = await self._post(
                GET_INCIDENT_EXTRA_DATA,
                {"incident_id": incident_id, "alerts_limit": ALERTS_LIMIT},
                operation="get_incident_extra_data",
            )
        except PlatformError as exc:
            log.info("xpanse_details_unavailable", incident=incident_id, status=exc.status, reason=exc.reason)
            return None
        details = incident_details(reply)
        self._details[incident_id] = (now, details)
        return details
