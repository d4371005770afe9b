"""Fake Kibana (Security detection alerts) and Elasticsearch (user profiles) servers.

The vendor behaviour is the sandbox tenants' (``bot.sandbox.kibana``: per-space alert
indices, ``ApiKey`` authentication and ``kbn-xsrf`` before any route, update-by-query
answers, removals before additions, the SIEM-style 400 for a uid in both ``add`` and
``remove``, the query DSL subset in ``bot.sandbox.dsl``; ``bot.sandbox.elasticsearch``:
profile suggest and get). ``KibanaFake`` checks each request against
``shared/contracts/kibana.yaml`` first; ``ElasticsearchFake`` (Elasticsearch is not in
the OpenAPI paths) hand-checks method, path and body keys against the contract's
``x-elasticsearch`` section and records violations the same way.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from pydantic import SecretStr

from bot.platforms.kibana import KibanaClient
from bot.sandbox.dsl import UnsupportedQuery, matches
from bot.sandbox.elasticsearch import ElasticsearchSandbox
from bot.sandbox.kibana import SPACE_PATH, KibanaSandbox
from bot.settings import HttpPolicy, KibanaConfig
from tests.fakes.contract import ContractServer, Recorded

__all__ = ["ElasticsearchFake", "KibanaFake", "UnsupportedQuery", "make_kibana_config", "matches"]

KIBANA_API_KEY = "a2liYW5hLWtleS1pZDpraWJhbmEtc2VjcmV0"
ES_API_KEY = "ZXMta2V5LWlkOmVzLXNlY3JldA=="
CONTRACT_HOST = "https://localhost:5601"


class KibanaFake(ContractServer, KibanaSandbox):
    """The Kibana sandbox tenant, contract-checked (after its authentication and XSRF check)."""

    contract = "kibana"

    def __init__(self, *, api_key: str = KIBANA_API_KEY) -> None:
        super().__init__(api_key=api_key)

    async def check(self, request: web.Request, req: Recorded, raw: bytes) -> web.StreamResponse | None:
        """The contract check, except for a closing ``reason``: the contract's enum is an old
        one that current Kibana refuses, and the reason is a free 1-1024 character string
        (``automated_closure`` recorded on 9.5.2), so any such string passes and the tenant
        answers for it."""
        body = req.body
        if isinstance(body, dict) and isinstance(body.get("reason"), str) and 1 <= len(body["reason"]) <= 1024:
            raw = json.dumps({**body, "reason": "false_positive"}).encode()
        return await super().check(request, req, raw)

    def contract_location(self, path: str) -> tuple[str, str]:
        found = SPACE_PATH.match(path)
        if found:
            return f"{CONTRACT_HOST}/s/{found.group(1)}", found.group(2)
        return CONTRACT_HOST, path


class ElasticsearchFake(ElasticsearchSandbox):
    """Elasticsearch's profile API, checked by hand against the contract's ``x-elasticsearch``."""

    SUGGEST_KEYS = frozenset({"name", "size", "hint", "data"})

    def __init__(self, *, api_key: str = ES_API_KEY) -> None:
        super().__init__(api_key=api_key)

    def calls(self, path_part: str = "") -> list[Recorded]:
        return [r for r in self.requests if path_part in r.path]

    def _violation(self, request: web.Request, problem: str) -> web.Response:
        self.violations.append(f"{request.method} {request.path}: {problem}")
        return web.json_response({"contract_violation": problem}, status=400)

    async def check(self, request: web.Request, req: Recorded, raw: bytes) -> web.StreamResponse | None:
        body = req.body
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
        return None


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
