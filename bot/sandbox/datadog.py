"""A sandbox Datadog tenant: security findings, users and cases, in Datadog's shapes.

Implements what ``DatadogClient`` calls, in the shapes of Datadog's recorded traffic
(``shared/real/datadog``): ``PATCH /api/v2/security/findings/assignee`` (202 whose body
has no ``meta`` unless a test scripted ``meta.failures``/``meta.warnings``; one unknown
finding fails the whole request 404 ``finding not found``, as recorded for mute and
detach), ``PATCH /api/v2/security/findings/cases/{uuid}`` (the 200 ``FindingCaseResponse``
with ``insights``; an unknown finding is the same whole-request 404), ``POST
/api/v2/security/findings/search`` and ``GET /api/v2/security/findings`` (the
``@path:value`` / ``@path:("a" OR "b")`` query subset over the fields under
``attributes.attributes.custom``, cursor paging on ``meta.page.after``, ``links.next`` a
relative path, epoch-millisecond timestamps, ``assignee:none`` tags and no
``workflow.triage`` while unassigned), mute/unmute and detach
(``bot.sandbox.datadog_triage``), ``GET /api/v2/users`` (substring filter, status filter,
page numbers) and ``GET /api/v2/cases/{uuid-or-key}``. Both keys are checked (403 JSON:API
error otherwise). The rules that live only in the endpoint descriptions (100 findings per
assignment, 50 per case, the same case UUID in the path and the body) are answered 400
and noted in ``violations``.
"""

from __future__ import annotations

import base64
import copy
import json
import uuid
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from bot.sandbox.datadog_shapes import (
    _MISSING_DATA,
    _PROJECT,
    JSONAPI,
    QueryError,
    _custom_template,
    _json,
    _jsonapi_error,
    _lookup,
    finding_id_for,
    parse_query,
)
from bot.sandbox.datadog_triage import detach as detach_findings
from bot.sandbox.datadog_triage import mute as mute_findings
from bot.sandbox.server import Recorded, SandboxServer

__all__ = ["JSONAPI", "DatadogSandbox", "QueryError", "finding_id_for", "parse_query"]
_TRIAGE_ROUTES = {("PATCH", "/api/v2/security/findings/mute"), ("DELETE", "/api/v2/security/findings/cases")}


