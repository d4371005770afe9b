"""A sandbox Kibana (Security detection alerts, per space) and Elasticsearch (user profiles).

``KibanaSandbox`` answers what ``KibanaClient`` calls, under ``/s/<space>`` or at the root
for the ``default`` space: ``signals/search`` (the query DSL subset the client sends:
``ids``, ``term``, ``terms``, ``range``, ``bool``, ``match_all``; ``sort``, ``size``,
``_source``), ``signals/assignees`` and ``signals/status`` (update-by-query answers with
``total``/``updated``/``noops``; ids the space does not hold match nothing). It wants
``Authorization: ApiKey <key>`` (401 otherwise) and ``kbn-xsrf`` on every POST (400).
``ElasticsearchSandbox`` answers ``/_security/profile/_suggest`` and ``/_security/profile/<uid>``.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from bot.sandbox.server import SandboxServer, json_response

_SPACE_PATH = re.compile(r"^/s/([^/]+)(/.*)$")


def _error(status: int, error: str, message: str) -> web.Response:
    return json_response({"statusCode": status, "error": error, "message": message}, status=status)


def _values(source: dict[str, Any], field: str) -> list[Any]:
    value = source.get("kibana.alert.uuid" if field == "_id" else field)
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _only(clause: Any) -> tuple[str, Any]:
    if not isinstance(clause, dict) or len(clause) != 1:
        raise ValueError(f"expected exactly one field in {clause!r}")
    return next(iter(clause.items()))


def matches(query: Any, source: dict[str, Any]) -> bool:
    """Evaluate the supported query DSL subset; ``ValueError`` for anything else."""
    if query is None:
        return True
    kind, spec = _only(query)
    if kind == "match_all":
        return True
    if kind == "ids":
        return source.get("kibana.alert.uuid") in set(spec.get("values") or [])
    if kind in ("term", "terms"):
        field, wanted = _only(spec)
        if isinstance(wanted, dict):
            wanted = wanted.get("value")
        wanted = wanted if isinstance(wanted, list) else [wanted]
        return any(v in wanted for v in _values(source, field))
    if kind == "range":
        field, bounds = _only(spec)
        ops = {
            "gt": lambda a, b: a > b,
            "gte": lambda a, b: a >= b,
            "lt": lambda a, b: a < b,
            "lte": lambda a, b: a <= b,
        }
        return any(all(ops[o](v, b) for o, b in bounds.items() if o in ops) for v in _values(source, field))
    if kind == "bool":

        def group(key: str) -> list[Any]:
            raw = spec.get(key) or []
            return raw if isinstance(raw, list) else [raw]

        if not all(matches(c, source) for c in group("filter") + group("must")):
            return False
        if any(matches(c, source) for c in group("must_not")):
            return False
        should = group("should")
        needed = spec.get("minimum_should_match", 0 if group("filter") + group("must") else 1)
        return not should or sum(matches(c, source) for c in should) >= int(needed)
    raise ValueError(f"query type {kind!r} is not supported by the sandbox")


class KibanaSandbox(SandboxServer):
    """Per-space in-memory alert indices behind Kibana's detection-engine routes."""

    name = "Kibana"

    def __init__(self, *, api_key: str) -> None:
        super().__init__()
        self.api_key = api_key
        self.alerts: dict[str, dict[str, dict[str, Any]]] = {}
        self._clock = 0

    def add_alert(
        self,
        alert_id: str,
        *,
        space: str = "default",
        rule_name: str,
        severity: str = "medium",
        status: str = "open",
        assignees: list[str] | None = None,
        host: str = "host-1",
    ) -> None:
        """Seed one alert in ``space``."""
        self._clock += 1
        self.alerts.setdefault(space, {})[alert_id] = {
            "@timestamp": f"2025-01-17T08:{self._clock // 60:02d}:{self._clock % 60:02d}.000Z",
            "kibana.alert.uuid": alert_id,
            "kibana.alert.rule.name": rule_name,
            "kibana.alert.severity": severity,
            "kibana.alert.workflow_status": status,
            "kibana.alert.workflow_assignee_ids": list(assignees or []),
            "kibana.space_ids": [space],
            "host.name": host,
        }

    async def handle(self, request: web.Request, body: Any) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"ApiKey {self.api_key}":
            return _error(
                401,
                "Unauthorized",
                "[security_exception] unable to authenticate with provided "
                "credentials and anonymous access is not allowed for this request",
            )
        if request.method != "GET" and not request.headers.get("kbn-xsrf"):
            return _error(400, "Bad Request", "Request must contain a kbn-xsrf header.")
        found = _SPACE_PATH.match(request.path)
        space, path = (found.group(1), found.group(2)) if found else ("default", request.path)
        index = self.alerts.get(space, {})
        body = body if isinstance(body, dict) else {}
        try:
            if path == "/api/detection_engine/signals/search":
                return self._search(space, index, body)
            if path == "/api/detection_engine/signals/assignees":
                add, remove = list(body["assignees"]["add"]), list(body["assignees"]["remove"])
                if set(add) & set(remove):
                    return json_response(
                        {
                            "message": ["Duplicate assignees were found in the add and remove parameters."],
                            "status_code": 400,
                        },
                        status=400,
                    )

                def reassign(source: dict[str, Any]) -> bool:
                    kept = [u for u in source["kibana.alert.workflow_assignee_ids"] if u not in remove]
                    source["kibana.alert.workflow_assignee_ids"] = kept + [u for u in add if u not in kept]
                    return True

                return self._update(index, list(body["ids"]), reassign)
            if path == "/api/detection_engine/signals/status":
                status = body["status"]

                def set_status(source: dict[str, Any]) -> bool:
                    if source["kibana.alert.workflow_status"] == status:
                        return False
                    source["kibana.alert.workflow_status"] = status
                    if body.get("reason"):
                        source["kibana.alert.workflow_reason"] = body["reason"]
                    return True

                return self._update(index, list(body["signal_ids"]), set_status)
        except (KeyError, TypeError, ValueError) as exc:
            return json_response({"message": f"[request body] {exc}", "status_code": 400}, status=400)
        return _error(404, "Not Found", "Not Found")

    def _search(self, space: str, index: dict[str, dict[str, Any]], body: dict[str, Any]) -> web.Response:
        hits = [(i, s) for i, s in index.items() if matches(body.get("query"), s)]
        sort = body.get("sort") or []
        for item in reversed(sort if isinstance(sort, list) else [sort]):
            field, order = (item, "asc") if isinstance(item, str) else _only(item)
            order = order.get("order", "asc") if isinstance(order, dict) else order
            hits.sort(key=lambda h, f=field: str((_values(h[1], f) or [""])[0]), reverse=order == "desc")
        wanted = body.get("_source")
        fields = [wanted] if isinstance(wanted, str) else wanted if isinstance(wanted, list) else None
        docs = [
            {
                "_index": f".internal.alerts-security.alerts-{space}-000001",
                "_id": i,
                "_score": None,
                "_source": {k: v for k, v in s.items() if fields is None or k in fields},
            }
            for i, s in hits[: int(body.get("size", 10))]
        ]
        return json_response(
            {"took": 1, "timed_out": False, "hits": {"total": {"value": len(hits), "relation": "eq"}, "hits": docs}}
        )

    @staticmethod
    def _update(index: dict[str, dict[str, Any]], ids: list[str], change: Any) -> web.Response:
        held = [index[i] for i in dict.fromkeys(ids) if i in index]
        updated = sum(1 for source in held if change(source))
        return json_response(
            {
                "took": 1,
                "timed_out": False,
                "total": len(held),
                "updated": updated,
                "deleted": 0,
                "batches": 1 if held else 0,
                "version_conflicts": 0,
                "noops": len(held) - updated,
                "failures": [],
            }
        )


