"""The benchmark's processes (the bot, the bare app, the load generator), its probes and statistics."""

from __future__ import annotations

import asyncio
import json
import math
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import httpx

from bench.env import REPO, SIGNING_SECRET, Tenants
from bot.sandbox import payloads

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_ticks(pid: int) -> int:
    """User + system CPU time of ``pid`` in clock ticks (/proc/<pid>/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def memory_mb(pid: int) -> dict[str, float]:
    """Resident set size now (VmRSS) and at its peak (VmHWM), in MB."""
    out: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = round(int(value.split()[0]) / 1024, 1)
    return {"rss_mb": out.get("VmRSS", 0.0), "peak_rss_mb": out.get("VmHWM", 0.0)}


def children(pid: int) -> list[int]:
    """The child processes of ``pid`` (the bot's worker process), from /proc."""
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def family_memory_mb(pid: int) -> dict[str, float]:
    """``memory_mb`` of ``pid`` and, per process, of its children (the largest is what counts)."""
    procs = {"web": memory_mb(pid)} | {f"worker{n}": memory_mb(c) for n, c in enumerate(children(pid))}
    out: dict[str, Any] = {
        "rss_mb": max(m["rss_mb"] for m in procs.values()),
        "peak_rss_mb": max(m["peak_rss_mb"] for m in procs.values()),
    }
    if len(procs) > 1:
        out["per_process"] = procs
    return out


class JobsDb(Protocol):
    """A bot database other than a SQLite file (``bench.pg.PgJobs``): the same two reads."""

    def job_row(self, *, key: str | None = None, job_id: str | None = None) -> dict[str, Any] | None: ...

    def item_states(self, job_id: str) -> dict[str, int]: ...


@dataclass
class Server:
    """A server process on 127.0.0.1 (the bot or the bare app)."""

    name: str
    proc: asyncio.subprocess.Process
    port: int
    log: Path
    startup_s: float = 0.0
    db: Path | JobsDb | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def pids(self) -> list[int]:
        """This server's process and its children (the bot's worker), for CPU quiescence."""
        return [self.pid, *children(self.pid)]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def events(self) -> str:
        return f"{self.url}/slack/events"

    async def stop(self) -> None:
        """SIGTERM (the bot drains its workers), then SIGKILL after 15 s."""
        if self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 15)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


async def start_server(
    name: str,
    args: Sequence[str],
    *,
    env: dict[str, str],
    workdir: Path,
    db: Path | JobsDb | None = None,
    timeout: float = 30.0,
) -> Server:
    """Start a server and wait (bounded) until GET /readyz answers 200; time it from the spawn."""
    port = free_port()
    log = workdir / f"{name}.log"
    started = time.perf_counter()
    with log.open("ab") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            *args,
            "--port",
            str(port),
            env=env,
            cwd=workdir,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Server(name=name, proc=proc, port=port, log=log, db=db)
    async with httpx.AsyncClient(timeout=1.0) as client:
        while time.perf_counter() - started < timeout:
            if proc.returncode is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}: {log.read_text()[-2000:]}")
            try:
                if (await client.get(f"{server.url}/readyz")).status_code == 200:
                    server.startup_s = time.perf_counter() - started
                    return server
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.01)
    await server.stop()
    raise RuntimeError(f"{name} was not ready within {timeout} s: {log.read_text()[-2000:]}")


async def start_bot(tenants: Tenants, workdir: Path, name: str, *, xpanse_rate: float) -> Server:
    db = workdir / f"{name}.db"
    env = tenants.bot_env(db=db, xpanse_rate=xpanse_rate)
    return await start_server(name, ["-m", "bot", "serve", "--host", "127.0.0.1"], env=env, workdir=workdir, db=db)


async def quiesce(pids: Sequence[int], *, window: float = 0.2, quiet_ticks: int = 2, timeout: float = 30.0) -> float:
    """Wait (bounded) until ``pids`` together used under ``quiet_ticks`` of CPU in one window.

    The bot keeps working after it acks (jobs, reports); each measured round starts
    only once every server has finished the previous one's work.
    """
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        before = sum(cpu_ticks(p) for p in pids)
        await asyncio.sleep(window)
        if sum(cpu_ticks(p) for p in pids) - before < quiet_ticks:
            break
    return time.monotonic() - started


