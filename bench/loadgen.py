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

It is also the Socket Mode end of the link for the apps under test, so that the
envelopes are timed away from the sandbox tenants (which serve the bot's own calls):

    → {"op": "socket_links"}
    ← {"url": "ws://127.0.0.1:<port>/link/"}    (an app whose apps.connections.open names
                                                  <url><name> connects to link <name>)
    → {"op": "socket", "link": "bot", "envelopes": [...], "concurrency": 10}
    ← {"latencies_ms": [...], "wall_s": 0.4}

An envelope's latency runs from just before it is sent on the WebSocket to its ack arriving.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter
from typing import Any

import aiohttp
from aiohttp import WSMsgType, web

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


class SocketLinks:
    """The Socket Mode links the apps connect to, one per name, timing each envelope's ack."""

    def __init__(self) -> None:
        self.runner: web.AppRunner | None = None
        self.port = 0
        self.links: dict[str, web.WebSocketResponse] = {}
        self.connected: dict[str, asyncio.Event] = {}
        self.waiting: dict[str, asyncio.Future[float]] = {}

    async def start(self) -> str:
        if self.runner is None:
            app = web.Application()
            app.router.add_get("/link/{name}", self._link)
            self.runner = web.AppRunner(app, access_log=None)
            await self.runner.setup()
            site = web.TCPSite(self.runner, "127.0.0.1", 0)
            await site.start()
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"ws://127.0.0.1:{self.port}/link/"

    def _event(self, name: str) -> asyncio.Event:
        return self.connected.setdefault(name, asyncio.Event())

    async def _link(self, request: web.Request) -> web.WebSocketResponse:
        name = request.match_info["name"]
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        await ws.send_json({"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A111"}})
        self.links[name] = ws
        self._event(name).set()
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                waiter = self.waiting.pop(json.loads(msg.data).get("envelope_id"), None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(time.perf_counter())
        return ws

    async def fire(self, *, link: str, envelopes: list[dict[str, Any]], concurrency: int) -> dict[str, Any]:
        await asyncio.wait_for(self._event(link).wait(), 30)
        ws = self.links[link]
        sem = asyncio.Semaphore(max(1, concurrency))
        loop = asyncio.get_running_loop()

        async def one(envelope: dict[str, Any]) -> float:
            async with sem:
                waiter: asyncio.Future[float] = loop.create_future()
                self.waiting[envelope["envelope_id"]] = waiter
                sent = time.perf_counter()
                await ws.send_json(envelope)
                acked = await asyncio.wait_for(waiter, 10)
                return (acked - sent) * 1000

        started = time.perf_counter()
        latencies = await asyncio.gather(*(one(e) for e in envelopes))
        return {"latencies_ms": list(latencies), "wall_s": time.perf_counter() - started}

    async def close(self) -> None:
        for ws in self.links.values():
            await ws.close()
        if self.runner is not None:
            await self.runner.cleanup()


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
    links = SocketLinks()
    loop = asyncio.get_running_loop()
    try:
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line.strip():
                break
            job = json.loads(line)
            op = job.get("op", "http")
            result: dict[str, Any]
            if op == "socket_links":
                result = {"url": await links.start()}
            elif op == "socket":
                result = await links.fire(
                    link=job["link"], envelopes=job["envelopes"], concurrency=int(job["concurrency"])
                )
            else:
                result = await sender.batch(
                    url=job["url"], secret=job["secret"], bodies=job["bodies"], concurrency=int(job["concurrency"])
                )
            sys.stdout.write(json.dumps(result) + "\n")
            sys.stdout.flush()
    finally:
        await links.close()
        await sender.close()


if __name__ == "__main__":
    asyncio.run(main())
