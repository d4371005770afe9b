"""Socket Mode ack latency: envelopes pushed over a sandbox WebSocket, timed until the app's ack.

``SocketSlack`` is the sandbox Slack Web API plus Socket Mode: ``apps.connections.open``
(with the app token) answers a ``ws://`` URL, and the WebSocket there says hello, sends
the envelopes ``push`` is given and resolves each one's future when the app acks it.
The bot (``serve`` with ``SLACK_APP_TOKEN``) and the bare app (``bench.bare_app --socket``)
each get their own ``SocketSlack``, and the same payloads.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import json
import os
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import WSMsgType, web

from bench.acks import AckLoad
from bench.env import ALICE, BOB, EMAILS, LOADER, NAMES, SLACK_TOKEN, Config, Requests, Tenants
from bench.procs import Server, describe, quiesce, start_server
from bot.sandbox import payloads
from bot.sandbox.slack import SlackSandbox

Json = dict[str, Any]


class SocketSlack(SlackSandbox):
    """The sandbox Slack with one Socket Mode link, timing each envelope from send to ack."""

    def __init__(self, *, app_token: str) -> None:
        super().__init__(token=SLACK_TOKEN)
        self.app_token = app_token
        self.methods["apps.connections.open"] = self._apps_connections_open
        self._ws: web.WebSocketResponse | None = None
        self._connected = asyncio.Event()
        self._waiting: dict[str, asyncio.Future[float]] = {}
        self._sent = 0
        for user in (ALICE, BOB, LOADER):
            first, last = NAMES[user]
            self.add_user(user, email=EMAILS[user], real_name=f"{first} {last}")

    def token_for(self, method: str) -> str:
        return self.app_token if method == "apps.connections.open" else self.token

    def _apps_connections_open(self, args: Json) -> Json:
        return {"ok": True, "url": f"ws://127.0.0.1:{self.port}/link"}

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        if request.path == "/link":
            return await self._link(request)
        return await super()._dispatch(request)

    async def _link(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        await ws.send_json({"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A111"}})
        self._ws = ws
        self._connected.set()
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                envelope_id = json.loads(msg.data).get("envelope_id")
                waiter = self._waiting.pop(envelope_id, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(time.perf_counter())
        return ws

    async def push(self, kind: str, payload: Json) -> float:
        """Send one envelope and wait (bounded) for its ack; the milliseconds in between."""
        await asyncio.wait_for(self._connected.wait(), 10)
        assert self._ws is not None
        self._sent += 1
        envelope_id = f"env-{self._sent}"
        waiter: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._waiting[envelope_id] = waiter
        sent = time.perf_counter()
        await self._ws.send_json(payloads.socket_envelope(kind, payload, envelope_id=envelope_id))
        acked = await asyncio.wait_for(waiter, 10)
        return (acked - sent) * 1000


def envelope_payload(kind: str, body: str) -> tuple[str, Json]:
    """A signed-HTTP body from ``AckLoad`` as the Socket Mode (type, payload) pair."""
    fields = dict(parse_qsl(body, keep_blank_values=True))
    if kind == "command":
        return "slash_commands", fields
    return "interactive", json.loads(fields["payload"])


async def socket_ack_latency(cfg: Config, tenants: Tenants, workdir: Path) -> list[dict[str, Any]]:
    """Commands and Assign-me clicks over Socket Mode: the bot against the bare app, per level.

    The WebSocket end is in this process, beside the tenants and everything the earlier
    sections recorded: the garbage collector's pauses over that heap would be timed as
    the apps' latency, so the heap so far is frozen out of collection first.
    """
    gc.collect()
    gc.freeze()
    bot_slack = await SocketSlack(app_token="xapp-bench-bot").start()
    bare_slack = await SocketSlack(app_token="xapp-bench-bare").start()
    servers: list[Server] = []
    try:
        env = tenants.bot_env(db=workdir / "socket.db", xpanse_rate=cfg.xpanse_rate)
        bot_env = env | {"SLACK_API_URL": bot_slack.api_url, "SLACK_APP_TOKEN": bot_slack.app_token}
        bare_env = env | {"SLACK_API_URL": bare_slack.api_url, "SLACK_APP_TOKEN": bare_slack.app_token}
        serve = ["-m", "bot", "serve", "--host", "127.0.0.1"]
        bot = await start_server("bot-socket", serve, env=bot_env, workdir=workdir)
        servers.append(bot)
        bare = await start_server("bare-socket", ["-m", "bench.bare_app", "--socket"], env=bare_env, workdir=workdir)
        servers.append(bare)
        # The cards the clicks are on live in the bot's Slack; the platforms are the shared tenants.
        load = AckLoad(dataclasses.replace(tenants, slack=bot_slack), Requests(bot_slack))
        pids = [os.getpid(), *bot.pids, *bare.pids]
        targets = {"bot": bot_slack, "bare": bare_slack}
        rows: list[dict[str, Any]] = []
        count = max(cfg.ack_requests // 2, 4)
        for level in cfg.ack_levels:
            for kind in ("command", "button"):
                bodies = [envelope_payload(kind, b) for b in await load.bodies(kind, count + 10)]
                latencies: dict[str, list[float]] = {"bot": [], "bare": []}
                for name, slack in targets.items():
                    await quiesce(pids)
                    await _fire(slack, bodies[:10], level)  # warm-up
                    await quiesce(pids)
                    latencies[name] = await _fire(slack, bodies[10:], level)
                b, r = describe(latencies["bot"]), describe(latencies["bare"])
                rows.append(
                    {
                        "kind": kind,
                        "concurrency": level,
                        "requests": count,
                        "bot": b,
                        "bare": r,
                        "ratio_p50": round(b["p50_ms"] / r["p50_ms"], 2),
                        "ratio_p99": round(b["p99_ms"] / r["p99_ms"], 2),
                    }
                )
                print(
                    f"  socket {kind:7} x{level:<3} bot p50 {b['p50_ms']:7.2f} p99 {b['p99_ms']:7.2f} ms | "
                    f"bare p50 {r['p50_ms']:7.2f} p99 {r['p99_ms']:7.2f}",
                    flush=True,
                )
        await quiesce(pids)
        return rows
    finally:
        for server in servers:
            await server.stop()
        await bot_slack.stop()
        await bare_slack.stop()


async def _fire(slack: SocketSlack, bodies: list[tuple[str, Json]], level: int) -> list[float]:
    sem = asyncio.Semaphore(level)

    async def one(kind: str, payload: Json) -> float:
        async with sem:
            return await slack.push(kind, payload)

    return list(await asyncio.gather(*(one(k, p) for k, p in bodies)))