class LoadGenerator:
    """The ``bench.loadgen`` process, driven over its stdin/stdout."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def start(cls) -> LoadGenerator:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.loadgen",
            cwd=REPO,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=256 * 1024 * 1024,
        )
        return cls(proc)

    async def fire(self, url: str, bodies: list[str], concurrency: int) -> dict[str, Any]:
        return await self._ask({"url": url, "secret": SIGNING_SECRET, "bodies": bodies, "concurrency": concurrency})

    async def socket_links(self) -> str:
        """The ``ws://`` URL prefix of the generator's Socket Mode links (append the link's name)."""
        return str((await self._ask({"op": "socket_links"}))["url"])

    async def fire_envelopes(self, link: str, envelopes: list[dict[str, Any]], concurrency: int) -> list[float]:
        """Send ``envelopes`` on link ``link`` with ``concurrency`` in flight; each one's ms to its ack."""
        result = await self._ask({"op": "socket", "link": link, "envelopes": envelopes, "concurrency": concurrency})
        return [float(x) for x in result["latencies_ms"]]

    async def _ask(self, job: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write((json.dumps(job) + "\n").encode())
        await self.proc.stdin.drain()
        line = await asyncio.wait_for(self.proc.stdout.readline(), 300)
        if not line:
            raise RuntimeError("the load generator died")
        result: dict[str, Any] = json.loads(line)
        return result

    async def stop(self) -> None:
        if self.proc.returncode is None:
            assert self.proc.stdin is not None
            self.proc.stdin.write(b"\n")
            await self.proc.stdin.drain()
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()


_HTTP: dict[str, httpx.AsyncClient] = {}


async def send(server: Server, body: str) -> httpx.Response:
    """One signed request from this process (for the flows; the timed load uses the generator)."""
    headers = payloads.signature_headers(body, SIGNING_SECRET)
    # One client for the run: building an httpx client (its TLS context) costs tens of ms.
    client = _HTTP.get("client")
    if client is None or client.is_closed:
        client = _HTTP["client"] = httpx.AsyncClient(timeout=10)
    return await client.post(server.events, content=body, headers=headers)


async def close_http() -> None:
    """Close the client ``send`` keeps for the run, if it made one."""
    if "client" in _HTTP:
        await _HTTP.pop("client").aclose()


# ---- the bot's jobs, read from its SQLite file (or through a JobsDb) --------------------------------


def job_row(db: Path | JobsDb, *, key: str | None = None, job_id: str | None = None) -> dict[str, Any] | None:
    if not isinstance(db, Path):
        return db.job_row(key=key, job_id=job_id)
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
        conn.row_factory = sqlite3.Row
        where, arg = ("interaction_key = ?", key) if key is not None else ("id = ?", job_id)
        row = conn.execute(f"SELECT id, state, card_ts, reported_at FROM jobs WHERE {where}", (arg,)).fetchone()
        return dict(row) if row else None


def item_states(db: Path | JobsDb, job_id: str) -> dict[str, int]:
    if not isinstance(db, Path):
        return db.item_states(job_id)
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
        rows = conn.execute("SELECT state, COUNT(*) FROM job_items WHERE job_id = ? GROUP BY state", (job_id,))
        return {str(state): int(n) for state, n in rows}


async def wait_job(
    db: Path | JobsDb,
    done: Callable[[dict[str, Any]], bool],
    *,
    timeout: float,
    key: str | None = None,
    job_id: str | None = None,
    poll: float = 0.02,
) -> dict[str, Any]:
    """Poll the bot's store (bounded) until the job exists and ``done(row)`` holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = job_row(db, key=key, job_id=job_id)
        if row is not None and done(row):
            return row
        await asyncio.sleep(poll)
    raise TimeoutError(f"job {key or job_id} not done within {timeout} s: {job_row(db, key=key, job_id=job_id)}")


TERMINAL = {"done", "partial", "failed", "cancelled"}


def reported(row: dict[str, Any]) -> bool:
    return row["state"] in TERMINAL and row["reported_at"] is not None


# ---- statistics --------------------------------------------------------------------------------


def pct(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))]


def describe(values: Sequence[float]) -> dict[str, float]:
    return {
        "p50_ms": round(pct(values, 50), 2),
        "p99_ms": round(pct(values, 99), 2),
        "max_ms": round(max(values), 2),
        "mean_ms": round(statistics.fmean(values), 2),
    }


def split(items: list[T], parts: int) -> list[list[T]]:
    size = math.ceil(len(items) / parts)
    return [items[i : i + size] for i in range(0, len(items), size)]
