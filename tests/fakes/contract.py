"""A local HTTP server that checks every request against a vendor OpenAPI contract.

Each platform fake subclasses ``ContractServer``: it runs a real aiohttp
server on 127.0.0.1 with an ephemeral port, validates method, path,
parameters, headers, security and body of every request against
``../shared/contracts/<name>.yaml`` (openapi-core), records what it received,
and can be told to fail in every way the vendors fail (status codes, per-item
failures, slow answers, dropped connections). A request the vendor schema
would reject is answered 400 and kept in ``violations``; the test fixtures
assert that list is empty, so a contract violation fails the test.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Self

from aiohttp import web
from openapi_core import OpenAPI
from openapi_core.datatypes import RequestParameters
from werkzeug.datastructures import Headers, ImmutableMultiDict

CONTRACTS = Path(__file__).resolve().parents[3] / "shared" / "contracts"


@cache
def load_contract(name: str) -> OpenAPI:
    """Parse ``shared/contracts/<name>.yaml`` once per test session."""
    path = CONTRACTS / f"{name}.yaml"
    if not path.exists():
        raise FileNotFoundError(f"contract {path} is missing: tests need ../shared beside the repo")
    return OpenAPI.from_file_path(str(path))


class _OpenAPIRequest:
    """The openapi-core request protocol over a received aiohttp request."""

    def __init__(self, *, host_url: str, path: str, request: web.Request, body: bytes) -> None:
        self.host_url = host_url
        self.path = path
        self.method = request.method.lower()
        self.body = body or None
        self.content_type = (request.headers.get("Content-Type") or "").lower()
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(list(request.query.items())),
            header=Headers(list(request.headers.items())),
            cookie=ImmutableMultiDict(list(request.cookies.items())),
        )


@dataclass
class Recorded:
    """One request as the fake received it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class Fault:
    """A scripted failure for the next ``times`` requests whose path contains ``match``."""

    match: str
    status: int = 500
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False
    times: int = 1


Handler = Callable[[str, Recorded], Awaitable[web.StreamResponse]]


class ContractServer:
    """Base class of the platform fakes: contract checks, recording and fault injection."""

    contract: str = ""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.violations: list[str] = []
        self.faults: list[Fault] = []
        self.latency: float = 0.0
        self._runner: web.AppRunner | None = None
        self.port = 0

    # ---- lifecycle ---------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> Self:
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined,union-attr]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ---- test helpers -----------------------------------------------------------------------

    def fail(self, match: str, status: int = 500, **kwargs: Any) -> Fault:
        """Script a failure for requests whose path contains ``match``."""
        fault = Fault(match=match, status=status, **kwargs)
        self.faults.append(fault)
        return fault

    def calls(self, path_part: str = "", method: str | None = None) -> list[Recorded]:
        """Requests received whose path contains ``path_part`` (and with ``method``)."""
        return [r for r in self.requests if path_part in r.path and (method is None or r.method == method.upper())]

    def reset_log(self) -> None:
        self.requests.clear()

    # ---- subclass hooks ---------------------------------------------------------------

    def contract_location(self, path: str) -> tuple[str, str]:
        """Map a received path to (server URL in the contract, path below it)."""
        raise NotImplementedError

    async def handle(self, path: str, req: Recorded) -> web.StreamResponse:
        raise NotImplementedError

    # ---- machinery ---------------------------------------------------------------------

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
        host_url, sub_path = self.contract_location(request.path)
        problem = self._validate(host_url, sub_path, request, raw)
        if problem:
            self.violations.append(f"{request.method} {request.path}: {problem}")
            return web.json_response({"contract_violation": problem}, status=400)
        if self.latency:
            await asyncio.sleep(self.latency)
        for fault in self.faults:
            if fault.times > 0 and fault.match in request.path:
                fault.times -= 1
                if fault.delay:
                    await asyncio.sleep(fault.delay)
                if fault.drop:
                    assert request.transport is not None
                    request.transport.close()
                    raise ConnectionResetError("dropped by the fake")
                if fault.status:
                    return web.json_response(fault.body, status=fault.status, headers=fault.headers)
                break
        return await self.handle(sub_path, rec)

    def _validate(self, host_url: str, path: str, request: web.Request, raw: bytes) -> str | None:
        openapi = load_contract(self.contract)
        oreq = _OpenAPIRequest(host_url=host_url, path=path, request=request, body=raw)
        try:
            openapi.validate_request(oreq)
        except Exception as exc:  # every validation failure is a contract violation
            detail = "; ".join(str(e) for e in getattr(exc, "schema_errors", []) or [])
            cause = exc.__cause__
            extra = f" ({cause})" if cause and not detail else ""
            return f"{type(exc).__name__}: {exc}{extra} {detail}".strip()
        return None
