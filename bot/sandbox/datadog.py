"""A sandbox Datadog tenant: security findings, users and cases, in Datadog's shapes.

Implements what ``DatadogClient`` calls: ``PATCH /api/v2/security/findings/assignee``
(202 with ``meta.failures`` for unknown findings), ``PATCH
/api/v2/security/findings/cases/{uuid}`` (the case with its ``insights``), ``POST
/api/v2/security/findings/search`` and ``GET /api/v2/security/findings`` (the
``@path:value`` / ``@path:("a" OR "b")`` query subset, cursor paging), ``GET
/api/v2/users`` (substring filter, status filter, page numbers) and ``GET
/api/v2/cases/{uuid-or-key}``. Both keys are checked (403 JSON:API error otherwise).
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

from aiohttp import web

from bot.sandbox.server import SandboxServer, json_response

JSONAPI = "application/vnd.api+json"
_TERM = re.compile(r'@([\w.]+):(\((?:[^()"]|"(?:[^"\\]|\\.)*")*\)|"(?:[^"\\]|\\.)*"|[^\s()"]+)')
_VALUE = re.compile(r'"((?:[^"\\]|\\.)*)"|([^\s()"]+)')


def _error(status: int, title: str, detail: str) -> web.Response:
    return json_response(
        {"errors": [{"status": str(status), "title": title, "detail": detail}]}, status=status, content_type=JSONAPI
    )


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", r"\1", value)


def parse_query(query: str) -> list[tuple[str, list[str]]]:
    """AND-ed ``@path:value`` terms (bare, quoted or an OR group); ``ValueError`` otherwise."""
    text = query.strip()
    terms: list[tuple[str, list[str]]] = []
    pos = 0
    while text not in ("", "*") and pos < len(text):
        if text[pos].isspace():
            pos += 1
            continue
        match = _TERM.match(text, pos)
        if not match:
            raise ValueError(f"cannot parse query near {text[pos : pos + 30]!r}")
        path, raw = match.group(1), match.group(2)
        parts = re.split(r"\s+OR\s+", raw[1:-1].strip()) if raw.startswith("(") else [raw]
        values = []
        for part in parts:
            found = _VALUE.fullmatch(part.strip())
            if not found:
                raise ValueError(f"cannot parse value {part!r}")
            values.append(_unescape(found.group(1)) if found.group(1) is not None else found.group(2))
        terms.append((path, values))
        pos = match.end()
    return terms


def _lookup(doc: dict[str, Any], path: str) -> Any:
    node: Any = doc
    for part in path.split("."):
        node = node.get(part) if isinstance(node, dict) else None
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
        self._clock = 1_700_000_000_000

    # ---- seeding ----------------------------------------------------------------------

    def add_finding(
        self,
        finding_id: str,
        *,
        title: str,
        severity: str = "high",
        status: str = "open",
        assignee_id: str | None = None,
    ) -> None:
        """Seed a finding; the newest added sorts first."""
        self._clock += 1000
        self.findings[finding_id] = {
            "title": title,
            "severity": severity,
            "status": status,
            "assignee_id": assignee_id,
            "case_id": None,
            "case_key": None,
            "detection_changed_at": self._clock,
        }

    def add_user(self, user_id: str, email: str, name: str) -> None:
        """Seed an active user."""
        self.users[user_id] = {
            "email": email,
            "handle": email,
            "name": name,
            "status": "Active",
            "disabled": False,
            "service_account": False,
        }

    def add_case(self, case_uuid: str, key: str, title: str) -> None:
        """Seed an open case, reachable by UUID or key."""
        self.cases[case_uuid] = {"key": key, "title": title, "findings": []}

    # ---- routing ----------------------------------------------------------------------

    async def handle(self, request: web.Request, body: Any) -> web.StreamResponse:
        if (
            request.headers.get("DD-API-KEY") != self.api_key
            or request.headers.get("DD-APPLICATION-KEY") != self.app_key
        ):
            return _error(403, "Forbidden", "invalid API key or application key")
        method, path, query = request.method, request.path, request.query
        body = body if isinstance(body, dict) else {}
        if method == "PATCH" and path == "/api/v2/security/findings/assignee":
            return self._assign(body)
        if method == "PATCH" and path.startswith("/api/v2/security/findings/cases/"):
            return self._attach(path.rsplit("/", 1)[1], body)
        if method == "POST" and path == "/api/v2/security/findings/search":
            attrs = (body.get("data") or {}).get("attributes") or {}
            page = attrs.get("page") or {}
            return self._search(attrs.get("filter", "*"), int(page.get("limit", 10)), page.get("cursor"))
        if method == "GET" and path == "/api/v2/security/findings":
            return self._search(
                query.get("filter[query]", "*"), int(query.get("page[limit]", "10")), query.get("page[cursor]")
            )
        if method == "GET" and path == "/api/v2/users":
            return self._users(dict(query))
        if method == "GET" and path.startswith("/api/v2/cases/"):
            return self._get_case(path.rsplit("/", 1)[1])
        return _error(404, "Not Found", f"no route for {method} {path}")

    # ---- endpoints --------------------------------------------------------------------

    def finding_json(self, finding_id: str) -> dict[str, Any]:
        f = self.findings[finding_id]
        workflow: dict[str, Any] = {"triage": {}}
        if f["assignee_id"]:
            user = self.users.get(f["assignee_id"], {})
            workflow["triage"]["assignee"] = {"id": f["assignee_id"], "name": user.get("name")}
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
            "attributes": {"attributes": attrs, "tags": [], "timestamp": f["detection_changed_at"]},
        }

    def _assign(self, body: dict[str, Any]) -> web.Response:
        data = body.get("data") or {}
        refs = ((data.get("relationships") or {}).get("findings") or {}).get("data") or []
        if not refs or len(refs) > 100:
            return _error(400, "Bad Request", "between 1 and 100 findings per request")
        assignee = (data.get("attributes") or {}).get("assignee_id")
        if assignee is not None and assignee not in self.users:
            return _error(404, "Not Found", "assignee not found")
        failures = []
        for ref in refs:
            finding = self.findings.get(ref.get("id"))
            if finding is None:
                failures.append(
                    {"finding_id": ref.get("id"), "status": 404, "title": "Not Found", "detail": "finding not found"}
                )
            else:
                finding["assignee_id"] = assignee
        answer: dict[str, Any] = {
            "data": {
                "id": "00000000-0000-0000-0000-000000000001",
                "type": "assignee",
                "attributes": {"assignee_id": assignee} if assignee else {},
            }
        }
        if failures:
            answer["meta"] = {"failures": failures}
        return json_response(answer, status=202, content_type=JSONAPI)

    def _attach(self, case_uuid: str, body: dict[str, Any]) -> web.Response:
        data = body.get("data") or {}
        if data.get("id") != case_uuid:
            return _error(400, "Bad Request", "the case id in the path and the body differ")
        case = self.cases.get(case_uuid)
        if case is None:
            return _error(404, "Not Found", "failed to get case: case not found")
        refs = ((data.get("relationships") or {}).get("findings") or {}).get("data") or []
        for ref in refs:
            finding_id = ref.get("id")
            finding = self.findings.get(finding_id)
            if finding is None or finding_id in case["findings"]:
                continue
            old = self.cases.get(finding["case_id"] or "")
            if old is not None and finding_id in old["findings"]:
                old["findings"].remove(finding_id)
            finding["case_id"], finding["case_key"] = case_uuid, case["key"]
            case["findings"].append(finding_id)
        insights = [
            {"type": "SECURITY_FINDING", "ref": f"/security/findings/{f}", "resource_id": f} for f in case["findings"]
        ]
        attrs = {
            "key": case["key"],
            "title": case["title"],
            "status": "OPEN",
            "status_name": "Open",
            "type": "SECURITY",
            "insights": insights,
        }
        return json_response({"data": {"id": case_uuid, "type": "cases", "attributes": attrs}}, content_type=JSONAPI)

    def _search(self, query: str, limit: int, cursor: str | None) -> web.Response:
        try:
            terms = parse_query(query)
            offset = int(json.loads(base64.urlsafe_b64decode(cursor.encode()))["after"]) if cursor else 0
        except (ValueError, KeyError, TypeError) as exc:
            return json_response({"errors": [f"invalid query or cursor: {exc}"]}, status=400)
        docs = sorted((self.finding_json(f) for f in self.findings), key=lambda d: -d["attributes"]["timestamp"])
        matched = [
            d for d in docs if all(str(_lookup(d["attributes"]["attributes"], p)) in values for p, values in terms)
        ]
        meta: dict[str, Any] = {"elapsed": 1, "status": "done", "page": {}}
        if offset + limit < len(matched):
            meta["page"]["after"] = base64.urlsafe_b64encode(json.dumps({"after": offset + limit}).encode()).decode()
        return json_response({"data": matched[offset : offset + limit], "meta": meta}, content_type=JSONAPI)

    def _users(self, query: dict[str, str]) -> web.Response:
        size, number = int(query.get("page[size]", "10")), int(query.get("page[number]", "0"))
        text = query.get("filter", "").lower()
        statuses = {s for s in query.get("filter[status]", "").split(",") if s}
        matched = [
            (uid, u)
            for uid, u in self.users.items()
            if (not text or any(text in str(u[k]).lower() for k in ("email", "handle", "name")))
            and (not statuses or u["status"] in statuses)
        ]
        data = [
            {"type": "users", "id": uid, "attributes": {**u, "verified": True}}
            for uid, u in matched[number * size : (number + 1) * size]
        ]
        return json_response(
            {"data": data, "meta": {"page": {"total_filtered_count": len(matched), "total_count": len(self.users)}}}
        )

    def _get_case(self, ref: str) -> web.Response:
        for case_uuid, case in self.cases.items():
            if ref == case_uuid or ref.lower() == case["key"].lower():
                attrs = {"key": case["key"], "title": case["title"], "status": "OPEN", "status_name": "Open"}
                return json_response(
                    {"data": {"id": case_uuid, "type": "case", "attributes": attrs}}, content_type=JSONAPI
                )
        return json_response(
            {"errors": [{"code": "resource_not_found", "title": "case not found"}]}, status=404, content_type=JSONAPI
        )
