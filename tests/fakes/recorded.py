"""The vendors' own traffic in ``../shared/real`` (beside the repo, like the contracts), for replay.

``cassette(name)`` gives a Datadog VCR cassette's interactions with decoded bodies,
``kibana(name)`` an elasticctl recording, ``kibana_example(file)`` the JSON of an Elastic
example file and ``xpanse(name)`` a Palo Alto test-data body. ``replay(http, answers)``
points a client's ``PlatformHttp`` at an in-process transport that answers each request
with the next recorded response (checking its method and path), so the client's own
parsing runs on the vendor's bytes. ``@replays(path, …)`` marks a test as the replay of
those files; ``tests/platforms/test_real_coverage.py`` fails on any recorded response
file that no test claims.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
import yaml

from bot.platforms.http import PlatformHttp

REAL = Path(__file__).resolve().parents[3] / "shared" / "real"
# Recorded response files: everything but READMEs, BEHAVIOUR.md and the .frozen times.
RESPONSE_GLOBS = (
    "datadog/*.yaml",
    "kibana/elasticctl-recorded/*/*.json",
    "kibana/elasticsearch-specification/*.yaml",
    "kibana/kibana/*.yaml",
    "xpanse/*.json",
)

# recorded file (relative to REAL) -> "module::test" names that replay it
REPLAYED: dict[str, set[str]] = {}

F = TypeVar("F", bound=Callable[..., Any])


def replays(*paths: str) -> Callable[[F], F]:
    """Mark a test as the replay of these recorded files (paths relative to ``shared/real``)."""

    def mark(test: F) -> F:
        for path in paths:
            if not (REAL / path).is_file():
                raise FileNotFoundError(f"no recorded file {REAL / path}")
            REPLAYED.setdefault(path, set()).add(f"{test.__module__}::{test.__name__}")
        return test

    return mark


def response_files() -> list[str]:
    """Every recorded response file, relative to ``shared/real``."""
    if not REAL.is_dir():
        raise FileNotFoundError(f"{REAL} is missing: tests need ../shared beside the repo")
    return sorted(str(p.relative_to(REAL)) for g in RESPONSE_GLOBS for p in REAL.glob(g))


@dataclass(frozen=True)
class Answer:
    """One recorded exchange: what was asked (method, path) and what came back."""

    method: str
    path: str
    status: int
    body: Any
    content_type: str = "application/json"
    request_body: Any = None

    def response(self, request: httpx.Request | None = None) -> httpx.Response:
        """The recorded answer as an ``httpx.Response`` (JSON body re-encoded, or empty)."""
        content = b"" if self.body is None else json.dumps(self.body).encode()
        headers = {"content-type": self.content_type} if content else {}
        return httpx.Response(self.status, content=content, headers=headers, request=request)


def _decode(text: str | None) -> Any:
    return json.loads(text) if text else None


@cache
def _cassette(name: str) -> tuple[Answer, ...]:
    data = yaml.safe_load((REAL / "datadog" / f"test_{name}.yaml").read_text())
    answers = []
    for item in data["interactions"]:
        request, response = item["request"], item["response"]
        types = response.get("headers", {}).get("Content-Type") or ["application/json"]
        answers.append(
            Answer(
                method=request["method"],
                path=urlsplit(request["uri"]).path,
                status=int(response["status"]["code"]),
                body=_decode(response["body"]["string"]),
                content_type=types[0],
                request_body=_decode(request.get("body")),
            )
        )
    return tuple(answers)


def cassette(name: str) -> list[Answer]:
    """The interactions of ``datadog/test_<name>.yaml``, in order."""
    return list(_cassette(name))


def kibana(name: str) -> dict[str, Any]:
    """An elasticctl recording (``{flavor, version, operation, request, response | error}``)."""
    loaded: dict[str, Any] = json.loads((REAL / "kibana" / "elasticctl-recorded" / name).read_text())
    return loaded


def kibana_example(path: str) -> Any:
    """The decoded ``value`` of an Elasticsearch-specification example file."""
    doc = yaml.safe_load((REAL / "kibana" / "elasticsearch-specification" / path).read_text())
    value = doc["value"]
    return json.loads(value) if isinstance(value, str) else value


def kibana_route(path: str) -> dict[str, Any]:
    """One of Elastic's route OpenAPI files under ``kibana/kibana``."""
    loaded: dict[str, Any] = yaml.safe_load((REAL / "kibana" / "kibana" / path).read_text())
    return loaded


def xpanse(name: str) -> Any:
    """A Palo Alto test-data body under ``xpanse/``."""
    return json.loads((REAL / "xpanse" / name).read_text())


async def replay(http: PlatformHttp, answers: Sequence[Answer]) -> list[httpx.Request]:
    """Answer ``http``'s next requests with ``answers`` in order; returns the requests seen.

    A request whose method or path differs from the recorded one is answered 599 so the
    test fails on it; more requests than answers likewise.
    """
    queue = list(answers)
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if not queue:
            return httpx.Response(599, text=f"no recorded answer left for {request.method} {request.url.path}")
        answer = queue.pop(0)
        if (request.method, request.url.path) != (answer.method, answer.path):
            return httpx.Response(
                599, text=f"expected {answer.method} {answer.path}, got {request.method} {request.url}"
            )
        return answer.response(request)

    old = http._client
    http._client = httpx.AsyncClient(
        base_url=old.base_url, headers=old.headers, auth=old.auth, transport=httpx.MockTransport(handle)
    )
    await old.aclose()
    return seen
