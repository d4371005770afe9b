"""Socket Mode: Bolt's handler, with the hot requests (``bot.slack.hot``) answered without its dispatch.

Over the WebSocket an envelope's payload is the body Bolt would dispatch; ``/triage`` and the
card's job buttons are answered by the same listener bodies as over HTTP, and the response is
sent back on the envelope exactly as Bolt's handler sends it. Everything else goes to Bolt.
"""

from __future__ import annotations

from time import time
from typing import Any

from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.adapter.socket_mode.async_internals import run_async_bolt_app, send_async_response
from slack_bolt.async_app import AsyncApp
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest

from bot.slack.hot import HotRoutes


class HotSocketModeHandler(AsyncSocketModeHandler):
    """``AsyncSocketModeHandler`` that answers the hot requests itself."""

    def __init__(self, app: AsyncApp, hot: HotRoutes | None, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.hot = hot

    async def handle(self, client: SocketModeClient, req: SocketModeRequest) -> None:  # type: ignore[override]
        start = time()
        payload = req.payload
        response = None
        if self.hot is not None and req.type in ("slash_commands", "interactive") and isinstance(payload, dict):
            response = await self.hot.answer(payload)
        if response is None:
            response = await run_async_bolt_app(self.app, req)
        await send_async_response(client, req, response, start)
