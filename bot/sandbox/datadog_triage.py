"""The sandbox Datadog tenant's mute and detach routes, in Datadog's recorded shapes.

``PATCH /api/v2/security/findings/mute`` (NOTES §6.1): 202 ``{"data":{"id","type":"mute"}}``
with no ``meta``; one unknown finding fails the whole request with 404 ``finding not found``;
a reason of the other action (a mute reason to unmute, or the reverse) or a past
``expire_at`` is 422 with the recorded detail; more than 100 findings or a description
over 280 characters break the prose limits (400, noted as violations by the tenant).

``DELETE /api/v2/security/findings/cases`` (BEHAVIOUR §1.4): 204 with an empty body; an
empty list is 400 ``no finding provided``; an unknown finding 404; findings in no case are
ignored. Both apply to the tenant's ``findings`` and ``cases`` dicts; pure otherwise.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

MUTE_REASONS = frozenset({"PENDING_FIX", "FALSE_POSITIVE", "OTHER", "NO_FIX", "DUPLICATE", "RISK_ACCEPTED"})
UNMUTE_REASONS = frozenset({"NO_PENDING_FIX", "HUMAN_ERROR", "NO_LONGER_ACCEPTED_RISK", "OTHER"})
MUTE_MAX = 100
DESCRIPTION_MAX = 280
DETACH_MAX = 50

# (status, body, rule broken): the rule is set when the endpoint description forbids the request.
Answer = tuple[int, dict[str, Any] | None, str | None]


def _error(status: int, title: str, detail: str) -> dict[str, Any]:
    return {"errors": [{"status": str(status), "title": title, "detail": detail}]}


def _refs(body: dict[str, Any]) -> list[str]:
    data = (body.get("data") or {}).get("relationships", {}).get("findings", {}).get("data") or []
    return [str(r["id"]) for r in data]


def mute(findings: dict[str, dict[str, Any]], body: dict[str, Any], *, now_ms: int | None = None) -> Answer:
    """Apply a mute or unmute request to ``findings``."""
    data = body["data"]
    attrs = data["attributes"]["mute"]
    refs = _refs(body)
    if len(refs) > MUTE_MAX:
        return 400, _error(400, "Bad Request", "too many findings"), f"at most {MUTE_MAX} findings per request"
    description = attrs.get("description")
    if isinstance(description, str) and len(description) > DESCRIPTION_MAX:
        return 400, _error(400, "Bad Request", "description too long"), f"description over {DESCRIPTION_MAX}"
    if not refs:
        return 400, _error(400, "Bad Request", "no finding provided"), None
    muting = attrs["is_muted"] is True
    reason = attrs["reason"]
    allowed = MUTE_REASONS if muting else UNMUTE_REASONS
    if reason not in allowed:
        detail = (
            "The provided reason is not valid for the specified mute action. Possible values: ["
            + " ".join(sorted(allowed))
            + "]"
        )
        return 422, _error(422, "Unprocessable Entity", detail), None
    expire_at = attrs.get("expire_at")
    now = int(time.time() * 1000) if now_ms is None else now_ms
    if expire_at is not None and expire_at <= now:
        detail = "Invalid expiration date. Please provide an expiration date in the future"
        return 422, _error(422, "Invalid Request", detail), None
    if any(r not in findings for r in refs):
        return 404, _error(404, "Not Found", "finding not found"), None
    for finding_id in refs:
        state: dict[str, Any] = {"is_muted": muting}
        if muting:
            state["reason"] = reason
            if description:
                state["description"] = description
            if expire_at is not None:
                state["expire_at"] = expire_at
        findings[finding_id]["mute"] = state
    return 202, {"data": {"id": data.get("id") or str(uuid.uuid4()), "type": "mute"}}, None


def detach(findings: dict[str, dict[str, Any]], cases: dict[str, dict[str, Any]], body: dict[str, Any]) -> Answer:
    """Take the findings of a detach request out of their cases."""
    refs = _refs(body)
    if not refs:
        return 400, _error(400, "Bad Request", "no finding provided"), None
    if len(refs) > DETACH_MAX:
        return 400, _error(400, "Bad Request", "too many findings"), f"at most {DETACH_MAX} findings per request"
    if any(r not in findings for r in refs):
        return 404, _error(404, "Not Found", "finding not found"), None
    for finding_id in refs:
        finding = findings[finding_id]
        case = cases.get(finding.get("case_id") or "")
        if case is not None and finding_id in case["findings"]:
            case["findings"].remove(finding_id)
        finding["case_id"] = finding["case_key"] = None
    return 204, None, None
