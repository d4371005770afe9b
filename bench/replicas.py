"""Sections 6-8: the bot on PostgreSQL, and replicas of it sharing one database.

One PostgreSQL server (``bench.pg``) serves the three sections, each with a fresh database and
sandbox tenants of its own (holding only that section's items, so what ran before does not slow
the tenants' answers). Every replica is ``python -m bot serve`` configured only through its
environment, as the other sections start the bot, all with the same ``TRIAGE_DB`` URL:

* **6. ack latency**: ``bench.acks.ack_latency`` with the bot (``split``) on PostgreSQL against
  the run's bare app and floor, measured again here so the ratios compare one moment;
* **7. worker throughput**: one ``TRIAGE_ROLE=web`` replica takes signed assign commands (one new
  Datadog finding each) from the load generator and stores them; ``TRIAGE_ROLE=worker`` replicas
  (1, then 3) find the jobs by polling the database, claim them and run them against the
  tenants (50 ms per platform request). Timed from the first command sent until the database
  says every job is reported (``jobs.reported_at``);
* **8. handoff across two replicas**: ``bench.flows.handoff`` with the command sent to one
  ``split`` replica and the Confirm click to the other, against the same bound as section 3.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.acks import ack_latency
from bench.env import (
    ACK_P50_X1_RATIO_MAX,
    ACK_P99_MAX_MS,
    ACK_RATIO_MAX,
    HANDOFF_RATIO_MAX,
    LOADER,
    REPLICA_SPEEDUP_MIN,
    Config,
    Requests,
    Tenants,
)
from bench.flows import applied, handoff
from bench.pg import PgJobs, fresh_database, postgres
from bench.pgserver import PostgresServer
from bench.procs import LoadGenerator, Server, children, close_http, cpu_ticks, quiesce, start_server
from bot.settings import Settings

CLK_TCK = os.sysconf("SC_CLK_TCK")
SERVE = ["-m", "bot", "serve", "--host", "127.0.0.1"]
SUBMIT_CONCURRENCY = 10  # senders of the load generator that submit the commands


def bot_env(tenants: Tenants, url: str, *, role: str, xpanse_rate: float) -> dict[str, str]:
    return tenants.bot_env(db=url, xpanse_rate=xpanse_rate) | {"TRIAGE_ROLE": role}


class Fleet:
    """Replicas on one database, started together (``add``), all stopped by ``close``."""

    def __init__(self, tenants: Tenants, workdir: Path, jobs: PgJobs, *, xpanse_rate: float) -> None:
        self.tenants, self.workdir, self.jobs, self.xpanse_rate = tenants, workdir, jobs, xpanse_rate
        self.servers: dict[str, Server] = {}
        workdir.mkdir(parents=True, exist_ok=True)

    async def add(self, roles: dict[str, str]) -> list[Server]:
        """Start one replica per ``roles`` entry (name -> ``TRIAGE_ROLE``), together; each until ready."""

        async def one(name: str, role: str) -> None:
            env = bot_env(self.tenants, self.jobs.url, role=role, xpanse_rate=self.xpanse_rate)
            server = await start_server(name, SERVE, env=env, workdir=self.workdir, db=self.jobs, timeout=60)
            self.servers[name] = server

        results = await asyncio.gather(*(one(n, r) for n, r in roles.items()), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return [self.servers[name] for name in roles]

    async def close(self) -> None:
        await asyncio.gather(*(s.stop() for s in self.servers.values()))


@dataclass
class Part:
    """What one part runs on: its own sandbox tenants, its own database, its replicas."""

    tenants: Tenants
    jobs: PgJobs
    replicas: Fleet
    requests: Requests


@asynccontextmanager
async def part(server: PostgresServer, name: str, workdir: Path, *, xpanse_rate: float) -> AsyncIterator[Part]:
    """Fresh tenants (so no earlier section's items slow their answers), a fresh database, and replicas
    started on demand; all stopped on the way out, even on failure."""
    tenants = await Tenants().start()
    try:
        jobs = PgJobs(await fresh_database(server, name))
        try:
            replicas = Fleet(tenants, workdir / name, jobs, xpanse_rate=xpanse_rate)
            try:
                yield Part(tenants, jobs, replicas, Requests(tenants.slack))
            finally:
                await replicas.close()
        finally:
            await asyncio.to_thread(jobs.close)
    finally:
        VIOLATIONS.extend(tenants.violations())
        await tenants.stop()


VIOLATIONS: list[str] = []  # requests the parts' tenants would refuse as malformed, for the report


# ---- CPU while measuring ----------------------------------------------------------------------------


def machine_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of every CPU since boot, from /proc/stat."""
    # user nice system idle iowait irq softirq steal (guest time is already inside user)
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


class CpuWindow:
    """CPU seconds each group of processes used between ``__init__`` and ``stop()``, and the machine's load."""

    def __init__(self, groups: dict[str, Callable[[], list[int]]]) -> None:
        self.groups = groups
        self.before = {name: self._ticks(pids()) for name, pids in groups.items()}
        self.machine_before = machine_ticks()

    @staticmethod
    def _ticks(pids: list[int]) -> int:
        total = 0
        for pid in pids:
            try:
                total += cpu_ticks(pid)
            except OSError:  # a process that ended meanwhile (a database backend)
                pass
        return total

    def stop(self, wall_s: float) -> dict[str, Any]:
        busy0, total0 = self.machine_before
        busy1, total1 = machine_ticks()
        used = {name: (self._ticks(pids()) - self.before[name]) / CLK_TCK for name, pids in self.groups.items()}
        # Everything else the machine ran meanwhile (other work on the shared cores).
        used["other"] = max((busy1 - busy0) / CLK_TCK - sum(used.values()), 0.0)
        return {
            "machine_busy": round((busy1 - busy0) / max(total1 - total0, 1), 2),
            "cpu_s": {name: round(s, 2) for name, s in used.items()},
            "cores_used": {name: round(s / wall_s, 2) for name, s in used.items()} if wall_s > 0 else {},
        }


def fixed(pids: list[int]) -> Callable[[], list[int]]:
    return lambda: pids


def postgres_pids(server: PostgresServer) -> list[int]:
    return [server.pid, *children(server.pid)]


# ---- 6. jobs per second with 1 and 3 worker replicas ---------------------------------------------


class Findings:
    """New Datadog findings, one per job."""

    def __init__(self, tenants: Tenants) -> None:
        self.tenants = tenants
        self.n = 0

    def keys(self, count: int) -> list[str]:
        out = []
        for _ in range(count):
            self.n += 1
            finding_id = f"wkfinding{self.n:06d}Zz"
            self.tenants.dd.add_finding(finding_id, title=f"Worker finding {self.n}")
            out.append(f"dd:{finding_id}")
        return out


async def run_jobs(
    jobs: PgJobs, web: Server, gen: LoadGenerator, requests: Requests, keys: list[str], *, timeout: float
) -> tuple[float, dict[str, Any]]:
    """Submit one ``assign <key> to me`` per key to ``web``; the wall time until every one is reported."""
    bodies = [requests.command(f"assign {key} to me", user=LOADER) for key in keys]
    stored_before, _ = jobs.reported("assign")
    started = time.perf_counter()
    sent = await gen.fire(web.events, bodies, SUBMIT_CONCURRENCY)
    submitted = time.perf_counter() - started
    expected = stored_before + len(keys)
    deadline = started + timeout
    while True:
        stored, done = await asyncio.to_thread(jobs.reported, "assign")
        if stored >= expected and done >= stored:
            break
        if time.perf_counter() > deadline:
            raise TimeoutError(f"{done}/{stored} assign jobs reported after {timeout} s (expected {expected})")
        await asyncio.sleep(0.02)
    return time.perf_counter() - started, {"submitted_s": round(submitted, 2), "statuses": sent["statuses"]}


async def worker_throughput(cfg: Config, workdir: Path, server: PostgresServer, gen: LoadGenerator) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    async with part(server, "throughput", workdir, xpanse_rate=cfg.xpanse_rate) as at:
        tenants, jobs, requests = at.tenants, at.jobs, at.requests
        findings = Findings(tenants)
        tenants.set_latency(cfg.latency_s)
        (web,) = await at.replicas.add({"web": "web"})
        workers: list[Server] = []
        for count in cfg.replica_workers:
            workers += await at.replicas.add({f"worker{n}": "worker" for n in range(len(workers) + 1, count + 1)})
            # Warm-up: each worker's database connections, Slack's users.info cache, the mapping.
            await run_jobs(jobs, web, gen, requests, findings.keys(8 * count), timeout=cfg.job_timeout_s)
            running = [p for w in workers for p in w.pids]
            await quiesce([os.getpid(), gen.proc.pid, *web.pids, *running])
            keys = findings.keys(cfg.replica_jobs)
            since = time.time()
            window = CpuWindow(
                {
                    "web": fixed(web.pids),
                    "workers": fixed(running),
                    "postgres": lambda: postgres_pids(server),
                    "bench_and_tenants": fixed([os.getpid()]),
                    "load_generator": fixed([gen.proc.pid]),
                }
            )
            wall, sent = await run_jobs(jobs, web, gen, requests, keys, timeout=cfg.job_timeout_s)
            cpu = window.stop(wall)
            span = jobs.span("assign", since)
            first, last = span["first_created"], span["last_reported"]
            rows.append(
                {
                    "workers": count,
                    "jobs": len(keys),
                    "wall_s": round(wall, 2),
                    "jobs_per_s": round(len(keys) / wall, 1),
                    "stored_span_s": round(last - first, 2) if first is not None and last is not None else None,
                    "states": jobs.states("assign", since),
                    "applied": applied(tenants, keys, LOADER),
                    "cpu": cpu,
                }
                | sent
            )
            r = rows[-1]
            print(
                f"  {count} worker(s): {r['jobs']} jobs in {r['wall_s']} s = {r['jobs_per_s']} jobs/s; "
                f"applied {r['applied']}/{r['jobs']}; machine busy {cpu['machine_busy']:.0%}",
                flush=True,
            )
    one = next(r for r in rows if r["workers"] == 1)
    many = max(rows, key=lambda r: r["workers"])
    return {
        "rows": rows,
        "speedup": round(many["jobs_per_s"] / one["jobs_per_s"], 2),
        "speedup_workers": many["workers"],
        "latency_s": cfg.latency_s,
        "worker_tasks": Settings.model_fields["triage_workers"].default,
        "flow": "signed /triage assign dd:<new finding> to me, 10 senders, to one TRIAGE_ROLE=web replica; "
        "TRIAGE_ROLE=worker replicas poll the database (TRIAGE_WORKER_POLL 0.05 s)",
    }


# ---- 7. the handoff across two replicas ----------------------------------------------------------


async def replica_handoff(cfg: Config, workdir: Path, server: PostgresServer) -> dict[str, Any]:
    async with part(server, "handoff", workdir, xpanse_rate=cfg.xpanse_rate) as at:
        first, second = await at.replicas.add({"replica1": "split", "replica2": "split"})
        await quiesce([os.getpid(), *first.pids, *second.pids])
        out = await handoff(cfg, at.tenants, first, at.requests, confirm_via=second)
    return out | {"replicas": 2, "flow": "slack: /triage handoff to @bob to replica 1, Confirm to replica 2"}


# ---- 8. ack latency with the bot on PostgreSQL ---------------------------------------------------


async def postgres_acks(
    cfg: Config,
    workdir: Path,
    server: PostgresServer,
    bare: Server,
    floor: Server,
    gen: LoadGenerator,
    control: Server | None = None,
) -> list[dict[str, Any]]:
    async with part(server, "acks", workdir, xpanse_rate=cfg.xpanse_rate) as at:
        # Named "bot" as in section 1 (ack_latency reports the bot under that name).
        (bot,) = await at.replicas.add({"bot": "split"})
        kinds = cfg.postgres_ack_kinds
        return await ack_latency(cfg, at.tenants, bot, bare, floor, gen, at.requests, kinds=kinds, control=control)


# ---- the section ---------------------------------------------------------------------------------


async def postgres_sections(
    cfg: Config, workdir: Path, bare: Server, floor: Server, gen: LoadGenerator, *, control: Server | None = None
) -> dict[str, Any]:
    """Sections 6-8 on one PostgreSQL server started here and stopped on the way out, even on failure.

    ``bare``, ``floor`` and ``control`` (a second bare app) are the run's baseline apps (they only
    ack, so any tenants do).
    """
    base = workdir / "postgres"
    took: dict[str, float] = {}
    began = time.perf_counter()
    VIOLATIONS.clear()
    async with postgres() as server:
        took["server_start"] = time.perf_counter() - began
        print(f"6. Ack latency with TRIAGE_DB on PostgreSQL {server.major} ...", flush=True)
        acks = await postgres_acks(cfg, base, server, bare, floor, gen, control)
        took["acks"] = time.perf_counter() - began - sum(took.values())
        print("7. Jobs per second with 1 and 3 worker replicas ...", flush=True)
        throughput = await worker_throughput(cfg, base, server, gen)
        took["throughput"] = time.perf_counter() - began - sum(took.values())
        print("8. Handoff across two replicas ...", flush=True)
        hand = await replica_handoff(cfg, base, server)
        took["handoff"] = time.perf_counter() - began - sum(took.values())
        major = server.major
    took["server_stop"] = time.perf_counter() - began - sum(took.values())
    return {
        "postgres": major,
        "ack_latency": acks,
        "throughput": throughput,
        "handoff": hand,
        "took_s": {k: round(v, 1) for k, v in took.items()},
        "contract_violations": list(VIOLATIONS),
        "notes": [
            f"Sections 6-8 run on one throwaway PostgreSQL {major} server (bench/pgserver.py: fsync and "
            "synchronous_commit off, on 127.0.0.1), a fresh database per section, on the same machine.",
            "Each of sections 6-8 has sandbox tenants of its own, holding only that section's items.",
            "Section 6 measures the bare app and the floor again, in turn with the bot on PostgreSQL.",
            "Section 7 starts the worker replicas one row at a time (1, then 2 more); each row runs a "
            "warm-up batch first and starts once every process is idle.",
        ],
    }


async def postgres_only(cfg: Config) -> dict[str, Any]:
    """Sections 6-8 alone, with the bare app, the floor and the load generator they need."""
    tenants = await Tenants().start()
    servers: list[Server] = []
    gen: LoadGenerator | None = None
    try:
        with tempfile.TemporaryDirectory(prefix="triage-bench-pg-") as tmp:
            workdir = Path(tmp)
            env = tenants.bot_env(db=workdir / "unused.db", xpanse_rate=cfg.xpanse_rate)
            bare = await start_server("bare", ["-m", "bench.bare_app"], env=env, workdir=workdir)
            servers.append(bare)
            floor = await start_server("floor", ["-m", "bench.bare_app", "--floor"], env=env, workdir=workdir)
            servers.append(floor)
            control = await start_server("control", ["-m", "bench.bare_app"], env=env, workdir=workdir)
            servers.append(control)
            gen = await LoadGenerator.start()
            pg = await postgres_sections(cfg, workdir, bare, floor, gen, control=control)
    finally:
        if gen is not None:
            await gen.stop()
        await close_http()
        for server in servers:
            await server.stop()
        await tenants.stop()
    print_postgres(pg)
    for t in postgres_targets({"postgres": pg}):
        print(f"   {'met   ' if t['met'] else 'MISSED'}  {t['target']}: {t['value']} (limit {t['limit']})")
    return pg


def postgres_targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The targets of sections 6-8, in the shape of ``bench.run.targets``."""
    pg = report.get("postgres")
    if not pg:
        return []
    out: list[dict[str, Any]] = []

    def add(name: str, value: float, limit: float, *, at_least: bool = False) -> None:
        met = value >= limit if at_least else value <= limit
        out.append({"target": name, "value": value, "limit": limit, "met": met})

    for row in pg["ack_latency"]:
        name = f"ack {row['kind']} x{row['concurrency']} (PostgreSQL)"
        add(f"{name}: bot p99 / bare p99", row["ratio_p99"], ACK_RATIO_MAX)
        if row["concurrency"] == 1 and row["kind"] != "modal":
            add(f"{name}: bot p50 / bare p50", row["ratio_p50"], ACK_P50_X1_RATIO_MAX)
        if row["concurrency"] >= 50:
            add(f"{name}: bot p99 ms", row["bot"]["p99_ms"], ACK_P99_MAX_MS)
    tp = pg["throughput"]
    add(
        f"jobs/s {tp['speedup_workers']} worker replicas / 1 (at least the limit)",
        tp["speedup"],
        REPLICA_SPEEDUP_MIN,
        at_least=True,
    )
    for row in tp["rows"]:
        add(f"jobs/s x{row['workers']} workers: jobs not applied", row["jobs"] - row["applied"], 0)
    hand = pg["handoff"]
    add("handoff across two replicas: wall / bound", hand["ratio"], HANDOFF_RATIO_MAX)
    add("handoff across two replicas: items not applied", hand["total"] - hand["applied"], 0)
    return out


def aa_column(row: dict[str, Any]) -> str:
    """The row's A/A p99 ratio (a second bare app against the bare app), when it was measured."""
    return f" | A/A p99 {row['control_ratio_p99']:.2f}" if "control_ratio_p99" in row else ""


def print_postgres(pg: dict[str, Any]) -> None:
    print(f"\n6. Ack latency (ms), TRIAGE_DB on PostgreSQL {pg['postgres']}  bot p50   bot p99 | bare p50  bare p99")
    for row in pg["ack_latency"]:
        b, r = row["bot"], row["bare"]
        print(
            f"   {row['kind']:7} x{row['concurrency']:<3} n={row['requests']:<5}  {b['p50_ms']:8.2f}  "
            f"{b['p99_ms']:8.2f} | {r['p50_ms']:8.2f}  {r['p99_ms']:8.2f} | ratios p50 {row['ratio_p50']:.2f} "
            f"p99 {row['ratio_p99']:.2f}{aa_column(row)}"
        )
    tp = pg["throughput"]
    print(f"\n7. Jobs per second (single-item Datadog assigns, {tp['latency_s'] * 1000:.0f} ms per platform request)")
    for row in tp["rows"]:
        cpu = row["cpu"]
        print(
            f"   {row['workers']} worker replica(s): {row['jobs']} jobs in {row['wall_s']} s = "
            f"{row['jobs_per_s']} jobs/s (stored span {row['stored_span_s']} s); "
            f"applied {row['applied']}/{row['jobs']}; machine busy {cpu['machine_busy']:.0%}, cores {cpu['cores_used']}"
        )
    print(f"   {tp['speedup_workers']} workers / 1: {tp['speedup']}x")
    h = pg["handoff"]
    print(
        f"\n8. Handoff of {h['total']} items across two replicas: Confirm -> reported {h['wall_s']} s; "
        f"bound {h['bound_s']} s; ratio {h['ratio']}; applied {h['applied']}/{h['total']}; "
        f"Xpanse calls {h['xpanse_calls']} (min {h['xpanse_min_calls']}), 429s {h['xpanse_throttled_429']}"
    )
    print(f"   sections 6-8 took {pg['took_s']} s")
    for note in pg["notes"]:
        print(f"Note: {note}")
