"""Benchmark section 5: an alert storm, timed until every alert is represented in Slack.

A fresh ``python -m bot serve`` gets ``n`` webhook alerts at once (batches of 50, all
in flight together) for one channel; the sandbox Slack enforces Slack's
``chat.postMessage`` pace for a channel (one message a second, 429 + Retry-After). The
clock runs from the first webhook request until every alert is a card or a digest row.
The bound is what Slack's pace allows for the messages the bot needed: a first message
at once, then one a second (``(messages - 1) / rate``); the floor is the fewest messages
possible, ``ceil(n / 99)`` full digests.
"""

from __future__ import annotations

import asyncio
import math
import time
from pathlib import Path
from typing import Any

import httpx

from bench.env import Tenants
from bench.procs import start_server
from bot.core.intake import DIGEST_ROWS
from bot.sandbox.slack_pace import ChannelPace
from bot.sandbox.storm import represented, send_storm, storm_alerts

CHANNEL = "CSTORM"
TOKEN = "bench-webhook-token-0123"
SLACK_RATE = 1.0  # chat.postMessage per second per channel, as Slack documents


async def alert_storm(tenants: Tenants, workdir: Path, *, n: int, timeout_s: float) -> dict[str, Any]:
    """Run the storm; the row for the report."""
    slack = tenants.slack
    saved = slack.pace
    slack.pace = ChannelPace(rate=SLACK_RATE, burst=1)
    db = workdir / "storm.db"
    env = tenants.bot_env(db=db, xpanse_rate=5.0) | {
        "TRIAGE_WEBHOOK_TOKEN": TOKEN,
        "TRIAGE_ALERT_CHANNEL": CHANNEL,
        "TRIAGE_POST_INTERVAL": str(1 / SLACK_RATE),
    }
    bot = await start_server(
        "bot-storm", ["-m", "bot", "serve", "--host", "127.0.0.1"], env=env, workdir=workdir, db=db
    )
    try:
        alerts = storm_alerts(n, seed=11, start=500_000)
        keys = [a.key for a in alerts]
        started = time.monotonic()
        async with httpx.AsyncClient(timeout=30) as http:
            answers = await send_storm(http, bot.url, TOKEN, alerts)
        accepted_s = time.monotonic() - started
        statuses = sorted({r.status_code for r in answers})
        deadline = started + timeout_s
        shown = represented(slack, [CHANNEL])
        while shown.lost(keys) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            shown = represented(slack, [CHANNEL])
        wall = time.monotonic() - started
        messages = shown.cards + shown.digests
        bound = max(messages - 1, 0) / SLACK_RATE
        return {
            "alerts": n,
            "statuses": statuses,
            "accepted_s": round(accepted_s, 3),
            "represented_s": round(wall, 2),
            "cards": shown.cards,
            "digests": shown.digests,
            "messages": messages,
            "min_messages": math.ceil(n / DIGEST_ROWS),
            "bound_s": round(bound, 2),
            "bound_formula": f"({messages} messages - 1) / {SLACK_RATE:g} msg/s",
            "ratio": round(wall / bound, 2) if bound else None,
            "rate_limited_429": len(slack.pace.rate_limited),
            "calls_inside_retry_after": len(slack.pace.early_calls),
            "lost": len(shown.lost(keys)),
            "duplicated": len(shown.duplicated()),
        }
    finally:
        await bot.stop()
        slack.pace = saved
