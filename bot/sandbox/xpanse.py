"""A sandbox Cortex Xpanse tenant: incidents and users behind ``public_api/v1``.

Implements what ``XpanseClient`` calls, each ``POST <path>/`` with ``{"request_data": …}``
answered ``{"reply": …}``: ``incidents/get_incidents/`` (the ``incident_id_list``,
``status``, ``description``, ``alert_sources`` and time filters, sort, ``search_from``/
``search_to`` at most 100 apart), ``incidents/update_incident/`` (assignee by a tenant
user's email, pretty name only with a mail, manual severity, status, resolve comment
only when resolving, comments), ``incidents/get_incident_extra_data/`` (the incident with
its alert counts and hosts, its alerts) and ``rbac/get_users/``. Standard and advanced keys are
verified as the docs describe (the advanced hash is recomputed, the timestamp must be
within five minutes and a nonce is accepted once); every error is the ``{"reply":
{"err_code", "err_msg", "err_extra"}}`` envelope (401, 404, 500). With ``rate_limit``
set it throttles like the tenant (per second, 429 "Too many requests.").
"""

from __future__ import annotations

import hashlib
import re
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from bot.sandbox.server import Recorded, SandboxServer, json_response

DEFAULT_HOST = "https://example.crtx.us.paloaltonetworks.com"
TIMESTAMP_SKEW_MS = 5 * 60 * 1000
_NONCE = re.compile(r"^[A-Za-z0-9]{64}$")
_SEVERITIES = ("low", "medium", "high")
_SEVERITY_RANK = {"low": 1, "medium": 2, "high": 3, "critical": 4}
GENERIC_ERROR = "An error occurred while processing XDR public API"


def envelope(status: int, msg: str, extra: str = "") -> dict[str, Any]:
    """The error body every Xpanse error status carries (``err_code`` an integer, as recorded)."""
    return {"reply": {"err_code": status, "err_msg": msg, "err_extra": extra}}


def _now_ms() -> int:
    return int(time.time() * 1000)


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
    xdr_url: str = ""
    # The incident's alerts as get_incident_extra_data lists them (add_alert).
    alerts: list[dict[str, Any]] = field(default_factory=list)

    def as_reply(self) -> dict[str, Any]:
        """The incident as get_incidents returns it (the recorded field set)."""
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
            "resolved_timestamp": self.modification_time if self.status.startswith("resolved") else None,
            "alert_count": 1,
            "incident_sources": ["ASM"],
            "tags": [],
            "original_tags": [],
            "starred": False,
            "xdr_url": self.xdr_url,
            "xpanse_risk_score": 75,
            "notes": None,
        }


class _Refused(Exception):
    """A request the tenant answers with an error envelope."""

    def __init__(self, status: int, msg: str, extra: str = "") -> None:
        super().__init__(msg)
        self.status = status
        self.msg = msg
        self.extra = extra


