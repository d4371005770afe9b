"""The Datadog fake: the sandbox tenant behind a check against ``shared/contracts/datadog.yaml``.

``bot.sandbox.datadog.DatadogSandbox`` holds the findings, users and cases and answers
in the shapes of Datadog's recorded traffic (fields under ``attributes.attributes.custom``,
a 202 without ``meta``, the whole-request 404 ``finding not found`` for an unknown id, the
attach response with ``insights``, JSON:API 404 bodies, cursor-paged search with a
relative ``links.next``, page-numbered users, the rules from the endpoint descriptions
noted in ``violations``; ``add_recorded`` serves a recorded finding as is); this adds the
contract check, test keys and the test-only faults (``meta.failures``/``meta.warnings``
entries the contract describes but no recording shows, 429 with Datadog's rate-limit
headers).

Loaded as a pytest plugin (``tests/conftest.py``): fixtures ``datadog_fake`` and
``datadog_client``; ``make_datadog_config`` builds a config pointed at a fake.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from functools import cache
from typing import Any

import pytest_asyncio
import yaml
from aiohttp import web
from pydantic import SecretStr

from bot.platforms.datadog import DatadogClient
from bot.sandbox.datadog import JSONAPI, DatadogSandbox, QueryError, parse_query
from bot.sandbox.oncall import DatadogOnCallRoutes
from bot.settings import DatadogConfig, HttpPolicy
from tests.fakes.contract import CONTRACTS, ContractServer, Recorded

__all__ = [
    "API_KEY",
    "APP_KEY",
    "JSONAPI",
    "DatadogFake",
    "QueryError",
    "detach_problem",
    "make_datadog_config",
    "parse_query",
]

API_KEY = "dd-api-key-for-tests"
APP_KEY = "dd-app-key-for-tests"


# DetachCase is not in the contract (BEHAVIOUR §1.4): its requests are held against the recordings.
CASSETTES = CONTRACTS.parent / "real" / "datadog"
DETACH = ("DELETE", "/api/v2/security/findings/cases")


def _shape(value: Any) -> Any:
    """The structure of decoded JSON: keys and scalar types, list items collapsed to one."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [_shape(value[0])] if value else []
    return type(value).__name__


@cache
def recorded_detach_shapes() -> tuple[Any, ...]:
    """The body shapes of the recorded DetachCase requests (success, bad request, not found)."""
    shapes = []
    for path in sorted(CASSETTES.glob("test_detach_security_findings_from_their_case_returns_*.yaml")):
        for interaction in yaml.safe_load(path.read_text())["interactions"]:
            request = interaction["request"]
            assert (request["method"], request["uri"].split(".com", 1)[1]) == DETACH
            shapes.append(_shape(json.loads(request["body"])))
    if not shapes:
        raise FileNotFoundError(f"no DetachCase recordings in {CASSETTES}")
    return tuple(shapes)


def detach_problem(req: Recorded) -> str | None:
    """What is wrong with a DetachCase request, judged by the recordings (None: nothing)."""
    if not req.headers.get("dd-api-key") or not req.headers.get("dd-application-key"):
        return "DetachCase needs DD-API-KEY and DD-APPLICATION-KEY"
    if not (req.headers.get("content-type") or "").startswith("application/json"):
        return "DetachCase sends a JSON body"
    body = req.body
    if not isinstance(body, dict) or _shape(body) not in recorded_detach_shapes():
        return f"body {body!r} does not have the recorded shape {recorded_detach_shapes()[0]}"
    refs = body["data"]["relationships"]["findings"]["data"]
    if body["data"]["type"] != "cases" or any(r["type"] != "findings" for r in refs):
        return "DetachCase takes data.type 'cases' and findings of type 'findings'"
    return None


class DatadogFake(ContractServer, DatadogOnCallRoutes, DatadogSandbox):
    """The Datadog sandbox tenant (On-Call schedules in ``book``), contract-checked, with test keys and
    test-only faults."""

    contract = "datadog"

    def __init__(self, *, api_key: str = API_KEY, app_key: str = APP_KEY) -> None:
        super().__init__(api_key=api_key, app_key=app_key)

    async def check(self, request: web.Request, req: Recorded, raw: bytes) -> web.StreamResponse | None:
        if (request.method, request.path) == DETACH:
            problem = detach_problem(req)
            if problem:
                self.violations.append(f"{request.method} {request.path}: {problem}")
                return web.json_response({"contract_violation": problem}, status=400)
            return None
        return await super().check(request, req, raw)

    # ---- fault injection ---------------------------------------------------------------

    def fail_finding(
        self,
        finding_id: str,
        status: int = 500,
        *,
        title: str = "Internal Server Error",
        detail: str = "failed to update finding assignee",
    ) -> None:
        """Report ``finding_id`` in ``meta.failures`` of the next assignment (left unchanged)."""
        self.pending_failures[finding_id] = {"status": status, "title": title, "detail": detail}

    def warn_finding(
        self,
        finding_id: str,
        status: int = 200,
        *,
        title: str = "Warning",
        detail: str = "assignee updated but the notification failed",
    ) -> None:
        """Report ``finding_id`` in ``meta.warnings`` of the next assignment (still changed)."""
        self.pending_warnings[finding_id] = {"status": status, "title": title, "detail": detail}

    def rate_limit(self, match: str, *, times: int = 1, reset: str = "0", name: str = "findings") -> None:
        """Answer the next ``times`` matching requests 429 with Datadog's rate-limit headers."""
        self.fail(
            match,
            429,
            times=times,
            body={"errors": ["Too many requests"]},
            headers={
                "X-RateLimit-Limit": "60",
                "X-RateLimit-Period": "60",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": reset,
                "X-RateLimit-Name": name,
            },
        )


def make_datadog_config(fake: DatadogFake, **policy_overrides: Any) -> DatadogConfig:
    """A ``DatadogConfig`` pointed at ``fake`` with a fast retry policy (override any field)."""
    policy = {
        "timeout": 1.0,
        "connect_timeout": 1.0,
        "retry_attempts": 4,
        "retry_timeout": 3.0,
        "retry_wait_initial": 0.01,
        "retry_wait_max": 0.05,
        "concurrency": 4,
    }
    policy.update(policy_overrides)
    return DatadogConfig(
        api_url=fake.url,
        api_key=SecretStr(fake.api_key),
        app_key=SecretStr(fake.app_key),
        site="datadoghq.com",
        http=HttpPolicy(**policy),
    )


@pytest_asyncio.fixture
async def datadog_fake() -> AsyncIterator[DatadogFake]:
    """A started Datadog fake; the test fails if any request broke the contract."""
    fake = DatadogFake()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()
    assert fake.violations == []


@pytest_asyncio.fixture
async def datadog_client(datadog_fake: DatadogFake) -> AsyncIterator[DatadogClient]:
    """A ``DatadogClient`` pointed at ``datadog_fake`` with a fast test retry policy."""
    client = DatadogClient(make_datadog_config(datadog_fake))
    try:
        yield client
    finally:
        await client.aclose()
