"""The benchmark: ack latency, platform calls per operation, handoff wall time, footprint.

Run from the repository root (about 3-4 minutes on 2 cores)::

    .venv/bin/python -m bench.run              # prints the table, writes bench/results.json
    .venv/bin/python -m bench.run --quick      # a seconds-long smoke run with tiny N

What runs where (all on 127.0.0.1, ephemeral ports):

* this process: the platform fakes (``tests/fakes``: Datadog, Kibana, Elasticsearch,
  Xpanse, Slack Web API) on one event loop, and the orchestration;
* the bot: ``python -m bot serve`` in HTTP mode, configured only through its
  environment like an operator would, with its own SQLite file;
* the baseline: ``python -m bench.bare_app``, a bare Bolt ``AsyncApp`` whose
  listeners only ack, served through the same slack_bolt aiohttp adapter path;
* the load generator: ``python -m bench.loadgen``, so the client never shares an
  event loop with a server.

The fakes used here skip their per-request OpenAPI validation (the tests keep it),
so that checking the contract does not eat the CPU being measured.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import math
import os
import platform as platform_mod
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # `python bench/run.py`: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from bot.models import ItemState, Platform, Target
from bot.platforms.kibana import MAX_BATCH as KIBANA_BATCH
from bot.slack import blocks
from bot.slack.ids import ActionId
from tests.fakes.datadog import DatadogFake, make_datadog_config
from tests.fakes.kibana import ElasticsearchFake, KibanaFake, make_kibana_config
from tests.fakes.slack import SlackFake
from tests.fakes.xpanse import XpanseFake, make_xpanse_config

REPO = Path(__file__).resolve().parents[1]
PAYLOADS = REPO.parent / "shared" / "slack" / "payloads"
RESULTS = REPO / "bench" / "results.json"
SIGNING_SECRET = "bench-signing-secret-8f742231b10e8888"
TEAM, CHANNEL = "T111", "C111"
ALICE, BOB, LOADER = "U0ALICE", "U0BOB", "U0LOAD"
DD_IDS = {
    ALICE: "11111111-1111-4111-8111-111111111111",
    BOB: "22222222-2222-4222-8222-222222222222",
    LOADER: "33333333-3333-4333-8333-333333333333",
}
KB_IDS = {
    ALICE: "u_alice0000000000000000000000000000000000000_0",
    BOB: "u_bob000000000000000000000000000000000000000_0",
    LOADER: "u_load00000000000000000000000000000000000000_0",
}
EMAILS = {ALICE: "alice@example.com", BOB: "bob@example.com", LOADER: "load@example.com"}
NAMES = {ALICE: ("Alice", "Analyst"), BOB: ("Bob", "Builder"), LOADER: ("Lou", "Load")}
SPACES = ("default", "secops")
DATADOG_CHUNK = 100  # findings per assignment request (the API's limit)
XPANSE_PAGE = 100  # incidents per get_incidents answer (the API's limit)
CLK_TCK = os.sysconf("SC_CLK_TCK")

# Targets from the issue.
ACK_RATIO_MAX = 1.5
ACK_P99_MAX_MS = 100.0
HANDOFF_RATIO_MAX = 1.2
RSS_MAX_MB = 100.0
STARTUP_MAX_S = 1.5


@dataclass
class Config:
    """How much to run; the defaults are the full benchmark, ``quick()`` the smoke run."""

    ack_requests: int = 300  # measured requests per app, kind and concurrency level
    ack_levels: tuple[int, ...] = (1, 10, 50)
    ack_rounds: int = 4  # bot and bare alternate this many times per level
    call_sizes: tuple[int, ...] = (1, 100, 101, 250)
    handoff: tuple[int, int, int] = (400, 400, 200)  # Datadog, Kibana, Xpanse items
    latency_s: float = 0.05
    xpanse_rate: float = 5.0
    startup_runs: int = 3
    job_timeout_s: float = 180.0

    @classmethod
    def quick(cls) -> Config:
        return cls(
            ack_requests=12,
            ack_levels=(4,),
            ack_rounds=2,
            call_sizes=(1, 3),
            handoff=(4, 4, 3),
            latency_s=0.01,
            xpanse_rate=20.0,
            startup_runs=1,
            job_timeout_s=30.0,
        )


# ---- the fakes ---------------------------------------------------------------------------------


class FastDatadog(DatadogFake):
    """The Datadog fake without its per-request OpenAPI check (the tests keep it)."""

    def _validate(self, *args: Any, **kwargs: Any) -> str | None:
        return None


class FastKibana(KibanaFake):
    """The Kibana fake without its per-request OpenAPI check (the tests keep it)."""

    def _validate(self, *args: Any, **kwargs: Any) -> str | None:
        return None


class FastXpanse(XpanseFake):
    """The Xpanse fake without its per-request OpenAPI check (the tests keep it)."""

    def _validate(self, *args: Any, **kwargs: Any) -> str | None:
        return None


@dataclass
class Fakes:
    """Every platform fake plus the Slack Web API fake, running in this process."""

    slack: SlackFake = field(default_factory=SlackFake)
    dd: FastDatadog = field(default_factory=FastDatadog)
    kibana: FastKibana = field(default_factory=FastKibana)
    es: ElasticsearchFake = field(default_factory=ElasticsearchFake)
    xpanse: FastXpanse = field(default_factory=FastXpanse)

    async def start(self) -> Fakes:
        for fake in (self.slack, self.dd, self.kibana, self.es, self.xpanse):
            await fake.start()
        for user in (ALICE, BOB, LOADER):
            first, last = NAMES[user]
            self.slack.add_user(user, email=EMAILS[user], real_name=f"{first} {last}")
            self.dd.add_user(DD_IDS[user], EMAILS[user], name=f"{first} {last}")
            self.es.add_profile(KB_IDS[user], email=EMAILS[user], username=first.lower())
            self.xpanse.add_user(EMAILS[user], first, last)
        return self

    async def stop(self) -> None:
        for fake in (self.slack, self.dd, self.kibana, self.es, self.xpanse):
            await fake.stop()

    def set_latency(self, seconds: float) -> None:
        for fake in (self.dd, self.kibana, self.xpanse):
            fake.latency = seconds

    def violations(self) -> list[str]:
        return [*self.dd.violations, *self.kibana.violations, *self.es.violations, *self.xpanse.violations]

    def bot_env(self, *, db: Path, xpanse_rate: float) -> dict[str, str]:
        """The bot's whole configuration, as environment variables aimed at the fakes."""
        dd = make_datadog_config(self.dd)
        kb = make_kibana_config(self.kibana, self.es)
        xp = make_xpanse_config(self.xpanse)
        assert kb.es_api_key is not None
        base = {k: v for k in ("PATH", "HOME", "LANG", "LC_ALL", "TZ") if (v := os.environ.get(k))}
        return base | {
            "PYTHONPATH": str(REPO),
            "SLACK_BOT_TOKEN": self.slack.token,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": self.slack.api_url,
            "DD_API_URL": self.dd.url,
            "DD_API_KEY": dd.api_key.get_secret_value(),
            "DD_APP_KEY": dd.app_key.get_secret_value(),
            "KIBANA_URL": self.kibana.url,
            "KIBANA_API_KEY": kb.api_key.get_secret_value(),
            "KIBANA_SPACES": ",".join(SPACES),
            "ELASTICSEARCH_URL": self.es.url,
            "ELASTICSEARCH_API_KEY": kb.es_api_key.get_secret_value(),
            "XPANSE_API_URL": self.xpanse.url,
            "XPANSE_API_KEY": xp.api_key.get_secret_value(),
            "XPANSE_API_KEY_ID": xp.api_key_id,
            "XPANSE_RATE_LIMIT": str(xpanse_rate),
            "TRIAGE_DB": str(db),
            "TRIAGE_SHUTDOWN_TIMEOUT": "5",
            "LOG_FORMAT": "json",
        }


