"""Fake Kibana (Security detection alerts) and Elasticsearch (user profiles) servers.

``KibanaFake`` is a ``ContractServer`` checked against ``shared/contracts/kibana.yaml``
that behaves as the NOTES and the ``x-server-behaviour`` section describe: per-space
alert indices, ``kbn-xsrf`` required on every POST (Kibana's own 400 message),
``ApiKey`` authentication (401 otherwise), update-by-query answers (``total``,
``updated``, ``noops``, ``version_conflicts``, ``failures``), ids from another space
matching nothing, removals applied before additions, and the SIEM-style 400 with an
array message for a uid in both ``add`` and ``remove``. Its search understands the
query DSL subset the client uses (``ids``, ``term``/``terms``, ``bool.filter``/``must``/
``should``/``must_not``, ``range``, ``match_all``), ``sort``, ``size`` and ``_source``; a
query it does not understand is recorded as a violation so tests cannot pass on a
silently wrong answer.

``ElasticsearchFake`` is a plain aiohttp server (Elasticsearch is not in the OpenAPI
paths) that hand-checks method, path, ``ApiKey`` and body keys against the
``x-elasticsearch`` section of the contract and records violations the same way.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from pydantic import SecretStr

from bot.platforms.kibana import KibanaClient
from bot.settings import HttpPolicy, KibanaConfig
from tests.fakes.contract import ContractServer, Fault, Recorded

KIBANA_API_KEY = "a2liYW5hLWtleS1pZDpraWJhbmEtc2VjcmV0"
ES_API_KEY = "ZXMta2V5LWlkOmVzLXNlY3JldA=="
CONTRACT_HOST = "https://localhost:5601"
_SPACE_PATH = re.compile(r"^/s/([^/]+)(/.*)$")


class UnsupportedQuery(Exception):
    """The client sent query DSL this fake does not implement."""


def _values(source: dict[str, Any], field: str) -> list[Any]:
    if field == "_id":
        field = "kibana.alert.uuid"
    value = source.get(field)
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _one_field(clause: Any, kind: str) -> tuple[str, Any]:
    if not isinstance(clause, dict) or len(clause) != 1:
        raise UnsupportedQuery(f"{kind} needs exactly one field, got {clause!r}")
    return next(iter(clause.items()))


def matches(query: Any, source: dict[str, Any]) -> bool:
    """Evaluate the supported query DSL subset against one alert ``_source``."""
    if query is None:
        return True
    if not isinstance(query, dict) or len(query) != 1:
        raise UnsupportedQuery(f"a query must have exactly one clause, got {query!r}")
    kind, spec = next(iter(query.items()))
    if kind == "match_all":
        return True
    if kind == "ids":
        return source.get("kibana.alert.uuid") in set(spec.get("values") or [])
    if kind == "term":
        field, value = _one_field(spec, "term")
        if isinstance(value, dict):
            value = value.get("value")
        return value in _values(source, field)
    if kind == "terms":
        field, wanted = _one_field(spec, "terms")
        if not isinstance(wanted, list):
            raise UnsupportedQuery(f"terms needs a list, got {wanted!r}")
        return any(v in wanted for v in _values(source, field))
    if kind == "range":
        field, bounds = _one_field(spec, "range")
        ops = {
            "gt": lambda a, b: a > b,
            "gte": lambda a, b: a >= b,
            "lt": lambda a, b: a < b,
            "lte": lambda a, b: a <= b,
        }
        unknown = set(bounds) - set(ops) - {"format"}
        if unknown:
            raise UnsupportedQuery(f"range options {sorted(unknown)} not supported")
        return any(all(ops[op](v, bound) for op, bound in bounds.items() if op in ops) for v in _values(source, field))
    if kind == "bool":
        unknown = set(spec) - {"filter", "must", "should", "must_not", "minimum_should_match"}
        if unknown:
            raise UnsupportedQuery(f"bool options {sorted(unknown)} not supported")

        def clauses(key: str) -> list[Any]:
            raw = spec.get(key) or []
            return raw if isinstance(raw, list) else [raw]

        if not all(matches(c, source) for c in clauses("filter") + clauses("must")):
            return False
        if any(matches(c, source) for c in clauses("must_not")):
            return False
        should = clauses("should")
        if should:
            needed = spec.get("minimum_should_match", 1 if not (clauses("filter") or clauses("must")) else 0)
            return sum(matches(c, source) for c in should) >= int(needed)
        return True
    raise UnsupportedQuery(f"query type {kind!r} is not implemented by the fake")


def _sort_keys(sort: Any) -> list[tuple[str, bool]]:
    """[(field, descending)] from "f", {"f": "desc"}, {"f": {"order": …}} or a list of those."""
    items = sort if isinstance(sort, list) else [sort] if sort else []
    keys: list[tuple[str, bool]] = []
    for item in items:
        if isinstance(item, str):
            keys.append((item, False))
            continue
        field, order = _one_field(item, "sort")
        if isinstance(order, dict):
            order = order.get("order", "asc")
        keys.append((field, str(order).lower() == "desc"))
    return keys


def _filter_source(source: dict[str, Any], wanted: Any) -> dict[str, Any]:
    if wanted is None or wanted is True or wanted == "*":
        return dict(source)
    if wanted is False:
        return {}
    fields = [wanted] if isinstance(wanted, str) else list(wanted)
    return {k: v for k, v in source.items() if any(k == f or k.startswith(f + ".") for f in fields)}


def _error(status: int, error: str, message: str) -> web.Response:
    return web.json_response({"statusCode": status, "error": error, "message": message}, status=status)


class KibanaFake(ContractServer):
    """Kibana's detection-alert routes over per-space in-memory alert indices."""

    contract = "kibana"

    def __init__(self, *, api_key: str = KIBANA_API_KEY) -> None:
        super().__init__()
        self.api_key = api_key
        # space -> alert id -> flat _source (dotted keys, as the alerts index stores them)
        self.alerts: dict[str, dict[str, dict[str, Any]]] = {}
        # ids whose next update meets a version conflict (counted, not updated, listed in failures)
        self.conflict_ids: set[str] = set()
        self._clock = 0

    # ---- seeding and reading --------------------------------------------------------

    def add_alert(
        self,
        alert_id: str,
        *,
        space: str = "default",
        rule_name: str = "Suspicious process",
        severity: str = "medium",
        status: str = "open",
        assignees: tuple[str, ...] | list[str] = (),
    ) -> dict[str, Any]:
        """Seed one alert in ``space``; returns its ``_source`` (live: edits show up)."""
        self._clock += 1
        source: dict[str, Any] = {
            "@timestamp": f"2025-01-17T08:{self._clock // 60:02d}:{self._clock % 60:02d}.000Z",
            "kibana.alert.uuid": alert_id,
            "kibana.alert.rule.name": rule_name,
            "kibana.alert.severity": severity,
            "kibana.alert.workflow_status": status,
            "kibana.alert.workflow_assignee_ids": list(assignees),
            "kibana.space_ids": [space],
            "host.name": "host-1",
        }
        self.alerts.setdefault(space, {})[alert_id] = source
        return source

    def assignees(self, alert_id: str, space: str = "default") -> list[str]:
        return list(self.alerts[space][alert_id]["kibana.alert.workflow_assignee_ids"])

    def status(self, alert_id: str, space: str = "default") -> str:
        return str(self.alerts[space][alert_id]["kibana.alert.workflow_status"])

    def writes(self) -> list[Recorded]:
        """The assignee and status requests received (the writes)."""
        return [r for r in self.requests if r.path.endswith(("/signals/assignees", "/signals/status"))]

    # ---- ContractServer hooks -------------------------------------------------------

    def contract_location(self, path: str) -> tuple[str, str]:
        found = _SPACE_PATH.match(path)
        if found:
            return f"{CONTRACT_HOST}/s/{found.group(1)}", found.group(2)
        return CONTRACT_HOST, path

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        # Kibana authenticates first, then its XSRF post-auth handler refuses a non-GET
        # without kbn-xsrf with its own message, before any route (or schema) is reached.
        if request.headers.get("Authorization") != f"ApiKey {self.api_key}":
            self._record(request, await request.read())
            return _error(
                401,
                "Unauthorized",
                "[security_exception\n\tRoot causes:\n\t\tsecurity_exception: "
                "unable to authenticate with "
                "provided credentials and anonymous access is not allowed for this request]",
            )
        if request.method not in ("GET", "HEAD") and not (
            request.headers.get("kbn-xsrf") or request.headers.get("kbn-version")
        ):
            self._record(request, await request.read())
            self.violations.append(f"{request.method} {request.path}: missing kbn-xsrf header")
            return _error(400, "Bad Request", "Request must contain a kbn-xsrf header.")
        return await super()._dispatch(request)

    def _record(self, request: web.Request, raw: bytes) -> None:
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        self.requests.append(
            Recorded(
                method=request.method,
                path=request.path,
                query=dict(request.query),
                headers={k.lower(): v for k, v in request.headers.items()},
                body=body,
            )
        )

    async def handle(self, path: str, req: Recorded) -> web.StreamResponse:
        found = _SPACE_PATH.match(req.path)
        space = found.group(1) if found else "default"
        index = self.alerts.get(space, {})
        body = req.body if isinstance(req.body, dict) else {}
        if path == "/api/detection_engine/signals/search":
            return self._search(space, index, body)
        if path == "/api/detection_engine/signals/assignees":
            return self._assignees(space, index, body)
        if path == "/api/detection_engine/signals/status":
            return self._status(space, index, body)
        return _error(404, "Not Found", "Not Found")

    # ---- routes ---------------------------------------------------------------------

    def _unsupported(self, req_path: str, exc: UnsupportedQuery) -> web.Response:
        self.violations.append(f"POST {req_path}: {exc}")
        return web.json_response({"message": f"[parsing_exception] {exc}", "status_code": 400}, status=400)

    def _search(self, space: str, index: dict[str, dict[str, Any]], body: dict[str, Any]) -> web.Response:
        try:
            hits = [(i, s) for i, s in index.items() if matches(body.get("query"), s)]
            for field, desc in reversed(_sort_keys(body.get("sort"))):
                hits.sort(key=lambda h, f=field: (_values(h[1], f) or [""])[0], reverse=desc)
        except UnsupportedQuery as exc:
            return self._unsupported("signals/search", exc)
        size = body.get("size", 10)
        index_name = f".internal.alerts-security.alerts-{space}-000001"
        return web.json_response(
            {
                "took": 1,
                "timed_out": False,
                "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
                "hits": {
                    "total": {"value": len(hits), "relation": "eq"},
                    "max_score": None,
                    "hits": [
                        {
                            "_index": index_name,
                            "_id": alert_id,
                            "_score": None,
                            "_source": _filter_source(source, body.get("_source")),
                        }
                        for alert_id, source in hits[:size]
                    ],
                },
            }
        )

    def _update_by_query(
        self, space: str, index: dict[str, dict[str, Any]], ids: list[str], change: Any
    ) -> web.Response:
        """Apply ``change(source) -> changed?`` to each id the space holds, answering like ES."""
        updated = noops = conflicts = 0
        failures: list[dict[str, Any]] = []
        total = 0
        for alert_id in dict.fromkeys(ids):
            source = index.get(alert_id)
            if source is None:
                continue
            total += 1
            if alert_id in self.conflict_ids:
                self.conflict_ids.discard(alert_id)
                conflicts += 1
                failures.append(
                    {
                        "index": f".internal.alerts-security.alerts-{space}-000001",
                        "id": alert_id,
                        "cause": {
                            "type": "version_conflict_engine_exception",
                            "reason": f"[{alert_id}]: version conflict, required seqNo [4], primary term [1]",
                        },
                        "status": 409,
                    }
                )
                continue
            if change(source):
                updated += 1
            else:
                noops += 1
        return web.json_response(
            {
                "took": 3,
                "timed_out": False,
                "total": total,
                "updated": updated,
                "deleted": 0,
                "batches": 1 if total else 0,
                "version_conflicts": conflicts,
                "noops": noops,
                "retries": {"bulk": 0, "search": 0},
                "throttled_millis": 0,
                "requests_per_second": -1,
                "throttled_until_millis": 0,
                "failures": failures,
            }
        )

    def _assignees(self, space: str, index: dict[str, dict[str, Any]], body: dict[str, Any]) -> web.Response:
        add = list(body["assignees"]["add"])
        remove = list(body["assignees"]["remove"])
        duplicates = [uid for uid in add if uid in remove]
        if duplicates:
            return web.json_response(
                {
                    "message": [
                        f"Duplicate assignees {json.dumps(duplicates)} were found in the add and remove parameters."
                    ],
                    "status_code": 400,
                },
                status=400,
            )

        def change(source: dict[str, Any]) -> bool:
            current = [u for u in source.get("kibana.alert.workflow_assignee_ids") or [] if u not in remove]
            current += [u for u in add if u not in current]
            source["kibana.alert.workflow_assignee_ids"] = current
            # The painless script never sets ctx.op = 'noop': every match is reindexed.
            return True

        return self._update_by_query(space, index, list(body["ids"]), change)

    def _status(self, space: str, index: dict[str, dict[str, Any]], body: dict[str, Any]) -> web.Response:
        if "signal_ids" not in body:
            return web.json_response(
                {"message": "the fake supports status by signal_ids only", "status_code": 400},
                status=400,
            )
        status = body["status"]

        def change(source: dict[str, Any]) -> bool:
            if source.get("kibana.alert.workflow_status") == status:
                return False
            source["kibana.alert.workflow_status"] = status
            source["kibana.alert.workflow_user"] = None  # API-key callers have no profile
            source["kibana.alert.workflow_status_updated_at"] = "2025-01-18T00:00:00.000Z"
            if "reason" in body:
                source["kibana.alert.workflow_reason"] = body["reason"]
            return True

        return self._update_by_query(space, index, list(body["signal_ids"]), change)


