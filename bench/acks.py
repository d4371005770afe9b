"""The ack flows: latency of the bot against the bare Bolt app and the floor, and modal opening."""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bench.env import (
    CHANNEL,
    LOADER,
    Config,
    Requests,
    Tenants,
    button_value,
)
from bench.procs import LoadGenerator, Server, describe, quiesce, send, split
from bot.models import ItemState, Platform, Target
from bot.slack import blocks
from bot.slack.ids import ActionId

# ---- 1. ack latency ------------------------------------------------------------------------------


class AckLoad:
    """Unique, real-shaped work for the bot: an assign command or an Assign-me click per request."""

    def __init__(self, tenants: Tenants, requests: Requests) -> None:
        self.tenants = tenants
        self.requests = requests
        self.n = 0
        self.web = AsyncWebClient(token=tenants.slack.token, base_url=tenants.slack.api_url)

    def finding(self) -> str:
        self.n += 1
        finding_id = f"ackload{self.n:06d}AbCdEf"
        self.tenants.dd.add_finding(finding_id, title=f"Load finding {self.n}", severity="high")
        return finding_id

    async def bodies(self, kind: str, count: int, *, with_triggers: bool = False) -> list[Any]:
        """``count`` bodies: ``command`` (assign), ``button`` (Assign me) or ``modal`` (Assign…, opens
        a modal); with ``with_triggers``, (trigger_id, body) pairs."""
        if kind == "command":
            return [self.requests.command(f"assign dd:{self.finding()} to me", user=LOADER) for _ in range(count)]
        action = ActionId.ASSIGN_OPEN if kind == "modal" else ActionId.ASSIGN_ME
        # A click carries the card it was on, as Slack sends it; the cards are really posted first
        # so the bot's card update after the job finds them.
        sem = asyncio.Semaphore(16)

        async def card() -> Any:
            state = ItemState(
                target=Target(platform=Platform.DATADOG, id=self.finding()),
                title="Load finding",
                severity="high",
                status="open",
            )
            card_blocks = blocks.alert_card(state, assignee_mentions=[])
            async with sem:
                resp = await self.web.chat_postMessage(
                    channel=CHANNEL, text=blocks.alert_card_text(state), blocks=card_blocks
                )
            message = self.tenants.slack.message(CHANNEL, str(resp["ts"]))
            assert message is not None
            trigger = self.requests.trigger()
            body = self.requests.click(
                action, button_value(message, action), user=LOADER, message=message, trigger_id=trigger
            )
            return (trigger, body) if with_triggers else body

        return list(await asyncio.gather(*(card() for _ in range(count))))


async def ack_latency(
    cfg: Config,
    tenants: Tenants,
    bot: Server,
    bare: Server,
    floor: Server,
    gen: LoadGenerator,
    requests: Requests,
    *,
    kinds: Sequence[str] = ("command", "button", "modal"),
    control: Server | None = None,
) -> list[dict[str, Any]]:
    """Ack latency of the bot, the bare app (Bolt defaults) and the floor, per kind and level, in one run.

    ``control`` is a second copy of the bare app, measured in the same rotation: its ratio to the bare
    app (an A/A comparison) is how far two identical apps differ in that row on this machine.
    """
    load = AckLoad(tenants, requests)
    servers: tuple[Server, ...] = (bot, bare, floor) + ((control,) if control is not None else ())
    pids = [os.getpid(), *(p for s in servers for p in s.pids)]
    rows: list[dict[str, Any]] = []
    for level in cfg.ack_levels:
        for kind in kinds:
            warm = max(2 * level, 10)
            bodies = await load.bodies(kind, warm + cfg.ack_count(level))
            warmup, measured = bodies[:warm], bodies[warm:]
            for server in servers:  # connections, Bolt's first auth.test, SQLite pages
                await quiesce(pids)
                await gen.fire(server.events, warmup, level)
            latencies: dict[str, list[float]] = {s.name: [] for s in servers}
            statuses: dict[str, Counter[str]] = {s.name: Counter() for s in servers}
            acks: Counter[str] = Counter()
            for r, chunk in enumerate(split(measured, cfg.ack_rounds)):
                # Rotate who goes first so drift on the shared machine hits all alike.
                for server in servers[r % len(servers) :] + servers[: r % len(servers)]:
                    await quiesce(pids)
                    result = await gen.fire(server.events, chunk, level)
                    latencies[server.name] += result["latencies_ms"]
                    statuses[server.name].update(result["statuses"])
                    if server is bot:
                        acks.update(result["acks"])
            await quiesce(pids)
            bot_s, bare_s, floor_s = (describe(latencies[s.name]) for s in (bot, bare, floor))
            row: dict[str, Any] = {
                "kind": kind,
                "concurrency": level,
                "requests": len(latencies["bot"]),
                "bot": bot_s,
                "bare": bare_s,
                "floor": floor_s,
                "ratio_p50": round(bot_s["p50_ms"] / bare_s["p50_ms"], 2),
                "ratio_p99": round(bot_s["p99_ms"] / bare_s["p99_ms"], 2),
                "floor_ratio_p99": round(bot_s["p99_ms"] / floor_s["p99_ms"], 2),
                "statuses": {k: dict(v) for k, v in statuses.items()},
                "bot_acks": dict(acks),
            }
            line = (
                f"  ack {kind:7} x{level:<3} bot p50 {bot_s['p50_ms']:7.2f} p99 {bot_s['p99_ms']:7.2f} ms | "
                f"bare p50 {bare_s['p50_ms']:7.2f} p99 {bare_s['p99_ms']:7.2f} | "
                f"floor p50 {floor_s['p50_ms']:7.2f} p99 {floor_s['p99_ms']:7.2f}"
            )
            if control is not None:
                control_s = describe(latencies[control.name])
                row["control"] = control_s
                row["control_ratio_p50"] = round(control_s["p50_ms"] / bare_s["p50_ms"], 2)
                row["control_ratio_p99"] = round(control_s["p99_ms"] / bare_s["p99_ms"], 2)
                line += f" | A/A p99 ratio {row['control_ratio_p99']:.2f}"
            rows.append(row)
            print(line, flush=True)
    return rows


async def modal_open(tenants: Tenants, bot: Server, requests: Requests, *, count: int, level: int) -> dict[str, Any]:
    """Assign… clicks (``level`` at a time): time from sending each to Slack receiving its views.open."""
    load = AckLoad(tenants, requests)
    bodies = await load.bodies("modal", count, with_triggers=True)
    sem = asyncio.Semaphore(level)
    opened: list[float] = []
    acked: list[float] = []
    calls = tenants.slack.calls
    seen: set[Any] = set()  # the trigger ids of the views.open calls read so far
    read = len(calls)

    def views_opened(trigger: str) -> bool:
        """Read the calls received since the last look (not all of them, at every poll of every click)."""
        nonlocal read
        seen.update(c.args.get("trigger_id") for c in calls[read:] if c.method == "views.open")
        read = len(calls)
        return trigger in seen

    async def one(trigger: str, body: str) -> None:
        async with sem:
            began = time.perf_counter()
            resp = await send(bot, body)
            acked.append((time.perf_counter() - began) * 1000)
            assert resp.status_code == 200, resp.text
            while not views_opened(trigger):
                if time.perf_counter() - began > 10:
                    raise AssertionError(f"no views.open for {trigger} within 10 s")
                await asyncio.sleep(0.002)
            opened.append((time.perf_counter() - began) * 1000)

    await asyncio.gather(*(one(t, b) for t, b in bodies))
    return {"requests": count, "concurrency": level, "ack": describe(acked), "views_open": describe(opened)}