# ---- processes ---------------------------------------------------------------------------------


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


@dataclass
class Server:
    """A server process on 127.0.0.1 (the bot or the bare app)."""

    name: str
    proc: asyncio.subprocess.Process
    port: int
    log: Path
    startup_s: float = 0.0
    db: Path | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

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
    name: str, args: Sequence[str], *, env: dict[str, str], workdir: Path, db: Path | None = None, timeout: float = 30.0
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


async def start_bot(fakes: Fakes, workdir: Path, name: str, *, xpanse_rate: float) -> Server:
    db = workdir / f"{name}.db"
    env = fakes.bot_env(db=db, xpanse_rate=xpanse_rate)
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
        assert self.proc.stdin is not None and self.proc.stdout is not None
        job = {"url": url, "secret": SIGNING_SECRET, "bodies": bodies, "concurrency": concurrency}
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


# ---- Slack-shaped requests ---------------------------------------------------------------------


def _payload(name: str) -> dict[str, Any]:
    return copy.deepcopy(json.loads((PAYLOADS / name).read_text()))


class Requests:
    """Real-shaped, unsigned Slack request bodies (the sender signs them)."""

    def __init__(self, slack: SlackFake) -> None:
        self.slack = slack
        self.n = 0
        self._command = _payload("slash_command.json")
        self._click = _payload("block_actions.message.json")

    def trigger(self) -> str:
        self.n += 1
        return f"bench.{self.n}.{time.monotonic_ns()}"

    def command(self, text: str, *, user: str, trigger_id: str | None = None) -> str:
        fields = dict(self._command)
        trigger = trigger_id or self.trigger()
        fields.update(
            {
                "command": "/triage",
                "text": text,
                "user_id": user,
                "channel_id": CHANNEL,
                "team_id": TEAM,
                "is_enterprise_install": "false",
                "enterprise_id": "",
                "enterprise_name": "",
                "response_url": self.slack.webhook_url(f"cmd{self.n}"),
                "trigger_id": trigger,
            }
        )
        return urllib.parse.urlencode(fields)

    def click(self, action_id: str, value: str, *, user: str, message: dict[str, Any]) -> str:
        body = copy.deepcopy(self._click)
        trigger = self.trigger()
        body.update(
            {
                "user": {"id": user, "team_id": TEAM},
                "team": {"id": TEAM},
                "channel": {"id": CHANNEL},
                "container": {
                    "type": "message",
                    "message_ts": message["ts"],
                    "channel_id": CHANNEL,
                    "is_ephemeral": False,
                },
                "message": message,
                "response_url": self.slack.webhook_url(f"btn{self.n}"),
                "trigger_id": trigger,
                "actions": [
                    {
                        "action_id": action_id,
                        "block_id": "b",
                        "value": value,
                        "type": "button",
                        "action_ts": f"{time.time():.6f}{self.n}",
                    }
                ],
            }
        )
        return "payload=" + urllib.parse.quote(json.dumps(body))