class ElasticsearchFake:
    """Elasticsearch's profile API, checked by hand against the contract's ``x-elasticsearch``."""

    SUGGEST_KEYS = frozenset({"name", "size", "hint", "data"})

    def __init__(self, *, api_key: str = ES_API_KEY) -> None:
        self.api_key = api_key
        self.profiles: dict[str, dict[str, Any]] = {}
        self.requests: list[Recorded] = []
        self.violations: list[str] = []
        self.faults: list[Fault] = []
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> ElasticsearchFake:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        assert site._server is not None
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def add_profile(
        self,
        uid: str,
        *,
        email: str | None,
        username: str,
        full_name: str | None = None,
        enabled: bool = True,
    ) -> dict[str, Any]:
        """Seed one user profile (the shape ``GET /_security/profile`` returns)."""
        profile = {
            "uid": uid,
            "enabled": enabled,
            "last_synchronized": 1700000000000,
            "user": {
                "username": username,
                "roles": ["analyst"],
                "realm_name": "native",
                "email": email,
                "full_name": full_name,
            },
            "labels": {},
            "data": {},
        }
        self.profiles[uid] = profile
        return profile

    def fail(self, match: str, status: int = 500, **kwargs: Any) -> Fault:
        """Script a failure for requests whose path contains ``match``."""
        fault = Fault(match=match, status=status, **kwargs)
        self.faults.append(fault)
        return fault

    def calls(self, path_part: str = "") -> list[Recorded]:
        return [r for r in self.requests if path_part in r.path]

    def _violation(self, request: web.Request, problem: str) -> web.Response:
        self.violations.append(f"{request.method} {request.path}: {problem}")
        return web.json_response({"contract_violation": problem}, status=400)

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        rec = Recorded(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
        )
        self.requests.append(rec)
        path = request.path
        if path == "/_security/profile/_suggest":
            if request.method not in ("GET", "POST"):
                return self._violation(request, "SuggestUserProfiles takes GET or POST")
            if set(request.query) - {"data"}:
                return self._violation(request, f"unknown query parameters {sorted(set(request.query) - {'data'})}")
            if body is not None and not isinstance(body, dict):
                return self._violation(request, "body must be a JSON object")
            extra = set(body or {}) - self.SUGGEST_KEYS
            if extra:
                return self._violation(request, f"unknown body keys {sorted(extra)}")
            if body and (
                ("name" in body and not isinstance(body["name"], str))
                or ("size" in body and not isinstance(body["size"], int))
            ):
                return self._violation(request, "name must be a string and size an integer")
        elif path.startswith("/_security/profile/") and path.count("/") == 3:
            if request.method != "GET":
                return self._violation(request, "GetUserProfile takes GET")
            if raw:
                return self._violation(request, "GetUserProfile takes no body")
        else:
            return self._violation(request, "not an Elasticsearch API in the contract")
        if request.headers.get("Authorization") != f"ApiKey {self.api_key}":
            return web.json_response(
                {
                    "error": {
                        "root_cause": [
                            {
                                "type": "security_exception",
                                "reason": "unable to authenticate with provided credentials",
                            }
                        ],
                        "type": "security_exception",
                        "reason": "unable to authenticate with provided credentials",
                    },
                    "status": 401,
                },
                status=401,
            )
        for fault in self.faults:
            if fault.times > 0 and fault.match in path:
                fault.times -= 1
                if fault.drop:
                    assert request.transport is not None
                    request.transport.close()
                    raise ConnectionResetError("dropped by the fake")
                return web.json_response(fault.body, status=fault.status, headers=fault.headers)
        if path == "/_security/profile/_suggest":
            return self._suggest(body or {})
        uid = path.rsplit("/", 1)[1]
        profile = self.profiles.get(uid)
        # Current Elasticsearch answers an unknown uid with an empty list, not a 404.
        return web.json_response({"profiles": [profile] if profile else []})

    def _suggest(self, body: dict[str, Any]) -> web.Response:
        """Relevance-ish ranking: profiles sharing a token or substring with ``name``."""
        name = str(body.get("name") or "").lower()
        tokens = [t for t in re.split(r"[^a-z0-9]+", name) if t]
        scored: list[tuple[int, int, dict[str, Any]]] = []
        for order, profile in enumerate(self.profiles.values()):
            user = profile["user"]
            text = " ".join(str(user.get(k) or "") for k in ("username", "full_name", "email")).lower()
            score = sum(1 for t in tokens if t in text) + (1 if name and name in text else 0)
            if score:
                scored.append((-score, order, profile))
        scored.sort(key=lambda s: (s[0], s[1]))
        size = int(body.get("size", 10))
        found = [p for _, _, p in scored[:size]]
        return web.json_response(
            {
                "took": 2,
                "total": {"value": len(found), "relation": "eq"},
                "profiles": [{k: v for k, v in p.items() if k != "last_synchronized"} for p in found],
            }
        )