class ElasticsearchSandbox(SandboxServer):
    """Elasticsearch user profiles, for the Kibana email look-up."""

    name = "Elasticsearch"

    def __init__(self, *, api_key: str) -> None:
        super().__init__()
        self.api_key = api_key
        self.profiles: dict[str, dict[str, Any]] = {}

    def add_profile(self, uid: str, *, email: str | None, username: str, full_name: str) -> None:
        """Seed an enabled profile (``email`` None: a profile the e-mail look-up cannot find)."""
        self.profiles[uid] = {
            "uid": uid,
            "enabled": True,
            "labels": {},
            "data": {},
            "user": {
                "username": username,
                "email": email,
                "full_name": full_name,
                "roles": ["analyst"],
                "realm_name": "native",
            },
        }

    async def handle(self, request: web.Request, body: Any) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"ApiKey {self.api_key}":
            reason = "unable to authenticate with provided credentials"
            return json_response({"error": {"type": "security_exception", "reason": reason}, "status": 401}, status=401)
        if request.path == "/_security/profile/_suggest":
            name = str((body or {}).get("name") or "").lower()
            found = [
                p
                for p in self.profiles.values()
                if name and name in " ".join(str(v or "") for v in p["user"].values()).lower()
            ]
            return json_response(
                {
                    "total": {"value": len(found), "relation": "eq"},
                    "profiles": found[: int((body or {}).get("size", 10))],
                }
            )
        if request.path.startswith("/_security/profile/"):
            profile = self.profiles.get(request.path.rsplit("/", 1)[1])
            return json_response({"profiles": [profile] if profile else []})
        return json_response({"error": "no handler found"}, status=400)