def button_value(message: dict[str, Any], action_id: str) -> str:
    for block in message.get("blocks") or []:
        for element in block.get("elements", []) + ([block["accessory"]] if "accessory" in block else []):
            if element.get("action_id") == action_id:
                return str(element.get("value", ""))
    raise LookupError(f"no {action_id} button on message {message.get('ts')}")


_HTTP: dict[str, httpx.AsyncClient] = {}


async def send(server: Server, body: str) -> httpx.Response:
    """One signed request from this process (for the flows; the timed load uses the generator)."""
    stamp = str(int(time.time()))
    signature = SignatureVerifier(SIGNING_SECRET).generate_signature(timestamp=stamp, body=body) or ""
    headers = {
        "X-Slack-Request-Timestamp": stamp,
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Signature": signature,
    }
    # One client for the run: building an httpx client (its TLS context) costs tens of ms.
    client = _HTTP.get("client")
    if client is None or client.is_closed:
        client = _HTTP["client"] = httpx.AsyncClient(timeout=10)
    return await client.post(server.events, content=body, headers=headers)


# ---- the bot's jobs, read from its SQLite file ----------------------------------------------------


def job_row(db: Path, *, key: str | None = None, job_id: str | None = None) -> dict[str, Any] | None:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
        conn.row_factory = sqlite3.Row
        where, arg = ("interaction_key = ?", key) if key is not None else ("id = ?", job_id)
        row = conn.execute(f"SELECT id, state, card_ts, reported_at FROM jobs WHERE {where}", (arg,)).fetchone()
        return dict(row) if row else None


def item_states(db: Path, job_id: str) -> dict[str, int]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
        rows = conn.execute("SELECT state, COUNT(*) FROM job_items WHERE job_id = ? GROUP BY state", (job_id,))
        return {str(state): int(n) for state, n in rows}


