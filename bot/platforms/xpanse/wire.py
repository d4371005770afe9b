"""Xpanse on the wire: the public_api paths and limits, and the reading of its answers
(the reply envelope and its errors, incidents). Pure."""

from __future__ import annotations

from typing import Any

import httpx

from bot import rules
from bot.models import ItemState, Target
from bot.platforms.http import json_or_none

GET_INCIDENTS = "/public_api/v1/incidents/get_incidents/"
UPDATE_INCIDENT = "/public_api/v1/incidents/update_incident/"
GET_USERS = "/public_api/v1/rbac/get_users/"

PAGE_SIZE = 100  # get_incidents answers at most 100 incidents per request
USERS_TTL = 60.0  # seconds a get_users answer is reused, so a burst of look-ups is one call
MAX_COMMENT_LENGTH = 10_000

RESOLVED = rules.XPANSE_RESOLVED
RESOLVE_REASONS = rules.XPANSE_RESOLVE_REASONS
SEVERITIES = rules.XPANSE_SEVERITIES


def parse_error(response: httpx.Response) -> str:
    """A readable reason from an Xpanse error body (the reply envelope, other JSON or text)."""
    body = json_or_none(response)
    if body is None:
        return " ".join(response.text.split())[:300]
    return envelope_reason(body)


def envelope_reason(body: Any) -> str:
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


def incident_list(reply: Any) -> list[dict[str, Any]]:
    incidents = reply.get("incidents") if isinstance(reply, dict) else None
    return [i for i in incidents or [] if isinstance(i, dict)]


def incident_state(target: Target, incident: dict[str, Any]) -> ItemState:
    """The ``ItemState`` of one incident as get_incidents answers it."""
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
