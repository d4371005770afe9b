"""The benchmark: ack latency, platform calls per operation, handoff wall time, footprint, alert storm.

Run from the repository root (about 12 minutes on 2 shared cores)::

    .venv/bin/python -m bench.run              # prints the table, writes bench/results.json
    .venv/bin/python -m bench.run --quick      # a seconds-long smoke run with tiny N

What runs where (all on 127.0.0.1, ephemeral ports):

* this process: the sandbox tenants (``bot.sandbox``: Datadog, Kibana, Elasticsearch,
  Xpanse, Slack Web API) on one event loop, and the orchestration;
* the bot: ``python -m bot serve`` in HTTP mode, configured only through its
  environment like an operator would, with its own SQLite file;
* the bot's worker process: ``serve`` starts it beside the web process (``--role split``);
  its CPU counts for quiescence and its memory is reported per process;
* the baseline: ``python -m bench.bare_app``, a bare Bolt ``AsyncApp`` with Bolt's
  defaults whose listeners only ack, served through the same slack_bolt aiohttp adapter
  path; and the floor: the same app with ``process_before_response=True`` (``--floor``);
* the load generator: ``python -m bench.loadgen``, so the client never shares an
  event loop with a server (it is also the Socket Mode end of the apps' links);
* sections 6-8 (``bench.replicas``): replicas of the bot on one throwaway PostgreSQL server.

The sandbox tenants have no per-request OpenAPI validation (the tests' tenants add it),
so that checking the contract does not eat the CPU being measured. The pieces:
``bench.env`` (settings, tenants, requests), ``bench.procs`` (processes, probes,
statistics), ``bench.acks`` (the ack flows), ``bench.flows`` (platform calls, handoff);
this module runs and reports.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform as platform_mod
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # `python bench/run.py`: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.acks import ack_latency, modal_open
from bench.env import (
    ACK_P50_X1_RATIO_MAX,
    ACK_P99_MAX_MS,
    ACK_RATIO_MAX,
    HANDOFF_RATIO_MAX,
    MODAL_OPEN_MAX_MS,
    REPO,
    RESULTS,
    RSS_MAX_MB,
    STARTUP_MAX_S,
    STORM_RATIO_MAX,
    Config,
    Requests,
    Tenants,
)
from bench.flows import handoff, platform_calls
from bench.procs import LoadGenerator, Server, close_http, family_memory_mb, quiesce, start_bot, start_server
from bench.replicas import aa_column, postgres_only, postgres_sections, postgres_targets, print_postgres
from bench.socket_mode import socket_ack_latency, socket_only
from bench.storm import alert_storm

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
    """Each benchmark target: the measured value, the limit, met or not."""
    out: list[dict[str, Any]] = []

    def add(name: str, value: float, limit: float) -> None:
        out.append({"target": name, "value": value, "limit": limit, "met": value <= limit})

    for row in report["ack_latency"]:
        add(f"ack {row['kind']} x{row['concurrency']}: bot p99 / bare p99", row["ratio_p99"], ACK_RATIO_MAX)
        if row["concurrency"] == 1 and row["kind"] != "modal":
            add(f"ack {row['kind']} x1: bot p50 / bare p50", row["ratio_p50"], ACK_P50_X1_RATIO_MAX)
        if row["concurrency"] >= 50:
            add(f"ack {row['kind']} x{row['concurrency']}: bot p99 ms", row["bot"]["p99_ms"], ACK_P99_MAX_MS)
    for row in report["platform_calls"]:
        add(f"writes {row['platform']} N={row['n']} (min {row['min_writes']})", row["writes"], row["min_writes"])
    for row in report["socket_ack_latency"]:
        add(f"socket {row['kind']} x{row['concurrency']}: bot p99 / bare p99", row["ratio_p99"], ACK_RATIO_MAX)
    add("modal: click -> views.open max ms", report["modal_open"]["views_open"]["max_ms"], MODAL_OPEN_MAX_MS)
    add("handoff wall / bound", report["handoff"]["ratio"], HANDOFF_RATIO_MAX)
    fp = report["footprint"]
    add("RSS idle MB", fp["idle"]["rss_mb"], RSS_MAX_MB)
    add("RSS after load MB (peak)", fp["after_handoff"]["peak_rss_mb"], RSS_MAX_MB)
    add("start to ready s (median)", fp["startup_s"]["median"], STARTUP_MAX_S)
    add_storm_targets(report, add)
    return out + postgres_targets(report)


def aa_spread(rows: Sequence[dict[str, Any]]) -> dict[str, tuple[float, float]]:
    """Per concurrency level, the lowest and highest A/A p99 ratio (a second bare app over the bare
    app) of the ack rows: how far two identical apps differ in one run on this machine."""
    by_level: dict[str, list[float]] = {}
    for row in rows:
        if "control_ratio_p99" in row:
            by_level.setdefault(str(row["concurrency"]), []).append(row["control_ratio_p99"])
    return {level: (min(r), max(r)) for level, r in by_level.items()}


def add_storm_targets(report: dict[str, Any], add: Any) -> None:
    storm = report.get("alert_storm")
    if storm:
        add(f"storm {storm['alerts']}: represented / Slack-pace bound", storm["ratio"] or 0, STORM_RATIO_MAX)
        add(f"storm {storm['alerts']}: alerts lost or duplicated", storm["lost"] + storm["duplicated"], 0)
        add(f"storm {storm['alerts']}: calls inside Retry-After", storm["calls_inside_retry_after"], 0)


def print_storm(storm: dict[str, Any]) -> None:
    print(
        f"\n5. Alert storm: {storm['alerts']} alerts accepted in {storm['accepted_s']} s (HTTP {storm['statuses']}); "
        f"all represented in {storm['represented_s']} s as {storm['cards']} cards + {storm['digests']} digests "
        f"(min {storm['min_messages']} messages); bound {storm['bound_s']} s = {storm['bound_formula']}; "
        f"ratio {storm['ratio']}; 429s {storm['rate_limited_429']}, calls inside Retry-After "
        f"{storm['calls_inside_retry_after']}, lost {storm['lost']}, duplicated {storm['duplicated']}"
    )


def print_table(report: dict[str, Any]) -> None:
    m = report["machine"]
    print(f"\nMachine: {m['nproc']} CPUs, {m['cpu']}, Python {m['python']}, commit {m['commit']}")
    print(
        "\n1. Ack latency (ms)            bot p50   bot p99 | bare p50  bare p99 | floor p50 floor p99"
        " | p50 ratio p99 ratio | A/A p99 (a second bare app / the bare app)"
    )
    for row in report["ack_latency"]:
        b, r, f = row["bot"], row["bare"], row["floor"]
        print(
            f"   {row['kind']:7} x{row['concurrency']:<3} n={row['requests']:<5}  {b['p50_ms']:8.2f}  "
            f"{b['p99_ms']:8.2f} | {r['p50_ms']:8.2f}  {r['p99_ms']:8.2f} | {f['p50_ms']:8.2f}  {f['p99_ms']:8.2f}"
            f" | {row['ratio_p50']:9.2f} {row['ratio_p99']:9.2f}{aa_column(row)}"
        )
    print("   Socket Mode (envelope sent -> ack received)")
    for row in report["socket_ack_latency"]:
        b, r = row["bot"], row["bare"]
        print(
            f"   {row['kind']:7} x{row['concurrency']:<3} n={row['requests']:<5}  {b['p50_ms']:8.2f}  "
            f"{b['p99_ms']:8.2f} | {r['p50_ms']:8.2f}  {r['p99_ms']:8.2f} |        -         - "
            f"| {row['ratio_p50']:9.2f} {row['ratio_p99']:9.2f}{aa_column(row)}"
        )
    m_open = report["modal_open"]
    print(
        f"   modal: Assign… click -> views.open received, x{m_open['concurrency']} n={m_open['requests']}: "
        f"p50 {m_open['views_open']['p50_ms']:.2f} p99 {m_open['views_open']['p99_ms']:.2f} "
        f"max {m_open['views_open']['max_ms']:.2f} ms (Slack allows 3000)"
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
    if report.get("alert_storm"):
        print_storm(report["alert_storm"])
    if report.get("postgres"):
        print_postgres(report["postgres"])
    print("\nTargets:")
    for t in report["targets"]:
        print(f"   {'met   ' if t['met'] else 'MISSED'}  {t['target']}: {t['value']} (limit {t['limit']})")
    for key, rows in (("ack_aa_spread", "HTTP ack rows"), ("socket_aa_spread", "Socket Mode rows")):
        spread = report.get(key)
        if spread:
            print(
                f"A/A: a second copy of the bare app against the bare app, in the same {rows}, p99 ratio "
                + ", ".join(f"x{level} {lo:.2f}-{hi:.2f}" for level, (lo, hi) in spread.items())
            )
    for note in report["notes"]:
        print(f"Note: {note}")


async def run(cfg: Config) -> dict[str, Any]:
    began = time.perf_counter()
    tenants = await Tenants().start()
    servers: list[Server] = []
    gen: LoadGenerator | None = None
    with tempfile.TemporaryDirectory(prefix="triage-bench-") as tmp:
        workdir = Path(tmp)
        try:
            print("Starting the bot (python -m bot serve) ...", flush=True)
            startups = []
            for i in range(cfg.startup_runs - 1):  # cold starts on a fresh database, then stopped
                probe = await start_bot(tenants, workdir, f"startup{i}", xpanse_rate=cfg.xpanse_rate)
                startups.append(probe.startup_s)
                await probe.stop()
            bot = await start_bot(tenants, workdir, "bot", xpanse_rate=cfg.xpanse_rate)
            servers.append(bot)
            startups.append(bot.startup_s)
            bare_env = tenants.bot_env(db=workdir / "unused.db", xpanse_rate=cfg.xpanse_rate)
            bare = await start_server("bare", ["-m", "bench.bare_app"], env=bare_env, workdir=workdir)
            servers.append(bare)
            floor = await start_server("floor", ["-m", "bench.bare_app", "--floor"], env=bare_env, workdir=workdir)
            servers.append(floor)
            control = await start_server("control", ["-m", "bench.bare_app"], env=bare_env, workdir=workdir)
            servers.append(control)
            gen = await LoadGenerator.start()
            requests = Requests(tenants.slack)
            await quiesce(bot.pids)
            idle = family_memory_mb(bot.pid)
            print("1. Ack latency ...", flush=True)
            acks = await ack_latency(cfg, tenants, bot, bare, floor, gen, requests, control=control)
            await quiesce(bot.pids)
            modal = await modal_open(tenants, bot, requests, count=cfg.ack_requests // 3, level=10)
            after_acks = family_memory_mb(bot.pid)
            print("1b. Socket Mode acks ...", flush=True)
            socket_acks = await socket_ack_latency(cfg, tenants, workdir, gen)
            print("2. Platform calls per operation ...", flush=True)
            # Counting calls does not depend on the rate limit; a fast one keeps this section short.
            counter = await start_bot(tenants, workdir, "bot-calls", xpanse_rate=1000.0)
            servers.append(counter)
            calls = await platform_calls(cfg, tenants, counter, requests)
            await counter.stop()
            print("3. Handoff ...", flush=True)
            hand = await handoff(cfg, tenants, bot, requests)
            after_handoff = family_memory_mb(bot.pid)
            print("4. Alert storm ...", flush=True)
            storm = await alert_storm(tenants, workdir, n=cfg.storm_alerts, timeout_s=cfg.job_timeout_s)
            postgres = await postgres_sections(cfg, workdir, bare, floor, gen, control=control)
            report: dict[str, Any] = {
                "machine": machine(),
                "config": asdict(cfg),
                "notes": [
                    "The sandbox tenants have no per-request OpenAPI validation (the test suite's fakes add it).",
                    "The bots run with TRIAGE_RECONCILE_INTERVAL=3600: a card reconciler pass re-reads every "
                    "live card from the tenants, which answer in the benchmark's own (timing) process.",
                    "Ack load: each bot request is real work (an assign command, an Assign-me click or an "
                    "Assign… click that opens a modal, on a posted card, unique per request), so the bot's "
                    "jobs run after each ack, in its worker process; the bare app (Bolt defaults) and the "
                    "floor (process_before_response=True) get the same bodies. Each round starts once every "
                    "server is idle. Rows at 10 and 50 senders measure ack_requests_loaded requests per app "
                    "(1200 by default, so a p99 is not one stall of the shared host), 1 sender ack_requests.",
                    "Socket Mode: the bot (SLACK_APP_TOKEN set), the bare app (Bolt defaults) and a control "
                    "(a second bare app, for the A/A ratio) each connect to their own Socket Mode link, "
                    "served by the load generator's process (away from the tenants, which answer the bot's "
                    "worker); each envelope is timed there from being sent on the WebSocket to the app's ack "
                    "arriving; same commands and clicks as over HTTP, half as many, in rounds that rotate "
                    "which app goes first.",
                    "A/A: each ack row also measures a second copy of the bare app (control), with the same "
                    "bodies in the same rotation; control p99 / bare p99 is how far two identical apps land "
                    "apart in that row, the measurement's own spread on this machine. It is not a target.",
                    "Modal: Assign… clicks 10 at a time, timed from sending each to the Slack sandbox "
                    "receiving its views.open (the trigger's 3 s).",
                    "Platform calls are counted in a second bot process with XPANSE_RATE_LIMIT=1000 "
                    "(counts do not depend on the rate); Bob's identities are resolved before counting.",
                    "Handoff runs through Slack: /triage handoff to @bob, then the Confirm button; the sandbox "
                    "Xpanse tenant also enforces the rate limit (429s are counted).",
                ],
                "ack_latency": acks,
                "modal_open": modal,
                "socket_ack_latency": socket_acks,
                "platform_calls": calls,
                "handoff": hand,
                "alert_storm": storm,
                "postgres": postgres,
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
                    "command": "python -m bot serve (HTTP mode, web + worker process), until GET /readyz answers 200",
                },
                "contract_violations": tenants.violations(),
            }
            report["targets"] = targets(report)
            report["ack_aa_spread"] = aa_spread([*report["ack_latency"], *report["postgres"]["ack_latency"]])
            report["socket_aa_spread"] = aa_spread(report["socket_ack_latency"])
            report["duration_s"] = round(time.perf_counter() - began, 1)
        finally:
            if gen is not None:
                await gen.stop()
            await close_http()
            for server in servers:
                await server.stop()
            await tenants.stop()
    print_table(report)
    print(f"\nTook {report['duration_s']} s.")
    return report


async def storm_only(cfg: Config) -> int:
    """Section 5 alone (the other sections need minutes of a quiet machine)."""
    tenants = await Tenants().start()
    try:
        with tempfile.TemporaryDirectory(prefix="triage-bench-storm-") as tmp:
            storm = await alert_storm(tenants, Path(tmp), n=cfg.storm_alerts, timeout_s=cfg.job_timeout_s)
    finally:
        await close_http()
        await tenants.stop()
    print_storm(storm)
    rows: list[tuple[str, float, float]] = []
    add_storm_targets({"alert_storm": storm}, lambda name, value, limit: rows.append((name, value, limit)))
    for name, value, limit in rows:
        print(f"   {'met   ' if value <= limit else 'MISSED'}  {name}: {value} (limit {limit})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run with tiny N (seconds)")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"where to write the JSON (default {RESULTS.relative_to(REPO)}; none with --quick)",
    )
    parser.add_argument(
        "--requests", type=int, default=None, help="measured ack requests per app, kind and level (all levels)"
    )
    parser.add_argument("--storm-only", action="store_true", help="run only section 5, the alert storm")
    parser.add_argument("--postgres-only", action="store_true", help="run only sections 6-8, replicas on PostgreSQL")
    parser.add_argument("--socket-only", action="store_true", help="run only section 1b, Socket Mode acks")
    args = parser.parse_args(argv)
    cfg = Config.quick() if args.quick else Config()
    if args.storm_only:
        return asyncio.run(storm_only(cfg))
    if args.postgres_only:
        return 0 if asyncio.run(postgres_only(cfg)) else 1
    if args.socket_only:
        return 0 if asyncio.run(socket_only(cfg)) else 1
    if args.requests is not None:
        cfg.ack_requests = cfg.ack_requests_loaded = args.requests
    out = args.out if args.out is not None else (None if args.quick else RESULTS)
    report = asyncio.run(run(cfg))
    if out is not None:
        out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"Wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
