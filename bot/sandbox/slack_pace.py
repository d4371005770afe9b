"""Slack's per-channel pace for chat.postMessage, and conversations.history, for the sandbox.

Slack allows about one message a second per channel with short bursts; over that it
answers HTTP 429 with ``Retry-After`` (whole seconds). ``ChannelPace`` is that limit as a
token bucket per channel, and it records every 429 it gave and every call that arrived
inside a channel's ``Retry-After`` (a client that does not honour it).
"""

from __future__ import annotations

import math
import time
from typing import Any

Json = dict[str, Any]


class ChannelPace:
    """A token bucket per channel: ``rate`` messages a second, ``burst`` at once."""

    def __init__(self, rate: float | None = None, burst: int = 1) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, tuple[float, float]] = {}  # channel -> (tokens, at)
        self.blocked_until: dict[str, float] = {}
        self.rate_limited: list[tuple[str, int]] = []  # (channel, Retry-After) of each 429
        self.early_calls: list[tuple[str, float]] = []  # (channel, seconds early) inside a Retry-After
        self.accepted: dict[str, int] = {}

    def take(self, channel: str) -> int | None:
        """None when ``channel`` may post now (a token is spent), else the Retry-After to answer."""
        now = time.monotonic()
        rate, burst = float(self.rate or 0), max(self.burst, 1)
        blocked = self.blocked_until.get(channel, 0.0)
        if now < blocked:
            self.early_calls.append((channel, blocked - now))
        tokens, at = self._buckets.get(channel, (float(burst), now))
        tokens = min(float(burst), tokens + (now - at) * rate)
        if tokens >= 1 and now >= blocked:
            self._buckets[channel] = (tokens - 1, now)
            self.accepted[channel] = self.accepted.get(channel, 0) + 1
            return None
        self._buckets[channel] = (tokens, now)
        retry_after = max(1, math.ceil((1 - tokens) / rate)) if tokens < 1 and rate else 1
        self.blocked_until[channel] = max(blocked, now + retry_after)
        self.rate_limited.append((channel, retry_after))
        return retry_after


def history(messages: list[Json], args: Json) -> Json:
    """conversations.history over one channel's messages: newest first, from ``oldest``,
    paged by ``cursor``; ``metadata`` only with ``include_all_metadata``."""
    oldest = float(args.get("oldest") or 0)
    limit = min(int(args.get("limit") or 100), 999)
    start = int(args.get("cursor") or 0)
    found = [m for m in reversed(messages) if float(m["ts"]) >= oldest and "thread_ts" not in m]
    page = found[start : start + limit]
    with_meta = str(args.get("include_all_metadata", "")).lower() in ("1", "true")
    more = start + limit < len(found)
    return {
        "ok": True,
        "messages": [dict(m) if with_meta else {k: v for k, v in m.items() if k != "metadata"} for m in page],
        "has_more": more,
        "response_metadata": {"next_cursor": str(start + limit) if more else ""},
    }
