"""The fake Slack Web API for tests: the sandbox Slack plus test-only faults, waits and Socket Mode.

``bot.sandbox.slack.SlackSandbox`` answers the Web API like Slack (shapes from
``shared/slack/payloads/web_api_responses.json`` and ``payloads/shapes``) and keeps the
calls, messages, ephemerals, views and response_url bodies. This adds what only the
tests need: ``rate_limit`` (HTTP 429 + ``Retry-After``) and ``fail`` (``{"ok": false,
"error": ...}``) for the next calls of a method, bounded waits (``wait_for``,
``wait_for_responses``, ``wait_for_ack``) and a Socket Mode link (``apps.connections.open``
with the app token, then a WebSocket at ``/link`` that says hello, pushes queued
envelopes and records the app's acks).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest_asyncio
from aiohttp import WSMsgType, web
from slack_sdk.web.async_client import AsyncWebClient

from bot.sandbox import payloads
from bot.sandbox.server import Recorded
from bot.sandbox.slack import SCOPES, SlackCall, SlackSandbox, SlackUser
from bot.slack_web import SlackWeb

__all__ = ["APP_TOKEN", "TOKEN", "FakeUser", "SlackCall", "SlackFake"]

TOKEN = "xoxb-test-token"
APP_TOKEN = "xapp-test-token"
FakeUser = SlackUser

Json = dict[str, Any]


@dataclass
class _Fault:
    method: str
    times: int | None  # None: every call
    status: int = 200
    error: str = "ratelimited"
    retry_after: int | None = None


class SlackFake(SlackSandbox):
    """The sandbox Slack with test faults; ``await start()`` binds an ephemeral port on 127.0.0.1."""

    def __init__(
        self,
        *,
        token: str = TOKEN,
        app_token: str = APP_TOKEN,
        team_id: str = "T111",
        bot_user_id: str = "UBOT",
        bot_id: str = "BBOT",
        scopes: str = SCOPES,
    ) -> None:
        super().__init__(token=token, team_id=team_id, bot_user_id=bot_user_id, bot_id=bot_id, scopes=scopes)
        self.app_token = app_token
        self.methods["apps.connections.open"] = self._apps_connections_open
        self._faults: list[_Fault] = []
        self._changed = asyncio.Event()
        self._envelopes: asyncio.Queue[Json] = asyncio.Queue()
        self.socket_acks: list[Json] = []
        self.socket_connections = 0

    def client(self, **kwargs: Any) -> SlackWeb:
        """The bot's Slack client (``SlackWeb``) with the right token, pointed at this fake."""
        return SlackWeb(self.token, self.api_url, **kwargs)

    # ---- faults ------------------------------------------------------------------------

    def rate_limit(self, method: str, times: int | None = 1, retry_after: int = 1) -> None:
        """Answer the next ``times`` calls of ``method`` (None: all) with 429 + Retry-After."""
        self._faults.append(_Fault(method=method, times=times, status=429, retry_after=retry_after))

    def fail(self, method: str, error: str = "channel_not_found", *, times: int | None = 1) -> None:  # type: ignore[override]
        """Answer the next ``times`` calls of ``method`` (None: all) with ``ok: false, error``."""
        self._faults.append(_Fault(method=method, times=times, error=error))

    def server_error(self, method: str, times: int | None = 1, status: int = 503) -> None:
        """Answer the next ``times`` calls of ``method`` (None: all) with a 5xx."""
        self._faults.append(_Fault(method=method, times=times, status=status, error="service_unavailable"))

    def clear_faults(self) -> None:
        self._faults.clear()

    def token_for(self, method: str) -> str:
        return self.app_token if method == "apps.connections.open" else self.token

    def intercept(self, method: str, args: Json) -> web.StreamResponse | None:
        for fault in self._faults:
            if fault.method == method and (fault.times is None or fault.times > 0):
                if fault.times is not None:
                    fault.times -= 1
                extra = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
                return web.json_response({"ok": False, "error": fault.error}, status=fault.status, headers=extra)
        return None

    # ---- waiting -----------------------------------------------------------------------

    # The timeout argument is the point of these helpers (bounded waits in scenario tests).
    async def wait_for(self, method: str, count: int = 1, timeout: float = 5) -> list[SlackCall]:
        """Wait until ``method`` has been called ``count`` times; return those calls or raise
        ``AssertionError`` after ``timeout`` seconds with what was received instead."""
        return await self._wait(lambda: self.calls_to(method), count, timeout, what=method)

    async def wait_for_responses(self, count: int = 1, timeout: float = 5) -> list[Json]:
        """Wait until ``count`` bodies have been posted to a response_url; return them."""
        return await self._wait(lambda: list(self.responses), count, timeout, what="response_url")

    async def _wait(self, get: Callable[[], list[Any]], count: int, timeout: float, *, what: str) -> list[Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(found := get()) < count:
            remaining = deadline - loop.time()
            if remaining <= 0:
                seen = [c.method for c in self.calls]
                raise AssertionError(f"waited {timeout}s for {count} x {what}, got {len(found)}; calls so far: {seen}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                pass
        return found

    # ---- HTTP machinery ----------------------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        if request.path == "/link":
            return await self._link(request)
        return await super()._dispatch(request)

    async def handle(self, path: str, req: Recorded) -> web.StreamResponse:
        try:
            return await super().handle(path, req)
        finally:
            self._changed.set()

    async def _link(self, request: web.Request) -> web.StreamResponse:
        """Socket Mode: say hello, push queued envelopes, record the app's acks."""
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self.socket_connections += 1
        await ws.send_json({"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A111"}})

        async def pump() -> None:
            while True:
                envelope = await self._envelopes.get()
                await ws.send_json(envelope)

        sender = asyncio.create_task(pump())
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    self.socket_acks.append(json.loads(msg.data))
                    self._changed.set()
        finally:
            sender.cancel()
        return ws

    async def push_envelope(self, kind: str, payload: Json) -> str:
        """Queue a Socket Mode envelope (``slash_commands`` / ``interactive``); returns its id."""
        envelope_id = f"env-{next(self._seq)}"
        await self._envelopes.put(payloads.socket_envelope(kind, payload, envelope_id=envelope_id))
        return envelope_id

    async def wait_for_ack(self, envelope_id: str, timeout: float = 5) -> Json:
        """Wait until the app acked ``envelope_id`` over the socket; return the ack."""
        acks = await self._wait(
            lambda: [a for a in self.socket_acks if a.get("envelope_id") == envelope_id],
            1,
            timeout,
            what=f"socket ack {envelope_id}",
        )
        ack: dict[str, Any] = acks[0]
        return ack

    def _apps_connections_open(self, args: Json) -> Json:
        return {"ok": True, "url": f"ws://127.0.0.1:{self.port}/link"}


@pytest_asyncio.fixture
async def slack_fake() -> AsyncIterator[SlackFake]:
    """A running ``SlackFake`` with token ``xoxb-test-token``."""
    fake = await SlackFake().start()
    try:
        yield fake
    finally:
        await fake.stop()


@pytest_asyncio.fixture
async def slack_client(slack_fake: SlackFake) -> AsyncIterator[SlackWeb]:
    """The bot's Slack client pointed at ``slack_fake``."""
    async with slack_fake.client() as client:
        yield client


@pytest_asyncio.fixture
async def sdk_client(slack_fake: SlackFake) -> AsyncWebClient:
    """Slack's own SDK client pointed at ``slack_fake`` (the fake must answer it like Slack)."""
    return AsyncWebClient(token=slack_fake.token, base_url=slack_fake.api_url)
