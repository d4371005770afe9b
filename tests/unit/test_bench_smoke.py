"""Smoke run of the benchmark (``python -m bench.run --quick``): the machinery works end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_quick_benchmark_runs_every_section_and_checks_its_own_numbers(tmp_path: Path) -> None:
    """`python -m bench.run --quick` starts the bot, the bare app, the floor and the load generator, and
    reports every section: every ack answered 200, modals opened, every assignment and the handoff
    really applied on the fakes, write counts at or above the API minimum, and memory (per process, the
    worker's too) and start-up time measured; sections 6-8 on a PostgreSQL server of their own (acks on
    PostgreSQL, jobs per second with 1 and 2 worker replicas, the handoff across two replicas) did their work."""
    out = tmp_path / "results.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,  # 45 s to 2.5 min on the 2-core machines it runs on
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())

    assert report["machine"]["nproc"] >= 1 and report["machine"]["python"]
    assert report["contract_violations"] == []

    acks = report["ack_latency"]
    assert {row["kind"] for row in acks} == {"command", "button", "modal"}
    for row in acks:
        ok = {"200": row["requests"]}
        assert row["statuses"] == {"bot": ok, "bare": ok, "floor": ok, "control": ok}
        assert 0 < row["floor"]["p50_ms"] <= row["floor"]["p99_ms"]
        assert 0 < row["control"]["p50_ms"] <= row["control"]["p99_ms"]  # the A/A copy of the bare app
        assert row["control_ratio_p99"] == round(row["control"]["p99_ms"] / row["bare"]["p99_ms"], 2)
        assert 0 < row["bare"]["p50_ms"] <= row["bare"]["p99_ms"]
        assert 0 < row["bot"]["p50_ms"] <= row["bot"]["p99_ms"]
        if row["kind"] == "command":  # the bot accepted each command as a job, none as a duplicate
            assert row["bot_acks"] == {"On it: assign 1 item.": row["requests"]}

    levels = {str(row["concurrency"]) for row in acks}
    assert set(report["ack_aa_spread"]) == levels
    assert all(0 < lo <= hi for lo, hi in report["ack_aa_spread"].values())

    storm = report["alert_storm"]  # section 5: every alert in Slack once, at Slack's pace
    assert storm["statuses"] == [202] and storm["lost"] == storm["duplicated"] == 0
    assert storm["calls_inside_retry_after"] == 0 and storm["digests"] >= 1

    calls = report["platform_calls"]
    assert {row["platform"] for row in calls} == {"datadog", "kibana", "xpanse"}
    for row in calls:
        assert row["job_state"] == "done" and row["applied"] == row["n"], row
        assert row["writes"] >= row["min_writes"] >= 1, row

    handoff = report["handoff"]
    assert handoff["job_state"] == "done"
    assert handoff["applied"] == handoff["total"] == sum(handoff["items"].values())
    assert handoff["wall_s"] > 0 and handoff["bound_s"] > 0
    assert handoff["calls"]["xpanse"]["writes"] >= handoff["items"]["xpanse"]

    sockets = report["socket_ack_latency"]
    assert {row["kind"] for row in sockets} == {"command", "button"}
    assert all(0 < row["bot"]["p50_ms"] <= row["bot"]["p99_ms"] for row in sockets)
    assert all(row["control_ratio_p99"] > 0 for row in sockets)  # the Socket Mode control was measured

    modal = report["modal_open"]
    assert 0 < modal["ack"]["p50_ms"] <= modal["views_open"]["p50_ms"]

    pg = report["postgres"]  # sections 6-8: the bot and its replicas on one PostgreSQL
    assert pg["contract_violations"] == []
    assert [row["kind"] for row in pg["ack_latency"]] == ["command"]
    for row in pg["ack_latency"]:
        assert row["statuses"]["bot"] == {"200": row["requests"]}
        assert row["statuses"]["control"] == {"200": row["requests"]}
        assert row["bot_acks"] == {"On it: assign 1 item.": row["requests"]}
    throughput = pg["throughput"]
    assert [row["workers"] for row in throughput["rows"]] == [1, 2]
    for row in throughput["rows"]:
        assert row["applied"] == row["jobs"] and row["states"] == {"done": row["jobs"]}, row
        assert row["statuses"] == {"200": row["jobs"]} and row["jobs_per_s"] > 0
    assert throughput["speedup"] > 0
    replicated = pg["handoff"]
    assert replicated["job_state"] == "done" and replicated["applied"] == replicated["total"]
    assert replicated["bound_s"] > 0 and replicated["replicas"] == 2

    footprint = report["footprint"]
    assert set(footprint["idle"]["per_process"]) == {"web", "worker0"}
    assert 10 < footprint["idle"]["rss_mb"] <= footprint["after_handoff"]["peak_rss_mb"]
    assert footprint["startup_s"]["median"] > 0
    assert report["targets"] and all(isinstance(t["met"], bool) for t in report["targets"])