# ---- fixtures --------------------------------------------------------------------------------

FAST_POLICY = {
    "retry_wait_initial": 0.01,
    "retry_wait_max": 0.05,
    "retry_timeout": 3.0,
    "retry_attempts": 4,
    "timeout": 2.0,
    "connect_timeout": 1.0,
}


def make_kibana_config(
    kibana_fake: KibanaFake,
    es_fake: ElasticsearchFake | None = None,
    *,
    spaces: list[str] | None = None,
    default_space: str = "default",
    **policy: Any,
) -> KibanaConfig:
    """A ``KibanaConfig`` pointing at the fakes, with a fast retry policy (overridable)."""
    return KibanaConfig(
        url=kibana_fake.url,
        api_key=SecretStr(kibana_fake.api_key),
        default_space=default_space,
        spaces=spaces if spaces is not None else [default_space],
        es_url=es_fake.url if es_fake else None,
        es_api_key=SecretStr(es_fake.api_key) if es_fake else None,
        http=HttpPolicy(**{**FAST_POLICY, **policy}),
    )


@pytest.fixture
async def kibana_fake() -> AsyncIterator[KibanaFake]:
    """A running Kibana fake; the test fails if any request broke the contract."""
    fake = KibanaFake()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()
    assert fake.violations == [], fake.violations


@pytest.fixture
async def elasticsearch_fake() -> AsyncIterator[ElasticsearchFake]:
    """A running Elasticsearch profile fake; the test fails if any request broke the contract."""
    fake = ElasticsearchFake()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()
    assert fake.violations == [], fake.violations


@pytest.fixture
async def kibana_client(kibana_fake: KibanaFake, elasticsearch_fake: ElasticsearchFake) -> AsyncIterator[KibanaClient]:
    """A ``KibanaClient`` on both fakes, searching the spaces "default" and "secops"."""
    client = KibanaClient(make_kibana_config(kibana_fake, elasticsearch_fake, spaces=["default", "secops"]))
    try:
        yield client
    finally:
        await client.aclose()
