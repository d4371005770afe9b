"""The small aiohttp server every sandbox tenant runs on: 127.0.0.1, an ephemeral port.

Sandbox tenants are product code (``triage-bot shell`` runs them on a machine with
no credentials, the benchmark runs them with latency), so they depend on nothing the
tests use: no openapi-core, no ``../shared``. Each keeps its state in memory and
answers in the vendor's shapes. The tests wrap the same tenants: they override
``check`` to hold every request against the vendor's contract first.

Every request passes, in order: ``precheck`` (what a vendor refuses before routing,
such as Kibana's authentication and XSRF header), ``check`` (nothing here; the contract
in the tests), the configured ``latency``, the scripted ``faults``, then ``handle``.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any, Self

from aiohttp import web


@dataclass
class Recorded:
    """One request a sandbox server received (header names lower-cased)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    at: float = field(default_factory=time.monotonic)  # when it arrived (for rate checks)


# The name the shell's first version used.
Received = Recorded


@dataclass
class Fault:
    """A scripted failure for the next ``times`` requests whose path contains ``match``.

    ``status`` 0 with a ``delay`` only slows the request down; ``drop`` closes the
    connection without an answer.
    """

    match: str
    status: int = 500
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False
    times: int = 1


class SandboxServer:
    """Base: bind 127.0.0.1 on an ephemeral port, record, delay, fault, then ``handle``."""

    name = "sandbox"

    def __init__(self) -> None:
        self.port = 0
        self.requests: list[Recorded] = []
        # Requests the vendor would refuse as malformed (the tests assert there are none).
        self.violations: list[str] = []
        self.faults: list[Fault] = []
        self.latency: float = 0.0
        self._runner: web.AppRunner | None = None

    # ---- lifecycle ---------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> Self:
        """Start serving; returns self so ``server = await X().start()`` reads naturally."""
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        return self

    async def stop(self) -> None:
        """Stop serving (idempotent)."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ---- latency, faults and the log ----------------------------------------------------

    def fail(self, match: str, status: int = 500, **kwargs: Any) -> Fault:
        """Script a failure for requests whose path contains ``match``."""
        fault = Fault(match=match, status=status, **kwargs)
        self.faults.append(fault)
        return fault

    def reset_log(self) -> None:
        self.requests.clear()

    def violation(self, req: Recorded, problem: str) -> None:
        """Note a request the vendor would refuse as malformed."""
        self.violations.append(f"{req.method} {req.path}: {problem}")

    # ---- hooks ---------------------------------------------------------------------------

    def route(self, path: str) -> str:
        """The path ``handle`` sees (a tenant may strip a prefix such as ``/s/<space>``)."""
        return path

    async def precheck(self, req: Recorded) -> web.StreamResponse | None:
        """An answer the vendor gives before routing (authentication, mandatory headers)."""
        return None

    async def check(self, request: web.Request, req: Recorded, raw: bytes) -> web.StreamResponse | None:
        """An answer refusing a malformed request; the tests check the vendor contract here."""
        return None

    async def handle(self, path: str, req: Recorded) -> web.StreamResponse:
        raise NotImplementedError

    # ---- machinery -------------------------------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body: Any
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        req = Recorded(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
        )
        self.requests.append(req)
        # (A response is a mapping, often empty: test for None, never for truth.)
        early = await self.precheck(req)
        if early is None:
            early = await self.check(request, req, raw)
        if early is not None:
            return early
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
                    raise ConnectionResetError(f"dropped by the {self.name} sandbox")
                if fault.status:
                    return web.json_response(fault.body, status=fault.status, headers=fault.headers)
                break
        return await self.handle(self.route(request.path), req)


def json_response(
    body: Any, *, status: int = 200, content_type: str = "application/json", headers: dict[str, str] | None = None
) -> web.Response:
    """A JSON answer with an explicit content type (Datadog uses the JSON:API media type)."""
    return web.Response(text=json.dumps(body), status=status, content_type=content_type, headers=headers)
