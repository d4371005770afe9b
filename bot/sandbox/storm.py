"""An alert storm for the sandbox: many webhook alerts at once, and what Slack shows for them.

Used by the shell's ``storm N``, the storm tests and the benchmark. ``storm_alerts`` makes
``n`` distinct alerts across the three platforms; ``send_storm`` posts them to the bot's
``/alerts/{platform}`` webhook in batches of 50 (the webhook's limit), all batches at
once; ``represented`` counts how often each alert appears in the sandbox Slack: as a card
(the poster's message metadata names it) or as a row of a digest's table.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from bot.sandbox.slack import SlackSandbox

SEVERITIES = ("critical", "high", "medium", "low")
BATCH = 50


@dataclass(frozen=True)
class StormAlert:
    platform: str  # datadog | kibana | xpanse
    key: str  # the target key the bot shows (dd:…, kibana:…, xpanse:…)
    body: dict[str, Any]


def storm_alerts(n: int, *, seed: int = 7, start: int = 1) -> list[StormAlert]:
    """``n`` distinct alerts, the platforms interleaved, with varied severities and titles."""
    rng = random.Random(seed)
    alerts = []
    for i in range(start, start + n):
        severity = rng.choice(SEVERITIES)
        kind = i % 3
        if kind == 0:
            item = f"storm-dd-{i:06d}"
            alerts.append(
                StormAlert("datadog", f"dd:{item}", {"id": item, "title": f"Public bucket {i}", "severity": severity})
            )
        elif kind == 1:
            item = f"storm-kb-{i:06d}"
            body = {"id": item, "title": f"Brute force from 10.0.{i % 250}.{i % 7}", "severity": severity}
            alerts.append(StormAlert("kibana", f"kibana:{item}", body))
        else:
            item = str(900_000 + i)
            body = {"incident_id": item, "description": f"Exposed RDP on host {i}", "severity": severity}
            alerts.append(StormAlert("xpanse", f"xpanse:{item}", body))
    return alerts


async def send_storm(
    http: httpx.AsyncClient, base_url: str, token: str, alerts: Sequence[StormAlert], *, batch: int = BATCH
) -> list[httpx.Response]:
    """POST every alert, ``batch`` per request and all requests at once; the answers in order."""
    requests = []
    for platform in ("datadog", "kibana", "xpanse"):
        mine = [a for a in alerts if a.platform == platform]
        for start in range(0, len(mine), batch):
            body = json.dumps({"alerts": [a.body for a in mine[start : start + batch]]})
            requests.append(
                http.post(
                    f"{base_url}/alerts/{platform}",
                    content=body,
                    headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
                )
            )
    return list(await asyncio.gather(*requests))


def _digest_keys(blocks: Iterable[dict[str, Any]]) -> list[str]:
    for block in blocks:
        if block.get("type") == "table":
            return [str(row[-1].get("text", "")) for row in (block.get("rows") or [])[1:]]
    return []


@dataclass
class Representation:
    """How the storm shows in Slack: per alert key, how many cards and digest rows name it."""

    seen: Counter[str]
    cards: int
    digests: int

    def lost(self, keys: Iterable[str]) -> list[str]:
        return [k for k in keys if not self.seen[k]]

    def duplicated(self) -> list[str]:
        return [k for k, n in self.seen.items() if n > 1]


def represented(slack: SlackSandbox, channels: Iterable[str]) -> Representation:
    """Every alert card and digest row the bot posted in ``channels`` (thread replies excluded)."""
    seen: Counter[str] = Counter()
    cards = digests = 0
    for channel in channels:
        for message in slack.messages_in(channel):
            if message.get("thread_ts"):
                continue
            meta = message.get("metadata") or {}
            if isinstance(meta, str):
                meta = json.loads(meta)
            if meta.get("event_type") == "triage_alert":
                seen[str((meta.get("event_payload") or {}).get("key"))] += 1
                cards += 1
            elif meta.get("event_type") == "triage_digest":
                seen.update(_digest_keys(message.get("blocks") or []))
                digests += 1
    return Representation(seen, cards, digests)