class XpanseSandbox(SandboxServer):
    """An in-memory Xpanse tenant (see the module docstring)."""

    name = "Xpanse"

    def __init__(self, *, keys: dict[str, tuple[str, str]], host: str = DEFAULT_HOST) -> None:
        """``keys``: key id -> (``standard`` | ``advanced``, key); ``host``: the console for ``xdr_url``."""
        super().__init__()
        self.keys = dict(keys)
        self.host = host
        self.incidents: dict[str, Incident] = {}
        self.users: dict[str, dict[str, Any]] = {}
        self.rate_limit: float | None = None
        self.seen_nonces: set[str] = set()
        # Incident ids whose update_incident answers 200 {"reply": false}.
        self.reply_false: set[str] = set()
        self.auth_failures: list[str] = []
        self.throttled = 0
        self._recent: deque[float] = deque()
        self._clock = _now_ms() - 10_000_000

    # ---- seeding -------------------------------------------------------------------------

    def add_incident(
        self,
        incident_id: str,
        *,
        description: str = "",
        severity: str = "high",
        status: str = "new",
        assigned_user_mail: str | None = None,
        assigned_user_pretty_name: str | None = None,
        manual_severity: str | None = None,
        creation_time: int | None = None,
    ) -> Incident:
        """Store an incident; each one added is newer than the one before unless told otherwise."""
        self._clock += 1000
        created = creation_time if creation_time is not None else self._clock
        incident = Incident(
            incident_id=incident_id,
            description=description or f"'Exposed service' detected by ASM on host {incident_id}",
            severity=severity,
            status=status,
            manual_severity=manual_severity,
            assigned_user_mail=assigned_user_mail,
            assigned_user_pretty_name=assigned_user_pretty_name,
            creation_time=created,
            modification_time=created,
            xdr_url=f"{self.host}/incident-view?caseId={incident_id}",
        )
        self.incidents[incident_id] = incident
        return incident

    def add_user(
        self, email: str, first: str, last: str, *, role: str = "Investigator", logged_in: bool = True
    ) -> None:
        """Add a tenant user (update_incident accepts only these emails); a user who never
        logged in has ``last_logged_in: null``, as recorded."""
        self.users[email.lower()] = {
            "user_email": email,
            "user_first_name": first,
            "user_last_name": last,
            "role_name": role,
            "last_logged_in": _now_ms() if logged_in else None,
            "user_type": "Cortex",
            "groups": [],
            "scope": [],
        }

    def add_key(self, key_id: str, key: str, *, advanced: bool) -> None:
        """Register another API key."""
        self.keys[key_id] = ("advanced" if advanced else "standard", key)

    # ---- routing ------------------------------------------------------------------------

    async def handle(self, path: str, req: Recorded) -> web.StreamResponse:
        try:
            self._throttle()
            self._authenticate(req.headers)
            body = req.body if isinstance(req.body, dict) else {}
            data = body.get("request_data") or {}
            if path.endswith("/incidents/get_incidents/"):
                reply: Any = self._get_incidents(data)
            elif path.endswith("/incidents/update_incident/"):
                reply = self._update_incident(data)
            elif path.endswith("/incidents/get_incident_extra_data/"):
                reply = self._extra_data(data)
            elif path.endswith("/rbac/get_users/"):
                reply = list(self.users.values())
            else:
                raise _Refused(404, "Not found", path)
        except (KeyError, TypeError, AttributeError) as exc:  # a malformed body (the tests check the contract)
            return json_response(envelope(500, GENERIC_ERROR, f"malformed request_data: {exc}"), status=500)
        except _Refused as exc:
            return json_response(envelope(exc.status, exc.msg, exc.extra), status=exc.status)
        return json_response({"reply": reply})

    # ---- behaviour -----------------------------------------------------------------------

    def _throttle(self) -> None:
        if not self.rate_limit:
            return
        now = time.monotonic()
        while self._recent and now - self._recent[0] >= 1.0:
            self._recent.popleft()
        if len(self._recent) >= self.rate_limit:
            self.throttled += 1
            raise _Refused(429, "Too many requests.")
        self._recent.append(now)

    def _authenticate(self, headers: dict[str, str]) -> None:
        key_id = headers.get("x-xdr-auth-id", "")
        sent = headers.get("authorization", "")
        scheme, key = self.keys.get(key_id, ("", ""))
        problem = ""
        if not scheme:
            problem = "unknown API key id"
        elif scheme == "standard":
            if sent != key:
                problem = "API key does not match"
        else:
            nonce = headers.get("x-xdr-nonce", "")
            timestamp = headers.get("x-xdr-timestamp", "")
            if not _NONCE.match(nonce):
                problem = "x-xdr-nonce must be 64 alphanumeric characters"
            elif not timestamp.isdigit() or abs(_now_ms() - int(timestamp)) > TIMESTAMP_SKEW_MS:
                problem = "x-xdr-timestamp is missing or not within 5 minutes"
            elif sent != hashlib.sha256(f"{key}{nonce}{timestamp}".encode()).hexdigest():
                problem = "API key does not match"
            elif nonce in self.seen_nonces:
                problem = "nonce was already used"
            else:
                self.seen_nonces.add(nonce)
        if problem:
            self.auth_failures.append(problem)
            raise _Refused(401, "Public API request unauthorized", problem)

    def _matches(self, incident: Incident, flt: dict[str, Any]) -> bool:
        name, op, value = flt["field"], flt["operator"], flt["value"]
        if name == "incident_id_list" and op == "in":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise _Refused(500, GENERIC_ERROR, "incident_id_list takes a list of id strings")
            return incident.incident_id in value
        if name == "status" and op in ("eq", "neq") and isinstance(value, str):
            return (incident.status == value) is (op == "eq")
        if name == "description" and op == "contains" and isinstance(value, str):
            return value.lower() in incident.description.lower()
        if name == "alert_sources" and op == "in":
            return "ASM" in (value if isinstance(value, list) else [value])
        if name in ("creation_time", "modification_time") and op in ("gte", "lte"):
            stamp = int(getattr(incident, name))
            return bool(stamp >= value if op == "gte" else stamp <= value)
        raise _Refused(500, GENERIC_ERROR, f"unsupported filter {name} {op}")

    def _get_incidents(self, data: dict[str, Any]) -> dict[str, Any]:
        start = int(data.get("search_from", 0))
        end = int(data.get("search_to", start + 100))
        if start < 0 or end < start or end - start > 100:
            raise _Refused(500, GENERIC_ERROR, "search_to - search_from must be between 0 and 100")
        filters = data.get("filters") or []
        found = [i for i in self.incidents.values() if all(self._matches(i, f) for f in filters)]
        sort = data.get("sort") or {}
        sort_field = sort.get("field", "creation_time")
        if sort_field not in ("creation_time", "modification_time", "severity"):
            raise _Refused(500, GENERIC_ERROR, f"cannot sort by {sort_field}")
        descending = str(sort.get("keyword", "desc")).lower() == "desc"

        def key(i: Incident) -> tuple[int, str]:
            rank = _SEVERITY_RANK.get(i.severity, 0) if sort_field == "severity" else getattr(i, sort_field)
            return rank, i.incident_id

        found.sort(key=key, reverse=descending)
        page = found[start:end]
        return {
            "total_count": len(found),
            "result_count": len(page),
            "incidents": [i.as_reply() for i in page],
        }

    def _update_incident(self, data: dict[str, Any]) -> bool:
        incident_id = data["incident_id"]
        update = data["update_data"]
        incident = self.incidents.get(incident_id)
        if incident is None:
            raise _Refused(500, GENERIC_ERROR, f"Incident {incident_id} was not found")
        if incident_id in self.reply_false:
            return False
        changes: dict[str, Any] = {}
        if "assigned_user_mail" in update:
            mail = update["assigned_user_mail"] or None
            if mail is not None and mail.lower() not in self.users:
                raise _Refused(500, GENERIC_ERROR, f"User {mail} does not exist in this tenant")
            # A never-assigned incident reads null; a cleared one "" (as XDR's incident detail).
            changes["assigned_user_mail"] = mail or ""
            changes["assigned_user_pretty_name"] = update.get("assigned_user_pretty_name") if mail else None
        elif "assigned_user_pretty_name" in update:
            raise _Refused(500, GENERIC_ERROR, "assigned_user_pretty_name requires assigned_user_mail")
        if "manual_severity" in update:
            severity = update["manual_severity"] or None
            if severity is not None and severity not in _SEVERITIES:
                raise _Refused(500, GENERIC_ERROR, f"invalid manual_severity {severity}")
            changes["manual_severity"] = severity
        status = update.get("status", incident.status)
        if "status" in update:
            changes["status"] = status
        if "resolve_comment" in update:
            if not status.startswith("resolved"):
                raise _Refused(500, GENERIC_ERROR, "resolve_comment can be set only for resolved incidents")
            changes["resolve_comment"] = update["resolve_comment"]
        comment = update.get("comment")
        for name, value in changes.items():
            setattr(incident, name, value)
        if comment:
            incident.comments.append(comment["value"])
        incident.modification_time = _now_ms()
        return True

    # ---- incident details (get_incident_extra_data, NOTES §6.5) ---------------------------

    def add_alert(
        self, incident_id: str, *, domain: str | None = None, ip: str | None = None, severity: str = "medium"
    ) -> dict[str, Any]:
        """Add an ASM alert to an incident (comma-joined asset fields, as the fixture has them)."""
        incident = self.incidents[incident_id]
        alert_id = str(113_700 + sum(len(i.alerts) for i in self.incidents.values()))
        alert: dict[str, Any] = {
            "alert_id": alert_id,
            "case_id": int(incident_id),
            "incident_id": incident_id,
            "name": f"Exposed service on {domain or ip or 'an asset'}",
            "severity": severity,
            "source": "ASM",
            "resolution_status": "STATUS_010_NEW",
            "domain_names": domain,
            "ipv4_addresses": ip,
            "asset_ids": None,
            "tags": "AR:Registered to You",
        }
        incident.alerts.append(alert)
        return alert

    def _extra_data(self, data: dict[str, Any]) -> dict[str, Any]:
        incident_id = data["incident_id"]
        incident = self.incidents.get(str(incident_id))
        if incident is None:
            raise _Refused(500, GENERIC_ERROR, f"Incident {incident_id} was not found")
        limit = int(data.get("alerts_limit", 1000))
        counts = Counter(str(a.get("severity")) for a in incident.alerts)
        hosts = [f"{a.get('ipv4_addresses') or a.get('domain_names')}:null" for a in incident.alerts]
        detail = {
            **incident.as_reply(),
            "alert_count": len(incident.alerts),
            "low_severity_alert_count": counts["low"],
            "med_severity_alert_count": counts["medium"],
            "high_severity_alert_count": counts["high"],
            "critical_severity_alert_count": counts["critical"],
            "host_count": len(set(hosts)),
            "hosts": sorted(set(hosts)),
        }
        empty: dict[str, Any] = {"total_count": 0, "data": []}
        return {
            "incident": detail,
            "alerts": {"total_count": len(incident.alerts), "data": incident.alerts[:limit]},
            "network_artifacts": dict(empty),
            "file_artifacts": dict(empty),
        }