class DatadogSandbox(SandboxServer):
    """In-memory findings, users and cases behind Datadog's API paths."""

    name = "Datadog"

    def __init__(self, *, api_key: str, app_key: str) -> None:
        super().__init__()
        self.api_key = api_key
        self.app_key = app_key
        self.findings: dict[str, dict[str, Any]] = {}
        self.users: dict[str, dict[str, Any]] = {}
        self.cases: dict[str, dict[str, Any]] = {}
        # finding id -> AssignmentResult fields reported on the next assignment naming it
        self.pending_failures: dict[str, dict[str, Any]] = {}
        self.pending_warnings: dict[str, dict[str, Any]] = {}
        # "timeout" makes every search answer meta.status=timeout (partial results)
        self.search_status = "done"
        self._clock = 1_700_000_000_000

    # ---- seeding ------------------------------------------------------------------------

    def add_finding(
        self,
        finding_id: str,
        *,
        title: str = "Finding",
        severity: str = "high",
        status: str = "open",
        assignee_id: str | None = None,
        tags: list[str] | None = None,
        raw: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Seed a finding; the newest added sorts first in searches (by detection time).

        ``status`` is ``open`` or, as most real findings are, ``auto_closed``. ``raw`` is a
        recorded ``data[]`` item served as is but for the fields the tenant keeps.
        """
        self._clock += 1000
        finding: dict[str, Any] = {
            "raw": copy.deepcopy(raw) if raw else None,
            "title": title,
            "severity": severity,
            "status": status,
            "assignee_id": assignee_id,
            "case_id": None,
            "case_key": None,
            "detection_changed_at": self._clock,
            "tags": list(tags or []),
        }
        self.findings[finding_id] = finding
        return finding

    def add_recorded(self, doc: dict[str, Any]) -> dict[str, Any]:
        """Seed a finding from one recorded search answer item, keeping its state fields."""
        custom = doc["attributes"]["attributes"]["custom"]
        triage = (custom.get("workflow") or {}).get("triage") or {}
        finding = self.add_finding(
            doc["id"],
            title=custom.get("title") or "",
            severity=custom.get("severity") or "info",
            status=custom.get("status") or "open",
            assignee_id=(triage.get("assignee") or {}).get("id"),
            tags=[t for t in doc["attributes"].get("tags") or [] if not t.startswith(("assignee:", "assignee_id:"))],
            raw=doc,
        )
        finding["detection_changed_at"] = doc["attributes"].get("timestamp") or finding["detection_changed_at"]
        return finding

    def add_user(
        self,
        user_id: str,
        email: str,
        *,
        name: str | None = None,
        disabled: bool = False,
        service_account: bool = False,
        status: str = "Active",
    ) -> dict[str, Any]:
        """Seed a user (``status`` is Active, Pending or Disabled, as Datadog reports it)."""
        user: dict[str, Any] = {
            "email": email,
            "handle": email,
            "name": name,
            "disabled": disabled,
            "service_account": service_account,
            "status": status,
        }
        self.users[user_id] = user
        return user

    def add_case(self, case_uuid: str, key: str, *, title: str = "A case") -> dict[str, Any]:
        """Seed a case reachable by its UUID (``GetCase``/``AttachCase``) or key (``GetCase``)."""
        case: dict[str, Any] = {"key": key, "title": title, "status": "OPEN", "findings": []}
        self.cases[case_uuid] = case
        return case

    def case_by_ref(self, ref: str) -> tuple[str, dict[str, Any]] | None:
        """The (uuid, case) whose UUID or key is ``ref``, if any."""
        if ref in self.cases:
            return ref, self.cases[ref]
        for case_uuid, case in self.cases.items():
            if case["key"].lower() == ref.lower():
                return case_uuid, case
        return None

    # ---- routing ------------------------------------------------------------------------

    async def handle(self, path: str, req: Recorded) -> web.StreamResponse:
        if req.headers.get("dd-api-key") != self.api_key or req.headers.get("dd-application-key") != self.app_key:
            return _json(_jsonapi_error(403, "Forbidden", "invalid API key or application key"), status=403)
        method = req.method
        body = req.body if isinstance(req.body, dict) else {}
        try:
            if method == "PATCH" and path == "/api/v2/security/findings/assignee":
                return self._assign(req, body)
            if method == "PATCH" and path.startswith("/api/v2/security/findings/cases/"):
                return self._attach(path.rsplit("/", 1)[1], req, body)
            if (method, path) in _TRIAGE_ROUTES:
                return self._triage(path, req, body)
        except (KeyError, TypeError, AttributeError) as exc:
            return _json(_jsonapi_error(400, "Bad Request", f"malformed body: {exc}"), status=400)
        if method == "POST" and path == "/api/v2/security/findings/search":
            if not body.get("data"):
                return _json(_MISSING_DATA, status=400)
            attrs = body["data"].get("attributes") or {}
            page = attrs.get("page") or {}
            return self._search(attrs.get("filter", "*"), int(page.get("limit", 10)), page.get("cursor"))
        if method == "GET" and path == "/api/v2/security/findings":
            q = req.query
            return self._search(q.get("filter[query]", "*"), int(q.get("page[limit]", "10")), q.get("page[cursor]"))
        if method == "GET" and path == "/api/v2/users":
            return self._list_users(req.query)
        if method == "GET" and path.startswith("/api/v2/cases/"):
            return self._get_case(path.rsplit("/", 1)[1])
        return _json(_jsonapi_error(404, "Not Found", f"no route for {method} {path}"), status=404)

    def _triage(self, path: str, req: Recorded, body: dict[str, Any]) -> web.Response:
        """Mute/unmute and detach (``bot.sandbox.datadog_triage``)."""
        if path.endswith("/mute"):
            status, answer, rule = mute_findings(self.findings, body)
        else:
            status, answer, rule = detach_findings(self.findings, self.cases, body)
        if rule:
            self.violation(req, rule)
        if answer is None:
            return web.Response(status=status)
        return _json(answer, status=status)

    def _rule_breach(self, req: Recorded, rule: str) -> web.Response:
        """A request the schema allows but the endpoint description forbids."""
        self.violation(req, rule)
        return _json(_jsonapi_error(400, "Bad Request", rule), status=400)

    # ---- endpoints ----------------------------------------------------------------------

    def finding_json(self, finding_id: str) -> dict[str, Any]:
        """One finding as ``ListSecurityFindingsResponse.data[]`` carries it (recorded shape)."""
        f = self.findings[finding_id]
        doc: dict[str, Any] = copy.deepcopy(f["raw"]) if f["raw"] else {"id": finding_id, "type": "finding"}
        recorded: dict[str, Any] = (doc.get("attributes") or {}).get("attributes") or {}
        custom: dict[str, Any] = recorded.get("custom") or _custom_template(finding_id, f)
        workflow: dict[str, Any] = {**(custom.get("workflow") or {}), "mute": {"is_muted": False}}
        workflow.pop("triage", None)
        if f["status"] == "auto_closed":
            workflow.setdefault("auto_closed_at", f["detection_changed_at"])
        else:
            workflow.pop("auto_closed_at", None)
        user: dict[str, Any] = {}
        if f["assignee_id"]:
            user = self.users.get(f["assignee_id"], {})
            workflow["triage"] = {"assignee": {"id": f["assignee_id"], "name": user.get("name") or user.get("email")}}
        # The recorded searches carry workflow.mute on every finding ({"is_muted": false}).
        workflow["mute"] = dict(f.get("mute") or {"is_muted": False})
        if f["case_id"]:
            workflow["integrations"] = {"cases": {"id": f["case_id"], "key": f["case_key"]}}
        custom.update(
            title=f["title"],
            severity=f["severity"],
            status=f["status"],
            detection_changed_at=f["detection_changed_at"],
            workflow=workflow,
        )
        assignee_tags = [
            f"assignee:{(user.get('handle') or f['assignee_id']) if f['assignee_id'] else 'none'}",
            f"assignee_id:{f['assignee_id'] or 'none'}",
        ]
        doc["attributes"] = {
            "attributes": {"custom": custom},
            "tags": [*f["tags"], *assignee_tags],
            # Epoch milliseconds, equal to custom.detection_changed_at.
            "timestamp": f["detection_changed_at"],
        }
        return doc

    def _unknown_finding(self, refs: list[dict[str, Any]]) -> web.Response | None:
        """The recorded whole-request 404 when any named finding is unknown (nothing applied)."""
        if any(r["id"] not in self.findings for r in refs):
            return _json(_jsonapi_error(404, "Not Found", "finding not found"), status=404)
        return None

    def _assign(self, req: Recorded, body: dict[str, Any]) -> web.Response:
        data = body["data"]
        refs = data["relationships"]["findings"].get("data") or []
        if len(refs) > 100:
            return self._rule_breach(req, f"at most 100 findings per request, got {len(refs)}")
        if not refs:
            return _json(_jsonapi_error(400, "Bad Request", "no finding provided"), status=400)
        assignee_id = (data.get("attributes") or {}).get("assignee_id")
        if assignee_id is not None and assignee_id not in self.users:
            return _json(_jsonapi_error(404, "Not Found", "assignee not found"), status=404)
        if (unknown := self._unknown_finding(refs)) is not None:
            return unknown
        failures: list[dict[str, Any]] = []
        warnings: list[dict[str, Any]] = []
        for ref in refs:
            finding_id = ref["id"]
            if finding_id in self.pending_failures:
                failures.append({"finding_id": finding_id, **self.pending_failures.pop(finding_id)})
                continue
            self.findings[finding_id]["assignee_id"] = assignee_id
            if finding_id in self.pending_warnings:
                warnings.append({"finding_id": finding_id, **self.pending_warnings.pop(finding_id)})
        # As the recorded mute 202: a generated id, no attributes, no meta unless scripted.
        answer: dict[str, Any] = {"data": {"id": data.get("id") or str(uuid.uuid4()), "type": "assignee"}}
        meta = {k: v for k, v in (("failures", failures), ("warnings", warnings)) if v}
        if meta:
            answer["meta"] = meta
        return _json(answer, status=202)

    def _attach(self, case_ref: str, req: Recorded, body: dict[str, Any]) -> web.Response:
        data = body["data"]
        if data["id"] != case_ref:
            return self._rule_breach(req, f"path case {case_ref!r} differs from data.id {data['id']!r}")
        refs = (data.get("relationships") or {}).get("findings", {}).get("data") or []
        if not refs:
            return _json(_jsonapi_error(400, "Bad Request", "no finding provided"), status=400)
        # Only UUIDs are known to work here: a key is an unknown case.
        if case_ref not in self.cases:
            return _json(_jsonapi_error(404, "Not Found", "failed to get case: case not found"), status=404)
        if (unknown := self._unknown_finding(refs)) is not None:
            return unknown
        case = self.cases[case_ref]
        new = [r["id"] for r in refs if r["id"] not in case["findings"]]
        if len(case["findings"]) + len(new) > 50:
            return self._rule_breach(req, "at most 50 findings per case")
        for finding_id in new:
            finding = self.findings[finding_id]
            old = finding["case_id"]
            if old and old in self.cases and finding_id in self.cases[old]["findings"]:
                self.cases[old]["findings"].remove(finding_id)
            finding["case_id"], finding["case_key"] = case_ref, case["key"]
            case["findings"].append(finding_id)
        insights = [
            {"type": "SECURITY_FINDING", "ref": f"/security/findings/{fid}", "resource_id": fid}
            for fid in case["findings"]
        ]
        attrs = {
            "key": case["key"],
            "title": case["title"],
            "status": case["status"],
            "status_group": "SG_OPEN",
            "status_name": "Open",
            "type": "SECURITY",
            "creation_source": "CS_SECURITY_FINDING",
            "insights": insights,
        }
        project = {"project": {"data": {"id": _PROJECT, "type": "projects"}}}
        return _json({"data": {"id": case_ref, "type": "cases", "attributes": attrs, "relationships": project}})

    def _search(self, query: str, limit: int, cursor: str | None) -> web.Response:
        try:
            terms = parse_query(query)
        except QueryError as exc:
            # The spec's APIErrorResponse shape (an array of strings).
            return _json({"errors": [f"invalid query: {exc}"]}, status=400, content_type="application/json")
        offset = 0
        if cursor:
            try:
                offset = int(json.loads(base64.urlsafe_b64decode(cursor.encode()))["after"])
            except (ValueError, KeyError, TypeError):
                # Recorded: a bad page[cursor] is this body, with no title.
                return _json({"errors": [{"status": "400", "detail": "Invalid filters"}]}, status=400)
        # A search by id (every read before a write) builds only those findings, and any recorded
        # one (whose document names its own id), instead of every finding the tenant holds.
        wanted = next((set(values) for path, values in terms if path == "finding_id"), None)
        candidates = [f for f in self.findings if wanted is None or f in wanted or self.findings[f]["raw"]]
        docs = sorted((self.finding_json(f) for f in candidates), key=lambda d: -d["attributes"]["timestamp"])
        matched = [
            d
            for d in docs
            if all(str(_lookup(d["attributes"]["attributes"]["custom"], p)) in values for p, values in terms)
        ]
        meta: dict[str, Any] = {"elapsed": 12, "page": {}, "request_id": uuid.uuid4().hex, "status": self.search_status}
        answer: dict[str, Any] = {"data": matched[offset : offset + limit], "meta": meta}
        if offset + limit < len(matched):
            after = base64.urlsafe_b64encode(json.dumps({"after": offset + limit}).encode()).decode()
            meta["page"]["after"] = after
            # Recorded: a path relative to the GET endpoint, even after a POST search.
            params = {"filter[query]": query} if query.strip() not in ("", "*") else {}
            params |= {"page[cursor]": after, "page[limit]": str(limit), "sort": "-@detection_changed_at"}
            answer["links"] = {"next": "/api/v2/security/findings?" + urlencode(params)}
        return _json(answer)

    def _list_users(self, query: dict[str, str]) -> web.Response:
        size, number = int(query.get("page[size]", "10")), int(query.get("page[number]", "0"))
        if size > 100:
            return _json({"errors": ["page[size] must be at most 100"]}, status=400, content_type="application/json")
        text = query.get("filter", "").lower()
        statuses = {s.strip() for s in query.get("filter[status]", "").split(",") if s.strip()}
        # Substring match on the text fields, not on ids, as Datadog's filter does.
        matched = [
            (uid, u)
            for uid, u in self.users.items()
            if (not text or any(text in str(u.get(k) or "").lower() for k in ("email", "handle", "name")))
            and (not statuses or u["status"] in statuses)
        ]
        keys = ("email", "handle", "name", "status", "disabled", "service_account")
        data = [
            {"type": "users", "id": uid, "attributes": {**{k: u[k] for k in keys}, "verified": True}}
            for uid, u in matched[number * size : (number + 1) * size]
        ]
        page = {"total_filtered_count": len(matched), "total_count": len(self.users)}
        return _json({"meta": {"page": page}, "data": data}, content_type="application/json")

    def _get_case(self, ref: str) -> web.Response:
        found = self.case_by_ref(ref)
        if found is None:
            # The recorded GetCase 404 uses the {code,title} error shape.
            return _json({"errors": [{"code": "resource_not_found", "title": "case not found"}]}, status=404)
        case_uuid, case = found
        attrs = {"key": case["key"], "title": case["title"], "status": case["status"], "status_name": "Open"}
        return _json({"data": {"id": case_uuid, "type": "case", "attributes": attrs}})
