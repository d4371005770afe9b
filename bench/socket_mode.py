"""Socket Mode ack latency: envelopes pushed over a WebSocket, timed until the app's ack.

``SocketSlack`` is the sandbox Slack Web API plus ``apps.connections.open`` (with the app
token), which answers the ``ws://`` URL of a link in the load generator's process
(``bench.loadgen``): that end says hello, sends the envelopes and times each one's ack,
away from the sandbox tenants in this process, which serve the bot's own calls while
the envelopes are timed. The bot (``serve`` with ``SLACK_APP_TOKEN``), the bare app
(``bench.bare_app --socket``) and a second copy of the bare app (the control, for the A/A
ratio) each get their own ``SocketSlack`` and link, and the same payloads.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from bench.acks import AckLoad
from bench.env import ACK_RATIO_MAX, ALICE, BOB, EMAILS, LOADER, NAMES, SLACK_TOKEN, Config, Requests, Tenants
from bench.procs import LoadGenerator, Server, close_http, describe, quiesce, split, start_server
from bot.sandbox import payloads
from bot.sandbox.slack import SlackSandbox

Json = dict[str, Any]
BOT_ARGV = ["-m", "bot", "serve", "--host", "127.0.0.1"]
BARE_ARGV = ["-m", "bench.bare_app", "--socket"]


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

    The envelopes are sent and timed by the load generator (``gen``), on links named "bot",
    "bare" and "control" (a second bare app: control p99 / bare p99 is the row's A/A ratio,
    as over HTTP). The bot's Slack and the tenants stay in this process, with everything the
    earlier sections recorded, so the heap so far is frozen out of collection first: the
    garbage collector's pauses would slow their answers to the bot's worker.
    """
    gc.collect()
    gc.freeze()
    links = await gen.socket_links()
    names = ("bot", "bare", "control")
    slacks: dict[str, SocketSlack] = {}
    servers: list[Server] = []
    try:
        for name in names:
            slacks[name] = await SocketSlack(app_token=f"xapp-bench-{name}", link_url=f"{links}{name}").start()
        env = tenants.bot_env(db=workdir / "socket.db", xpanse_rate=cfg.xpanse_rate)
        for name in names:
            slack = slacks[name]
            link_env = env | {"SLACK_API_URL": slack.api_url, "SLACK_APP_TOKEN": slack.app_token}
            argv = BOT_ARGV if name == "bot" else BARE_ARGV
            servers.append(await start_server(f"{name}-socket", argv, env=link_env, workdir=workdir))
        # The cards the clicks are on live in the bot's Slack; the platforms are the shared tenants.
        load = AckLoad(dataclasses.replace(tenants, slack=slacks["bot"]), Requests(slacks["bot"]))
        pids = [os.getpid(), gen.proc.pid, *(p for server in servers for p in server.pids)]
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
                latencies: dict[str, list[float]] = {name: [] for name in names}
                for name in names:
                    await quiesce(pids)
                    await gen.fire_envelopes(name, envelopes(bodies[:10]), level)  # warm-up
                for turn, chunk in enumerate(split(bodies[10:], cfg.ack_rounds)):
                    # Rotate who goes first, as over HTTP, so drift on the shared host hits all alike.
                    for name in names[turn % len(names) :] + names[: turn % len(names)]:
                        await quiesce(pids)
                        latencies[name] += await gen.fire_envelopes(name, envelopes(chunk), level)
                b, r, c = (describe(latencies[name]) for name in names)
                rows.append(
                    {
                        "kind": kind,
                        "concurrency": level,
                        "requests": count,
                        "bot": b,
                        "bare": r,
                        "control": c,
                        "ratio_p50": round(b["p50_ms"] / r["p50_ms"], 2),
                        "ratio_p99": round(b["p99_ms"] / r["p99_ms"], 2),
                        "control_ratio_p50": round(c["p50_ms"] / r["p50_ms"], 2),
                        "control_ratio_p99": round(c["p99_ms"] / r["p99_ms"], 2),
                    }
                )
                print(
                    f"  socket {kind:7} x{level:<3} bot p50 {b['p50_ms']:7.2f} p99 {b['p99_ms']:7.2f} ms | "
                    f"bare p50 {r['p50_ms']:7.2f} p99 {r['p99_ms']:7.2f} | "
                    f"A/A p99 ratio {rows[-1]['control_ratio_p99']:.2f}",
                    flush=True,
                )
        await quiesce(pids)
        return rows
    finally:
        for server in servers:
            await server.stop()
        for slack in slacks.values():
            await slack.stop()


async def socket_only(cfg: Config) -> list[dict[str, Any]]:
    """Section 1b alone: Socket Mode acks of the bot, the bare app and the control."""
    tenants = await Tenants().start()
    gen: LoadGenerator | None = None
    try:
        with tempfile.TemporaryDirectory(prefix="triage-bench-socket-") as tmp:
            gen = await LoadGenerator.start()
            rows = await socket_ack_latency(cfg, tenants, Path(tmp), gen)
    finally:
        if gen is not None:
            await gen.stop()
        await close_http()
        await tenants.stop()
    for row in rows:
        met = row["ratio_p99"] <= ACK_RATIO_MAX
        print(
            f"   {'met   ' if met else 'MISSED'}  socket {row['kind']} x{row['concurrency']}: bot p99 / bare p99: "
            f"{row['ratio_p99']} (limit {ACK_RATIO_MAX}; A/A {row['control_ratio_p99']})"
        )
    return rows
