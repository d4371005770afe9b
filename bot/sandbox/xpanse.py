"""A sandbox Cortex Xpanse tenant: incidents and users behind ``public_api/v1``.

Implements what ``XpanseClient`` calls, each ``POST <path>/`` with ``{"request_data": …}``
answered ``{"reply": …}``: ``incidents/get_incidents/`` (the ``incident_id_list``,
``status``, ``description`` and time filters, sort, ``search_from``/``search_to`` at most
100 apart), ``incidents/update_incident/`` (assignee by a tenant user's email, manual
severity, status, resolve comment only when resolving, comments) and ``rbac/get_users/``.
Standard and advanced keys are checked as the tenant does; every error is the
``{"reply": {"err_code", "err_msg", "err_extra"}}`` envelope (401, 404, 500).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from bot.sandbox.server import SandboxServer, json_response

GENERIC_ERROR = "An error occurred while processing XDR public API"
_SEVERITY_RANK = {"low": 1, "medium": 2, "high": 3, "critical": 4}


class _Refused(Exception):
    def __init__(self, status: int, msg: str, extra: str = "") -> None:
        super().__init__(msg)
        self.status, self.msg, self.extra = status, msg, extra


@dataclass
class Incident:
    """One incident as the tenant stores it."""

    incident_id: str
    description: str
    severity: str = "high"
    status: str = "new"
    manual_severity: str | None = None
    assigned_user_mail: str | None = None
    assigned_user_pretty_name: str | None = None
    resolve_comment: str = ""
    comments: list[str] = field(default_factory=list)
    creation_time: int = 0
    modification_time: int = 0

    def reply(self, host: str) -> dict[str, Any]:
        return {
            "incident_id": self.incident_id,
            "incident_name": None,
            "description": self.description,
            "status": self.status,
            "severity": self.severity,
            "manual_severity": self.manual_severity,
            "assigned_user_mail": self.assigned_user_mail,
            "assigned_user_pretty_name": self.assigned_user_pretty_name,
            "creation_time": self.creation_time,
            "modification_time": self.modification_time,
            "resolve_comment": self.resolve_comment,
            "alert_count": 1,
            "incident_sources": ["ASM"],
            "xdr_url": f"{host}/incident-view?caseId={self.incident_id}",
            "notes": None,
        }


class XpanseSandbox(SandboxServer):
    """An in-memory Xpanse tenant."""

    name = "Xpanse"

    def __init__(self, *, keys: dict[str, tuple[str, str]]) -> None:
        """``keys``: key id → (``standard``|``advanced``, key)."""
        super().__init__()
        self.keys = dict(keys)
        self.incidents: dict[str, Incident] = {}
        self.users: dict[str, dict[str, Any]] = {}
        self._nonces: set[str] = set()
        self._clock = int(time.time() * 1000) - 10_000_000

    def add_incident(
        self,
        incident_id: str,
        *,
        description: str,
        severity: str = "high",
        status: str = "new",
        assigned_user_mail: str | None = None,
        assigned_user_pretty_name: str | None = None,
    ) -> None:
        """Seed an incident; each one is newer than the one before."""
        self._clock += 1000
        self.incidents[incident_id] = Incident(
            incident_id,
            description,
            severity,
            status,
            assigned_user_mail=assigned_user_mail,
            assigned_user_pretty_name=assigned_user_pretty_name,
            creation_time=self._clock,
            modification_time=self._clock,
        )

    def add_user(self, email: str, first: str, last: str) -> None:
        """Add a tenant user (update_incident accepts only these emails)."""
        self.users[email.lower()] = {
            "user_email": email,
            "user_first_name": first,
            "user_last_name": last,
            "role_name": "Investigator",
            "user_type": "Cortex",
            "groups": [],
        }

    async def handle(self, request: web.Request, body: Any) -> web.StreamResponse:
        try:
            self._authenticate(request)
            data = (body or {}).get("request_data") if isinstance(body, dict) else None
            if not isinstance(data, dict):
                raise _Refused(500, GENERIC_ERROR, "request_data is required")
            path = request.path
            reply: Any
            if path.endswith("/incidents/get_incidents/"):
                reply = self._get_incidents(data)
            elif path.endswith("/incidents/update_incident/"):
                reply = self._update(data)
            elif path.endswith("/rbac/get_users/"):
                reply = list(self.users.values())
            else:
                raise _Refused(404, "Not found", path)
        except _Refused as exc:
            return json_response(
                {"reply": {"err_code": str(exc.status), "err_msg": exc.msg, "err_extra": exc.extra}}, status=exc.status
            )
        return json_response({"reply": reply})

    def _authenticate(self, request: web.Request) -> None:
        scheme, key = self.keys.get(request.headers.get("x-xdr-auth-id", ""), ("", ""))
        sent = request.headers.get("Authorization", "")
        if scheme == "standard" and sent == key:
            return
        if scheme == "advanced":
            nonce = request.headers.get("x-xdr-nonce", "")
            stamp = request.headers.get("x-xdr-timestamp", "")
            fresh = stamp.isdigit() and abs(time.time() * 1000 - int(stamp)) < 300_000
            digest = hashlib.sha256(f"{key}{nonce}{stamp}".encode()).hexdigest()
            if fresh and nonce not in self._nonces and sent == digest:
                self._nonces.add(nonce)
                return
        raise _Refused(401, "Public API request unauthorized", "API key does not match")

    @staticmethod
    def _matches(incident: Incident, flt: dict[str, Any]) -> bool:
        name, op, value = flt.get("field"), flt.get("operator"), flt.get("value")
        if name == "incident_id_list" and op == "in" and isinstance(value, list):
            return incident.incident_id in value
        if name == "status" and op in ("eq", "neq"):
            return (incident.status == value) is (op == "eq")
        if name == "description" and op == "contains":
            return str(value).lower() in incident.description.lower()
        if name in ("creation_time", "modification_time") and op in ("gte", "lte"):
            stamp = getattr(incident, name)
            return bool(stamp >= value if op == "gte" else stamp <= value)
        raise _Refused(500, GENERIC_ERROR, f"unsupported filter {name} {op}")

    def _get_incidents(self, data: dict[str, Any]) -> dict[str, Any]:
        start = int(data.get("search_from", 0))
        end = int(data.get("search_to", start + 100))
        if start < 0 or end < start or end - start > 100:
            raise _Refused(500, GENERIC_ERROR, "search_to - search_from must be between 0 and 100")
        found = [i for i in self.incidents.values() if all(self._matches(i, f) for f in data.get("filters") or [])]
        sort = data.get("sort") or {}
        key = sort.get("field", "creation_time")
        found.sort(
            key=lambda i: (_SEVERITY_RANK.get(i.severity, 0) if key == "severity" else getattr(i, key), i.incident_id),
            reverse=str(sort.get("keyword", "desc")).lower() == "desc",
        )
        page = found[start:end]
        host = "https://sandbox.xpanse.invalid"
        return {"total_count": len(found), "result_count": len(page), "incidents": [i.reply(host) for i in page]}

    def _update(self, data: dict[str, Any]) -> bool:
        incident = self.incidents.get(str(data.get("incident_id")))
        if incident is None:
            raise _Refused(500, GENERIC_ERROR, f"Incident {data.get('incident_id')} was not found")
        update = data.get("update_data") or {}
        if "assigned_user_mail" in update:
            mail = update["assigned_user_mail"] or None
            if mail is not None and mail.lower() not in self.users:
                raise _Refused(500, GENERIC_ERROR, f"User {mail} does not exist in this tenant")
            incident.assigned_user_mail = mail
            incident.assigned_user_pretty_name = update.get("assigned_user_pretty_name") if mail else None
        if "manual_severity" in update:
            if update["manual_severity"] not in (None, "", "low", "medium", "high"):
                raise _Refused(500, GENERIC_ERROR, f"invalid manual_severity {update['manual_severity']}")
            incident.manual_severity = update["manual_severity"] or None
        status = str(update.get("status", incident.status))
        if "resolve_comment" in update and not status.startswith("resolved"):
            raise _Refused(500, GENERIC_ERROR, "resolve_comment can be set only for resolved incidents")
        incident.status = status
        if "resolve_comment" in update:
            incident.resolve_comment = str(update["resolve_comment"])
        comment = update.get("comment")
        if isinstance(comment, dict) and comment.get("value"):
            incident.comments.append(str(comment["value"]))
        incident.modification_time = int(time.time() * 1000)
        return True
