"""A bare Bolt ``AsyncApp`` whose listeners only ack: the baseline for ack latency.

It is served exactly as the bot serves Slack in HTTP mode: an aiohttp
application, slack_bolt's aiohttp adapter (``to_bolt_request`` →
``async_dispatch`` → ``to_aiohttp_response``), ``AppRunner`` + ``TCPSite``.
Run as ``python -m bench.bare_app --port N [--floor]``; it reads ``SLACK_BOT_TOKEN``,
``SLACK_SIGNING_SECRET`` and ``SLACK_API_URL`` like the bot does.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal

from aiohttp import web
from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient


def build_bare_app(*, floor: bool = False) -> AsyncApp:
    """An app with one command and a catch-all action listener, both ack-only.

    Bolt's defaults (``process_before_response=False``: the ack waits on Bolt's polling
    step) are the baseline; ``floor`` sets ``process_before_response=True``, the fastest a
    Bolt app can ack.
    """
    app = AsyncApp(
        client=AsyncWebClient(token=os.environ["SLACK_BOT_TOKEN"], base_url=os.environ["SLACK_API_URL"]),
        signing_secret=os.environ["SLACK_SIGNING_SECRET"],
        process_before_response=floor,
        raise_error_for_unhandled_request=False,
    )

    @app.command("/triage")
    async def on_command(ack: AsyncAck) -> None:
        await ack()

    @app.action(re.compile(".*"))
    async def on_action(ack: AsyncAck) -> None:
        await ack()

    return app


async def serve(port: int, *, floor: bool = False, socket: bool = False) -> None:
    """Serve ``/slack/events`` (and ``/readyz``) on 127.0.0.1 until SIGTERM; with ``socket``,
    take Slack's requests over Socket Mode (``SLACK_APP_TOKEN``) instead."""
    bolt = build_bare_app(floor=floor)
    app = bolt.web_app(path="/slack/events", port=port)
    handler = None
    if socket:
        from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

        handler = AsyncSocketModeHandler(bolt, app_token=os.environ["SLACK_APP_TOKEN"])
        await handler.connect_async()  # type: ignore[no-untyped-call]

    async def readyz(_: web.Request) -> web.Response:
        return web.json_response({"ready": True})

    app.router.add_get("/readyz", readyz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    if handler is not None:
        await handler.close_async()  # type: ignore[no-untyped-call]
    await runner.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--floor", action="store_true", help="process_before_response=True")
    parser.add_argument("--socket", action="store_true", help="Socket Mode (SLACK_APP_TOKEN)")
    args = parser.parse_args()
    asyncio.run(serve(args.port, floor=args.floor, socket=args.socket))