async def wait_job(
    db: Path,
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


def split(items: list[str], parts: int) -> list[list[str]]:
    size = math.ceil(len(items) / parts)
    return [items[i : i + size] for i in range(0, len(items), size)]


# ---- 1. ack latency ------------------------------------------------------------------------------


class AckLoad:
    """Unique, real-shaped work for the bot: an assign command or an Assign-me click per request."""

    def __init__(self, fakes: Fakes, requests: Requests) -> None:
        self.fakes = fakes
        self.requests = requests
        self.n = 0
        self.web = AsyncWebClient(token=fakes.slack.token, base_url=fakes.slack.api_url)

    def finding(self) -> str:
        self.n += 1
        finding_id = f"ackload{self.n:06d}AbCdEf"
        self.fakes.dd.add_finding(finding_id, title=f"Load finding {self.n}", severity="high")
        return finding_id

    async def bodies(self, kind: str, count: int) -> list[str]:
        if kind == "command":
            return [self.requests.command(f"assign dd:{self.finding()} to me", user=LOADER) for _ in range(count)]
        # A click carries the card it was on, as Slack sends it; the cards are really posted first
        # so the bot's card update after the job finds them.
        sem = asyncio.Semaphore(16)

        async def card() -> str:
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
            message = self.fakes.slack.message(CHANNEL, str(resp["ts"]))
            assert message is not None
            return self.requests.click(
                ActionId.ASSIGN_ME, button_value(message, ActionId.ASSIGN_ME), user=LOADER, message=message
            )

        return list(await asyncio.gather(*(card() for _ in range(count))))


async def ack_latency(
    cfg: Config, fakes: Fakes, bot: Server, bare: Server, gen: LoadGenerator, requests: Requests
) -> list[dict[str, Any]]:
    load = AckLoad(fakes, requests)
    pids = [bot.pid, bare.pid, os.getpid()]
    rows: list[dict[str, Any]] = []
    for level in cfg.ack_levels:
        for kind in ("command", "button"):
            warm = max(2 * level, 10)
            bodies = await load.bodies(kind, warm + cfg.ack_requests)
            warmup, measured = bodies[:warm], bodies[warm:]
            for server in (bot, bare):  # connections, Bolt's first auth.test, SQLite pages
                await quiesce(pids)
                await gen.fire(server.events, warmup, level)
            latencies: dict[str, list[float]] = {"bot": [], "bare": []}
            statuses: dict[str, Counter[str]] = {"bot": Counter(), "bare": Counter()}
            acks: Counter[str] = Counter()
            for r, chunk in enumerate(split(measured, cfg.ack_rounds)):
                # Alternate who goes first so drift on the shared machine hits both alike.
                for server in (bot, bare) if r % 2 == 0 else (bare, bot):
                    await quiesce(pids)
                    result = await gen.fire(server.events, chunk, level)
                    latencies[server.name] += result["latencies_ms"]
                    statuses[server.name].update(result["statuses"])
                    if server is bot:
                        acks.update(result["acks"])
            await quiesce(pids)
            bot_s, bare_s = describe(latencies["bot"]), describe(latencies["bare"])
            rows.append(
                {
                    "kind": kind,
                    "concurrency": level,
                    "requests": len(latencies["bot"]),
                    "bot": bot_s,
                    "bare": bare_s,
                    "ratio_p50": round(bot_s["p50_ms"] / bare_s["p50_ms"], 2),
                    "ratio_p99": round(bot_s["p99_ms"] / bare_s["p99_ms"], 2),
                    "statuses": {k: dict(v) for k, v in statuses.items()},
                    "bot_acks": dict(acks),
                }
            )
            print(
                f"  ack {kind:7} x{level:<3} bot p50 {bot_s['p50_ms']:7.2f} p99 {bot_s['p99_ms']:7.2f} ms | "
                f"bare p50 {bare_s['p50_ms']:7.2f} p99 {bare_s['p99_ms']:7.2f} ms",
                flush=True,
            )
    return rows


# ---- 2. platform calls per operation -----------------------------------------------------------


class Seeder:
    """Fresh items on the fakes, each id used once per run."""

    def __init__(self, fakes: Fakes) -> None:
        self.fakes = fakes
        self.n = 0

    def _next(self) -> int:
        self.n += 1
        return self.n

    def datadog(self, count: int, *, owner: str | None = None) -> list[str]:
        keys = []
        for _ in range(count):
            finding_id = f"opfinding{self._next():06d}Zz"
            self.fakes.dd.add_finding(finding_id, title="Op finding", assignee_id=DD_IDS[owner] if owner else None)
            keys.append(f"dd:{finding_id}")
        return keys

    def kibana(self, count: int, *, owner: str | None = None) -> list[str]:
        keys = []
        for i in range(count):
            space = SPACES[i % len(SPACES)]
            alert_id = f"opalert{self._next():06d}-a1b2c3d4e5"
            self.fakes.kibana.add_alert(alert_id, space=space, assignees=[KB_IDS[owner]] if owner else [])
            keys.append(f"kibana:{space}/{alert_id}")
        return keys

    def xpanse(self, count: int, *, owner: str | None = None) -> list[str]:
        keys = []
        for _ in range(count):
            incident_id = str(100000 + self._next())
            first, last = NAMES[owner] if owner else ("", "")
            self.fakes.xpanse.add_incident(
                incident_id,
                assigned_user_mail=EMAILS[owner] if owner else None,
                assigned_user_pretty_name=f"{first} {last}" if owner else None,
            )
            keys.append(f"xpanse:{incident_id}")
        return keys


def is_write(platform: Platform, method: str, path: str) -> bool:
    if platform is Platform.DATADOG:
        return method == "PATCH"
    if platform is Platform.KIBANA:
        return path.endswith(("/signals/assignees", "/signals/status"))
    return path.endswith("/update_incident/")


def min_writes(platform: Platform, keys: Sequence[str]) -> int:
    """The fewest write requests the vendors' APIs allow for assigning ``keys``."""
    if platform is Platform.DATADOG:
        return math.ceil(len(keys) / DATADOG_CHUNK)
    if platform is Platform.KIBANA:
        per_space = Counter(k.split(":", 1)[1].split("/", 1)[0] for k in keys)
        return sum(math.ceil(n / KIBANA_BATCH) for n in per_space.values())
    return len(keys)


class CallLog:
    """What each fake received since a mark."""

    def __init__(self, fakes: Fakes) -> None:
        self.fakes = fakes
        self.marks = self._lengths()

    def _lengths(self) -> dict[str, int]:
        f = self.fakes
        return {
            "datadog": len(f.dd.requests),
            "kibana": len(f.kibana.requests),
            "es": len(f.es.requests),
            "xpanse": len(f.xpanse.requests),
            "slack": len(f.slack.calls),
        }

    def counts(self) -> dict[str, dict[str, int]]:
        f = self.fakes
        out: dict[str, dict[str, int]] = {}
        for platform, reqs in (
            (Platform.DATADOG, f.dd.requests),
            (Platform.KIBANA, f.kibana.requests),
            (Platform.XPANSE, f.xpanse.requests),
        ):
            new = reqs[self.marks[platform.value] :]
            writes = sum(1 for r in new if is_write(platform, r.method, r.path))
            out[platform.value] = {"writes": writes, "reads": len(new) - writes}
        out["kibana"]["reads"] += len(f.es.requests) - self.marks["es"]
        out["slack"] = {"calls": len(f.slack.calls) - self.marks["slack"]}
        return out


async def platform_calls(cfg: Config, fakes: Fakes, bot: Server, requests: Requests) -> list[dict[str, Any]]:
    assert bot.db is not None
    seed = Seeder(fakes)
    makers = {Platform.DATADOG: seed.datadog, Platform.KIBANA: seed.kibana, Platform.XPANSE: seed.xpanse}
    rows: list[dict[str, Any]] = []

    async def assign(keys: list[str]) -> tuple[dict[str, Any], float]:
        trigger = requests.trigger()
        started = time.perf_counter()
        resp = await send(
            bot, requests.command("assign " + " ".join(keys) + " to <@U0BOB|bob>", user=ALICE, trigger_id=trigger)
        )
        resp.raise_for_status()
        row = await wait_job(bot.db, reported, key=trigger, timeout=cfg.job_timeout_s)  # type: ignore[arg-type]
        return row, time.perf_counter() - started

    # One item per platform first, so Bob's identities are resolved and remembered before counting.
    await assign([makers[p](1)[0] for p in Platform])
    for platform in Platform:
        for n in cfg.call_sizes:
            keys = makers[platform](n)
            log = CallLog(fakes)
            row, wall = await assign(keys)
            counts = log.counts()
            states = item_states(bot.db, row["id"])
            rows.append(
                {
                    "platform": platform.value,
                    "n": n,
                    "writes": counts[platform.value]["writes"],
                    "min_writes": min_writes(platform, keys),
                    "reads": counts[platform.value]["reads"],
                    "other_platform_calls": sum(
                        v["writes"] + v["reads"] for k, v in counts.items() if k not in (platform.value, "slack")
                    ),
                    "slack_calls": counts["slack"]["calls"],
                    "items": states,
                    "applied": applied(fakes, keys, BOB),
                    "job_state": row["state"],
                    "wall_s": round(wall, 2),
                }
            )
            r = rows[-1]
            print(
                f"  calls {platform.value:8} N={n:<4} writes {r['writes']:4} (min {r['min_writes']:4}) "
                f"reads {r['reads']:3} applied {r['applied']}/{n}",
                flush=True,
            )
    return rows


def applied(fakes: Fakes, keys: Sequence[str], user: str) -> int:
    """How many of ``keys`` the fakes now hold as assigned to ``user`` (the writes really landed)."""
    count = 0
    for key in keys:
        prefix, _, rest = key.partition(":")
        if prefix == "dd":
            count += fakes.dd.findings[rest]["assignee_id"] == DD_IDS[user]
        elif prefix == "kibana":
            space, _, alert_id = rest.partition("/")
            count += fakes.kibana.assignees(alert_id, space) == [KB_IDS[user]]
        else:
            count += (fakes.xpanse.incidents[rest].assigned_user_mail or "").lower() == EMAILS[user]
    return count


# ---- 3. handoff -------------------------------------------------------------------------------------


async def handoff(cfg: Config, fakes: Fakes, bot: Server, requests: Requests) -> dict[str, Any]:
    """``/triage handoff to @bob`` as Alice, then Confirm on the preview: time Confirm → job reported."""
    assert bot.db is not None
    n_dd, n_kb, n_xp = cfg.handoff
    seed = Seeder(fakes)
    seed.n = 500_000  # ids apart from the calls section's
    keys = seed.datadog(n_dd, owner=ALICE) + seed.kibana(n_kb, owner=ALICE) + seed.xpanse(n_xp, owner=ALICE)
    fakes.set_latency(cfg.latency_s)
    fakes.xpanse.rate_limit = cfg.xpanse_rate  # the fake tenant refuses (429) what exceeds the limit
    throttled_before = fakes.xpanse.throttled
    try:
        trigger = requests.trigger()
        started = time.perf_counter()
        resp = await send(bot, requests.command("handoff to <@U0BOB|bob>", user=ALICE, trigger_id=trigger))
        resp.raise_for_status()
        row = await wait_job(
            bot.db,
            lambda r: r["state"] == "awaiting_confirm" and r["card_ts"] is not None,
            key=trigger,
            timeout=cfg.job_timeout_s,
        )
        collect_s = time.perf_counter() - started
        preview = fakes.slack.message(CHANNEL, row["card_ts"])
        assert preview is not None, "the handoff preview was not posted"
        value = button_value(preview, ActionId.HANDOFF_CONFIRM)
        log = CallLog(fakes)
        started = time.perf_counter()
        click = await send(bot, requests.click(ActionId.HANDOFF_CONFIRM, value, user=ALICE, message=preview))
        ack_ms = (time.perf_counter() - started) * 1000
        click.raise_for_status()
        row = await wait_job(bot.db, reported, job_id=row["id"], timeout=cfg.job_timeout_s)
        wall = time.perf_counter() - started
    finally:
        fakes.set_latency(0.0)
        fakes.xpanse.rate_limit = None
    counts = log.counts()
    xp_calls = counts["xpanse"]["reads"] + counts["xpanse"]["writes"]
    xp_endpoints = Counter(r.path.rstrip("/").rsplit("/", 1)[-1] for r in fakes.xpanse.requests[log.marks["xpanse"] :])
    xp_min = math.ceil(n_xp / XPANSE_PAGE) + n_xp
    # Every Xpanse request waits for the client's limiter (one per 1/rate s, evenly spaced), and the
    # updates can only follow the read that says what each incident holds; Datadog's and Kibana's
    # few batch requests overlap with that. The last response lands one latency after its send.
    bound = max((xp_min - 1) / cfg.xpanse_rate + cfg.latency_s, cfg.latency_s)
    return {
        "items": {"datadog": n_dd, "kibana": n_kb, "xpanse": n_xp},
        "latency_s": cfg.latency_s,
        "xpanse_rate": cfg.xpanse_rate,
        "flow": "slack: /triage handoff to @bob, then the Confirm button",
        "collect_s": round(collect_s, 2),
        "confirm_ack_ms": round(ack_ms, 1),
        "wall_s": round(wall, 2),
        "bound_s": round(bound, 2),
        "ratio": round(wall / bound, 3),
        "bound_formula": "(ceil(Nx/100) + Nx - 1) / rate + latency",
        "calls": counts,
        "xpanse_calls": xp_calls,
        "xpanse_min_calls": xp_min,
        "xpanse_calls_by_endpoint": dict(xp_endpoints),
        "xpanse_throttled_429": fakes.xpanse.throttled - throttled_before,
        "job_state": row["state"],
        "item_states": item_states(bot.db, row["id"]),
        "applied": applied(fakes, keys, BOB),
        "total": len(keys),
    }


# ---- the run --------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform_mod.processor(),
    )
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=5
        ).stdout.strip()
    except OSError:
        commit = ""
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": model,
        "python": platform_mod.python_version(),
        "os": platform_mod.platform(),
        "commit": commit,
        "taken_at": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of the issue: the measured value, the limit, met or not."""
    out: list[dict[str, Any]] = []

    def add(name: str, value: float, limit: float) -> None:
        out.append({"target": name, "value": value, "limit": limit, "met": value <= limit})

    for row in report["ack_latency"]:
        add(f"ack {row['kind']} x{row['concurrency']}: bot p99 / bare p99", row["ratio_p99"], ACK_RATIO_MAX)
        if row["concurrency"] >= 50:
            add(f"ack {row['kind']} x{row['concurrency']}: bot p99 ms", row["bot"]["p99_ms"], ACK_P99_MAX_MS)
    for row in report["platform_calls"]:
        add(f"writes {row['platform']} N={row['n']} (min {row['min_writes']})", row["writes"], row["min_writes"])
    add("handoff wall / bound", report["handoff"]["ratio"], HANDOFF_RATIO_MAX)
    fp = report["footprint"]
    add("RSS idle MB", fp["idle"]["rss_mb"], RSS_MAX_MB)
    add("RSS after load MB (peak)", fp["after_handoff"]["peak_rss_mb"], RSS_MAX_MB)
    add("start to ready s (median)", fp["startup_s"]["median"], STARTUP_MAX_S)
    return out


def print_table(report: dict[str, Any]) -> None:
    m = report["machine"]
    print(f"\nMachine: {m['nproc']} CPUs, {m['cpu']}, Python {m['python']}, commit {m['commit']}")
    print("\n1. Ack latency (ms)            bot p50   bot p99 | bare p50  bare p99 | p99 ratio")
    for row in report["ack_latency"]:
        b, r = row["bot"], row["bare"]
        print(
            f"   {row['kind']:7} x{row['concurrency']:<3} n={row['requests']:<5}  {b['p50_ms']:8.2f}  "
            f"{b['p99_ms']:8.2f} | {r['p50_ms']:8.2f}  {r['p99_ms']:8.2f} | {row['ratio_p99']:6.2f}"
        )
    print("\n2. Platform calls per assign   writes   minimum   reads   slack   items ok")
    for row in report["platform_calls"]:
        print(
            f"   {row['platform']:8} N={row['n']:<5}        {row['writes']:6}  {row['min_writes']:8}  "
            f"{row['reads']:6}  {row['slack_calls']:6}   {row['applied']}/{row['n']}"
        )
    h = report["handoff"]
    print(
        f"\n3. Handoff of {h['total']} items ({h['items']}), latency {h['latency_s'] * 1000:.0f} ms, "
        f"Xpanse {h['xpanse_rate']}/s"
    )
    print(
        f"   Confirm -> reported {h['wall_s']} s; bound {h['bound_s']} s = {h['bound_formula']}; "
        f"ratio {h['ratio']}; applied {h['applied']}/{h['total']}; Xpanse calls {h['xpanse_calls']} "
        f"(min {h['xpanse_min_calls']}), 429s {h['xpanse_throttled_429']}; collect {h['collect_s']} s"
    )
    fp = report["footprint"]
    print(
        f"\n4. Footprint: RSS idle {fp['idle']['rss_mb']} MB, after ack load {fp['after_ack_load']['rss_mb']} MB, "
        f"after handoff {fp['after_handoff']['rss_mb']} MB (peak {fp['after_handoff']['peak_rss_mb']} MB); "
        f"start to ready {fp['startup_s']['median']} s median of {fp['startup_s']['runs']}"
    )
    print("\nTargets:")
    for t in report["targets"]:
        print(f"   {'met   ' if t['met'] else 'MISSED'}  {t['target']}: {t['value']} (limit {t['limit']})")
    for note in report["notes"]:
        print(f"Note: {note}")


async def run(cfg: Config) -> dict[str, Any]:
    began = time.perf_counter()
    fakes = await Fakes().start()
    servers: list[Server] = []
    gen: LoadGenerator | None = None
    with tempfile.TemporaryDirectory(prefix="triage-bench-") as tmp:
        workdir = Path(tmp)
        try:
            print("Starting the bot (python -m bot serve) ...", flush=True)
            startups = []
            for i in range(cfg.startup_runs - 1):  # cold starts on a fresh database, then stopped
                probe = await start_bot(fakes, workdir, f"startup{i}", xpanse_rate=cfg.xpanse_rate)
                startups.append(probe.startup_s)
                await probe.stop()
            bot = await start_bot(fakes, workdir, "bot", xpanse_rate=cfg.xpanse_rate)
            servers.append(bot)
            startups.append(bot.startup_s)
            bare = await start_server(
                "bare",
                ["-m", "bench.bare_app"],
                env=fakes.bot_env(db=workdir / "unused.db", xpanse_rate=cfg.xpanse_rate),
                workdir=workdir,
            )
            servers.append(bare)
            gen = await LoadGenerator.start()
            requests = Requests(fakes.slack)
            await quiesce([bot.pid])
            idle = memory_mb(bot.pid)
            print("1. Ack latency ...", flush=True)
            acks = await ack_latency(cfg, fakes, bot, bare, gen, requests)
            after_acks = memory_mb(bot.pid)
            print("2. Platform calls per operation ...", flush=True)
            # Counting calls does not depend on the rate limit; a fast one keeps this section short.
            counter = await start_bot(fakes, workdir, "bot-calls", xpanse_rate=1000.0)
            servers.append(counter)
            calls = await platform_calls(cfg, fakes, counter, requests)
            await counter.stop()
            print("3. Handoff ...", flush=True)
            hand = await handoff(cfg, fakes, bot, requests)
            after_handoff = memory_mb(bot.pid)
            report: dict[str, Any] = {
                "machine": machine(),
                "config": asdict(cfg),
                "notes": [
                    "The platform fakes skip their per-request OpenAPI validation here (the test suite keeps it).",
                    "Ack load: each bot request is real work (an assign command or an Assign-me click on a "
                    "posted card, unique per request), so the bot's jobs run after each ack; the bare app "
                    "gets the same bodies. Each round starts once both servers are idle.",
                    "Platform calls are counted in a second bot process with XPANSE_RATE_LIMIT=1000 "
                    "(counts do not depend on the rate); Bob's identities are resolved before counting.",
                    "Handoff runs through Slack: /triage handoff to @bob, then the Confirm button; the fake "
                    "Xpanse tenant also enforces the rate limit (429s are counted).",
                ],
                "ack_latency": acks,
                "platform_calls": calls,
                "handoff": hand,
                "footprint": {
                    "idle": idle,
                    "after_ack_load": after_acks,
                    "after_handoff": after_handoff,
                    "startup_s": {
                        "runs": len(startups),
                        "median": round(statistics.median(startups), 3),
                        "max": round(max(startups), 3),
                        "all": [round(s, 3) for s in startups],
                    },
                    "command": "python -m bot serve (HTTP mode), until GET /readyz answers 200",
                },
                "contract_violations": fakes.violations(),
            }
            report["targets"] = targets(report)
            report["duration_s"] = round(time.perf_counter() - began, 1)
        finally:
            if gen is not None:
                await gen.stop()
            if "client" in _HTTP:
                await _HTTP.pop("client").aclose()
            for server in servers:
                await server.stop()
            await fakes.stop()
    print_table(report)
    print(f"\nTook {report['duration_s']} s.")
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run with tiny N (seconds)")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"where to write the JSON (default {RESULTS.relative_to(REPO)}; none with --quick)",
    )
    parser.add_argument("--requests", type=int, default=None, help="measured ack requests per app and level")
    args = parser.parse_args(argv)
    cfg = Config.quick() if args.quick else Config()
    if args.requests is not None:
        cfg.ack_requests = args.requests
    out = args.out if args.out is not None else (None if args.quick else RESULTS)
    report = asyncio.run(run(cfg))
    if out is not None:
        out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"Wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
