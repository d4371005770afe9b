"""The small aiohttp server every sandbox tenant runs on: 127.0.0.1, an ephemeral port.

Sandbox tenants are product code (``triage-bot shell`` runs them on a machine with
no credentials), so they depend on nothing the tests use: no openapi-core, no
``../shared``. Each keeps its state in memory and answers in the vendor's shapes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Self

from aiohttp import web


@dataclass
class Received:
    """One request a sandbox server received (kept for the shell's tests and debugging)."""

    method: str
    path: str
    query: dict[str, str]
    body: Any


class SandboxServer:
    """Base: bind 127.0.0.1 on an ephemeral port, route everything to ``handle``."""

    name = "sandbox"

    def __init__(self) -> None:
        self.port = 0
        self.requests: list[Received] = []
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> Self:
        """Start serving; returns self so ``server = await X().start()`` reads naturally."""
        app = web.Application(client_max_size=4 * 1024 * 1024)
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

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body: Any
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        self.requests.append(Received(request.method, request.path, dict(request.query), body))
        return await self.handle(request, body)

    async def handle(self, request: web.Request, body: Any) -> web.StreamResponse:
        raise NotImplementedError


def json_response(body: Any, *, status: int = 200, content_type: str = "application/json") -> web.Response:
    """A JSON answer with an explicit content type (Datadog uses the JSON:API media type)."""
    return web.Response(text=json.dumps(body), status=status, content_type=content_type)
