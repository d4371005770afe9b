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


# The generic text of a 500 whose cause follows in err_extra or after it in err_msg.
GENERIC_ERROR = "An error occurred while processing XDR public API"


def _text(value: Any) -> str:
    """A message field as text: a string, or the ``message`` of an object (``{line, column, message}``)."""
    if isinstance(value, dict):
        return str(value.get("message") or value.get("reason") or "").strip() or str(value)[:300]
    return str(value).strip() if value not in (None, "", [], {}) else ""


def error_fields(body: Any) -> dict[str, Any] | None:
    """``err_code``/``err_msg``/``err_extra`` wrapped in ``reply`` (Xpanse) or at the top (XDR)."""
    if not isinstance(body, dict):
        return None
    reply = body.get("reply", body)
    if isinstance(reply, dict) and any(k in reply for k in ("err_code", "err_msg", "err_extra")):
        return reply
    return None


def business_cause(body: Any) -> str:
    """The cause of a business or validation error, "" when the body names none.

    Xpanse answers those HTTP 500 with the cause in ``err_extra`` or appended to the generic
    ``err_msg`` ("… XDR public API - No endpoint was found …"); any other message without
    ``err_extra`` is taken for a real server error (retried).
    """
    fields = error_fields(body)
    if fields is None:
        return ""
    extra = _text(fields.get("err_extra"))
    if extra:
        return extra
    raw_msg = fields.get("err_msg")
    msg = _text(raw_msg)
    if isinstance(raw_msg, dict):  # a validation error: {"line", "column", "message"}
        return msg
    if msg.startswith(GENERIC_ERROR):
        return msg[len(GENERIC_ERROR) :].lstrip(" -,:").strip()
    return ""


def is_business_error(response: httpx.Response) -> bool:
    """A 5xx that carries its cause: the request was refused, sending it again repeats that."""
    return bool(business_cause(json_or_none(response)))


def envelope_reason(body: Any) -> str:
    reply = body.get("reply", body) if isinstance(body, dict) else body
    if isinstance(reply, dict):
        msg = _text(reply.get("err_msg"))
        extra_text = _text(reply.get("err_extra"))
        # err_code is an integer in real bodies (500), a string in the contract.
        code = str(reply.get("err_code") if reply.get("err_code") is not None else "").strip()
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
    # Unassigned is null in list results and "" in incident details.
    mail = str(incident.get("assigned_user_mail") or "").strip() or None
    return ItemState(
        target=target,
        title=str(incident.get("description") or incident.get("incident_name") or f"Incident {target.id}").strip(),
        severity=incident.get("manual_severity") or incident.get("severity") or None,
        status=incident.get("status") or None,
        assignees=[mail] if mail else [],
        assignee_name=incident.get("assigned_user_pretty_name") or None,
        link=incident.get("xdr_url") or None,
    )
