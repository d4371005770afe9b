"""A sandbox Datadog tenant: security findings, users and cases, in Datadog's shapes.

Implements what ``DatadogClient`` calls: ``PATCH /api/v2/security/findings/assignee``
(202 with ``meta.failures``/``meta.warnings``; unknown findings fail per item),
``PATCH /api/v2/security/findings/cases/{uuid}`` (the 200 ``FindingCaseResponse`` with
``insights``), mute/unmute and detach (``bot.sandbox.datadog_triage``), ``POST
/api/v2/security/findings/search`` and ``GET
/api/v2/security/findings`` (the ``@path:value`` / ``@path:("a" OR "b")`` query subset,
cursor paging), ``GET /api/v2/users`` (substring filter, status filter, page numbers)
and ``GET /api/v2/cases/{uuid-or-key}``. Both keys are checked (403 JSON:API error
otherwise). The rules that live only in the endpoint descriptions (100 findings per
assignment, 50 per case, the same case UUID in the path and the body) are answered 400
and noted in ``violations``.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

from aiohttp import web

from bot.sandbox.datadog_triage import detach as detach_findings
from bot.sandbox.datadog_triage import mute as mute_findings
from bot.sandbox.server import Recorded, SandboxServer, json_response

# Findings endpoints answer in the JSON:API media type.
JSONAPI = "application/vnd.api+json"
# One query term: @path:value, @path:"quoted value" or @path:(v1 OR "v2" …).
_TERM = re.compile(r'@([\w.]+):(\((?:[^()"]|"(?:[^"\\]|\\.)*")*\)|"(?:[^"\\]|\\.)*"|[^\s()"]+)')
_VALUE = re.compile(r'"((?:[^"\\]|\\.)*)"|([^\s()"]+)')
_PROJECT = "959a6f71-bac8-4027-b1d3-2264f569296f"
_TRIAGE_ROUTES = {("PATCH", "/api/v2/security/findings/mute"), ("DELETE", "/api/v2/security/findings/cases")}


class QueryError(ValueError):
    """A findings query the tenant cannot evaluate (answered 400 like Datadog would)."""


def _jsonapi_error(status: int, title: str, detail: str | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"status": str(status), "title": title}
    if detail:
        item["detail"] = detail
    return {"errors": [item]}


def _json(body: Any, *, status: int = 200, content_type: str = JSONAPI) -> web.Response:
    return json_response(body, status=status, content_type=content_type)


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", r"\1", value)


def parse_query(query: str) -> list[tuple[str, list[str]]]:
    """Parse the subset of log-search syntax the bot uses: AND-ed ``@path:value`` terms.

    Values may be bare, double-quoted (with backslash escapes) or an ``(a OR b)`` group;
    ``*`` or an empty query matches everything. Anything else raises ``QueryError``.
    """
    text = query.strip()
    if text in ("", "*"):
        return []
    terms: list[tuple[str, list[str]]] = []
    pos = 0
    while pos < len(text):
        if text[pos].isspace():
            pos += 1
            continue
        match = _TERM.match(text, pos)
        if not match:
            raise QueryError(f"cannot parse query near {text[pos : pos + 30]!r}")
        path, raw = match.group(1), match.group(2)
        if raw.startswith("("):
            values: list[str] = []
            for part in re.split(r"\s+OR\s+", raw[1:-1].strip()):
                found = _VALUE.fullmatch(part.strip())
                if not found:
                    raise QueryError(f"cannot parse value {part!r} in {raw[1:-1]!r}")
                values.append(_unescape(found.group(1)) if found.group(1) is not None else found.group(2))
        elif raw.startswith('"'):
            values = [_unescape(raw[1:-1])]
        else:
            values = [raw]
        terms.append((path, values))
        pos = match.end()
    return terms


def _lookup(doc: dict[str, Any], path: str) -> Any:
    node: Any = doc
    for part in path.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


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
    ) -> dict[str, Any]:
        """Seed a finding; the newest added sorts first in searches (by detection time)."""
        self._clock += 1000
        finding: dict[str, Any] = {
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
            attrs = (body.get("data") or {}).get("attributes") or {}
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
        """One finding as ``ListSecurityFindingsResponse.data[]`` carries it."""
        f = self.findings[finding_id]
        workflow: dict[str, Any] = {"triage": {}}
        if f["assignee_id"]:
            user = self.users.get(f["assignee_id"], {})
            workflow["triage"]["assignee"] = {"id": f["assignee_id"], "name": user.get("name") or user.get("email")}
        # The recorded searches carry workflow.mute on every finding ({"is_muted": false}).
        workflow["mute"] = dict(f.get("mute") or {"is_muted": False})
        if f["case_id"]:
            workflow["integrations"] = {"cases": {"id": f["case_id"], "key": f["case_key"]}}
        attrs = {
            "finding_id": finding_id,
            "title": f["title"],
            "severity": f["severity"],
            "status": f["status"],
            "detection_changed_at": f["detection_changed_at"],
            "workflow": workflow,
        }
        return {
            "id": finding_id,
            "type": "finding",
            "attributes": {"attributes": attrs, "tags": f["tags"], "timestamp": f["detection_changed_at"]},
        }

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
        failures: list[dict[str, Any]] = []
        warnings: list[dict[str, Any]] = []
        for ref in refs:
            finding_id = ref["id"]
            if finding_id in self.pending_failures:
                failures.append({"finding_id": finding_id, **self.pending_failures.pop(finding_id)})
                continue
            if finding_id not in self.findings:
                failures.append(
                    {"finding_id": finding_id, "status": 404, "title": "Not Found", "detail": "finding not found"}
                )
                continue
            self.findings[finding_id]["assignee_id"] = assignee_id
            if finding_id in self.pending_warnings:
                warnings.append({"finding_id": finding_id, **self.pending_warnings.pop(finding_id)})
        answer: dict[str, Any] = {
            "data": {
                "id": data.get("id") or "00000000-0000-0000-0000-000000000001",
                "type": "assignee",
                "attributes": {"assignee_id": assignee_id} if assignee_id else {},
            }
        }
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
        case = self.cases[case_ref]
        new = [r["id"] for r in refs if r["id"] in self.findings and r["id"] not in case["findings"]]
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
                return _json({"errors": ["invalid cursor"]}, status=400, content_type="application/json")
        docs = sorted((self.finding_json(f) for f in self.findings), key=lambda d: -d["attributes"]["timestamp"])
        matched = [
            d for d in docs if all(str(_lookup(d["attributes"]["attributes"], p)) in values for p, values in terms)
        ]
        meta: dict[str, Any] = {"elapsed": 12, "status": self.search_status, "page": {}}
        if offset + limit < len(matched):
            meta["page"]["after"] = base64.urlsafe_b64encode(json.dumps({"after": offset + limit}).encode()).decode()
        return _json({"data": matched[offset : offset + limit], "meta": meta})

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
