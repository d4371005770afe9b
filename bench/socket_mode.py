"""Socket Mode ack latency: envelopes pushed over a WebSocket, timed until the app's ack.

``SocketSlack`` is the sandbox Slack Web API plus ``apps.connections.open`` (with the app
token), which answers the ``ws://`` URL of a link in the load generator's process
(``bench.loadgen``): that end says hello, sends the envelopes and times each one's ack,
away from the sandbox tenants in this process, which serve the bot's own calls while
the envelopes are timed. The bot (``serve`` with ``SLACK_APP_TOKEN``) and the bare app
(``bench.bare_app --socket``) each get their own ``SocketSlack`` and link, and the same
payloads.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from bench.acks import AckLoad
from bench.env import ALICE, BOB, EMAILS, LOADER, NAMES, SLACK_TOKEN, Config, Requests, Tenants
from bench.procs import LoadGenerator, Server, describe, quiesce, split, start_server
from bot.sandbox import payloads
from bot.sandbox.slack import SlackSandbox

Json = dict[str, Any]


class SocketSlack(SlackSandbox):
    """The sandbox Slack whose ``apps.connections.open`` names a Socket Mode link elsewhere."""

    def __init__(self, *, app_token: str, link_url: str) -> None:
        super().__init__(token=SLACK_TOKEN)
        self.app_token = app_token
        self.link_url = link_url
        self.methods["apps.connections.open"] = self._apps_connections_open
        for user in (ALICE, BOB, LOADER):
            first, last = NAMES[user]
            self.add_user(user, email=EMAILS[user], real_name=f"{first} {last}")

    def token_for(self, method: str) -> str:
        return self.app_token if method == "apps.connections.open" else self.token

    def _apps_connections_open(self, args: Json) -> Json:
        return {"ok": True, "url": self.link_url}


def envelope_payload(kind: str, body: str) -> tuple[str, Json]:
    """A signed-HTTP body from ``AckLoad`` as the Socket Mode (type, payload) pair."""
    fields = dict(parse_qsl(body, keep_blank_values=True))
    if kind == "command":
        return "slash_commands", fields
    return "interactive", json.loads(fields["payload"])


async def socket_ack_latency(cfg: Config, tenants: Tenants, workdir: Path, gen: LoadGenerator) -> list[dict[str, Any]]:
    """Commands and Assign-me clicks over Socket Mode: the bot against the bare app, per level.

    The envelopes are sent and timed by the load generator (``gen``), on links named "bot"
    and "bare". The bot's Slack and the tenants stay in this process, with everything the
    earlier sections recorded, so the heap so far is frozen out of collection first: the
    garbage collector's pauses would slow their answers to the bot's worker.
    """
    gc.collect()
    gc.freeze()
    links = await gen.socket_links()
    bot_slack = await SocketSlack(app_token="xapp-bench-bot", link_url=f"{links}bot").start()
    bare_slack = await SocketSlack(app_token="xapp-bench-bare", link_url=f"{links}bare").start()
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
        pids = [os.getpid(), gen.proc.pid, *bot.pids, *bare.pids]
        sent = 0

        def envelopes(batch: list[tuple[str, Json]]) -> list[Json]:
            nonlocal sent
            out = []
            for kind, payload in batch:
                sent += 1
                out.append(payloads.socket_envelope(kind, payload, envelope_id=f"env-{sent}"))
            return out

        rows: list[dict[str, Any]] = []
        for level in cfg.ack_levels:
            count = max(cfg.ack_count(level) // 2, 4)
            for kind in ("command", "button"):
                bodies = [envelope_payload(kind, b) for b in await load.bodies(kind, count + 10)]
                latencies: dict[str, list[float]] = {"bot": [], "bare": []}
                for name in ("bot", "bare"):
                    await quiesce(pids)
                    await gen.fire_envelopes(name, envelopes(bodies[:10]), level)  # warm-up
                for turn, chunk in enumerate(split(bodies[10:], cfg.ack_rounds)):
                    # Alternate who goes first, as over HTTP, so drift on the shared host hits both alike.
                    for name in ("bot", "bare") if turn % 2 == 0 else ("bare", "bot"):
                        await quiesce(pids)
                        latencies[name] += await gen.fire_envelopes(name, envelopes(chunk), level)
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
