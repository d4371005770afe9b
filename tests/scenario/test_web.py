"""Operational routes: liveness, readiness and Prometheus metrics, over real HTTP."""

from __future__ import annotations

import re

from tests.fakes.xpanse import XpanseFake
from tests.scenario.harness import BotHarness

SAMPLE = re.compile(
    r'^triage_actions_total\{outcome="done",platform="xpanse",verb="comment"\} (?P<value>[0-9.e+]+)$', re.M
)


def comment_count(metrics: str) -> float:
    """The done-comment-on-Xpanse sample of triage_actions_total (0 before the first)."""
    match = SAMPLE.search(metrics)
    return float(match.group("value")) if match else 0.0


async def test_healthz(bot: BotHarness) -> None:
    """GET /healthz answers 200 ok while the process is up."""
    resp = await bot.http.get(f"{bot.url}/healthz")
    assert resp.status_code == 200 and resp.json() == {"status": "ok"}


async def test_readyz_follows_the_workers(bot: BotHarness) -> None:
    """GET /readyz is 200 with the store open and workers running, 503 (naming why) once the workers stop."""
    resp = await bot.http.get(f"{bot.url}/readyz")
    assert resp.status_code == 200
    assert resp.json() == {"ready": True, "checks": {"store": True, "workers": True, "poster": True}}
    await bot.svc.workers.stop(1.0)
    resp = await bot.http.get(f"{bot.url}/readyz")
    assert resp.status_code == 503
    assert resp.json() == {"ready": False, "checks": {"store": True, "workers": False, "poster": True}}


async def test_metrics_count_actions(bot: BotHarness, xpanse_fake: XpanseFake) -> None:
    """GET /metrics is Prometheus text whose triage_actions_total grows by one per item acted on."""
    xpanse_fake.add_incident("5471")
    before = await bot.http.get(f"{bot.url}/metrics")
    assert before.status_code == 200 and before.headers["content-type"].startswith("text/plain")
    await bot.command("comment xpanse:5471 looked at it")
    await bot.settle()
    after = (await bot.http.get(f"{bot.url}/metrics")).text
    assert "# TYPE triage_actions_total counter" in after
    assert comment_count(after) == comment_count(before.text) + 1
    assert "triage_slack_ack_seconds_bucket" in after and "triage_job_queue_depth" in after
