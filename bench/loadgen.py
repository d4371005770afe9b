"""The load generator: a separate process that sends signed Slack requests and times the acks.

It runs in its own process so that the client never competes with the server
for one event loop. The orchestrator (``bench.run``) talks to it over
stdin/stdout, one JSON object per line:

    → {"url": ..., "secret": ..., "bodies": [...], "concurrency": 50}
    ← {"latencies_ms": [...], "statuses": {"200": 300}, "acks": {"...": 300}, "wall_s": 1.2}

Each body is signed just before it is sent (Slack's v0 scheme, ``bot.sandbox.payloads``), ``concurrency``
closed-loop senders share one keep-alive connection pool per URL, and the
latency of a request runs from just before the POST to the last byte of the
answer. An empty line or EOF ends the process.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter
from typing import Any

import aiohttp

from bot.sandbox.payloads import signature_headers

MAX_CONNECTIONS = 64


class Sender:
    """Keep-alive sessions per server, reused across batches so no batch pays for connects."""

    def __init__(self) -> None:
        self.sessions: dict[str, aiohttp.ClientSession] = {}

    def session(self, url: str) -> aiohttp.ClientSession:
        if url not in self.sessions:
            self.sessions[url] = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=MAX_CONNECTIONS),
                timeout=aiohttp.ClientTimeout(total=30),
            )
        return self.sessions[url]

    async def close(self) -> None:
        for session in self.sessions.values():
            await session.close()

    async def batch(self, *, url: str, secret: str, bodies: list[str], concurrency: int) -> dict[str, Any]:
        """Send every body with ``concurrency`` closed-loop senders; latencies in send order."""
        session = self.session(url)
        latencies: list[float] = [0.0] * len(bodies)
        statuses: Counter[str] = Counter()
        acks: Counter[str] = Counter()
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(len(bodies)):
            queue.put_nowait(i)

        async def sender() -> None:
            while not queue.empty():
                i = queue.get_nowait()
                body = bodies[i]
                headers = signature_headers(body, secret)
                started = time.perf_counter()
                try:
                    async with session.post(url, data=body.encode(), headers=headers) as resp:
                        text = await resp.text()
                        latencies[i] = (time.perf_counter() - started) * 1000
                        statuses[str(resp.status)] += 1
                        acks[_ack_kind(text)] += 1
                except (aiohttp.ClientError, TimeoutError) as exc:
                    latencies[i] = (time.perf_counter() - started) * 1000
                    statuses[type(exc).__name__] += 1

        started = time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(max(1, concurrency))))
        return {
            "latencies_ms": latencies,
            "statuses": dict(statuses),
            "acks": dict(acks),
            "wall_s": time.perf_counter() - started,
        }


def _ack_kind(text: str) -> str:
    """A short label of the ack body, so the caller can check what the server answered."""
    if not text:
        return "(empty)"
    try:
        data = json.loads(text)
    except ValueError:
        return text[:40]
    if isinstance(data, dict) and isinstance(data.get("text"), str):
        return str(data["text"])[:40]
    return text[:40]


async def main() -> None:
    sender = Sender()
    loop = asyncio.get_running_loop()
    try:
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line.strip():
                break
            job = json.loads(line)
            result = await sender.batch(
                url=job["url"], secret=job["secret"], bodies=job["bodies"], concurrency=int(job["concurrency"])
            )
            sys.stdout.write(json.dumps(result) + "\n")
            sys.stdout.flush()
    finally:
        await sender.close()


if __name__ == "__main__":
    asyncio.run(main())
