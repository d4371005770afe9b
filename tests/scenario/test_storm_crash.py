"""SIGKILL the real bot in the middle of a storm, restart it on the same database: still 0 lost, 0 twice."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from bot.sandbox.slack_pace import ChannelPace
from bot.sandbox.storm import represented, send_storm, storm_alerts
from tests.fakes.slack import SlackFake
from tests.scenario.harness import CHANNEL
from tests.scenario.proc_bot import BotProcess, bot_env, wait_until

TOKEN = "storm-hook-token-1234"


def in_flight(slack: SlackFake) -> int:
    """chat.postMessage requests received but not yet answered (the fake's latency is running)."""
    received = sum(1 for r in slack.requests if r.path.endswith("/chat.postMessage"))
    return received - len(slack.calls_to("chat.postMessage"))


async def test_sigkill_during_a_storm_loses_and_duplicates_nothing(tmp_path: Path, slack_fake: SlackFake) -> None:
    """1,000 alerts accepted, the bot killed after a few digests, restarted: every alert shown exactly once."""
    slack_fake.pace = ChannelPace(rate=5.0, burst=1)
    slack_fake.latency = 0.3  # a post takes a moment, so the kill can land in the middle of one
    env = bot_env(
        db=str(tmp_path / "triage.db"),
        slack=slack_fake,
        TRIAGE_WEBHOOK_TOKEN=TOKEN,
        TRIAGE_ALERT_CHANNEL=CHANNEL,
        TRIAGE_POST_INTERVAL="0.2",
    )
    alerts = storm_alerts(1000)
    keys = [a.key for a in alerts]
    first = await BotProcess(env, slack=slack_fake, log_dir=tmp_path, name="first").start()
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            answers = await send_storm(http, f"http://127.0.0.1:{first.port}", TOKEN, alerts)
        assert {r.status_code for r in answers} == {202}, [r.text for r in answers if r.status_code != 202][:1]
        await wait_until(lambda: represented(slack_fake, [CHANNEL]).digests >= 3, timeout=30, what="three digests")
        # Kill while a post is on the wire: Slack will store it, the bot never learns its ts.
        await wait_until(lambda: in_flight(slack_fake) > 0, timeout=10, what="a post in flight")
    finally:
        first.kill()
    before = represented(slack_fake, [CHANNEL])
    assert before.lost(keys), "the storm finished before the kill; nothing was tested"
    started = time.monotonic()
    second = await BotProcess(env, slack=slack_fake, log_dir=tmp_path, name="second").start()
    try:
        await wait_until(
            lambda: not represented(slack_fake, [CHANNEL]).lost(keys), timeout=60, what="every alert in Slack"
        )
    finally:
        second.terminate()
        await second.wait_exit(20)
    after = represented(slack_fake, [CHANNEL])
    print(
        f"\nstorm+SIGKILL: alerts=1000 before_kill={sum(before.seen.values())} cards={after.cards} "
        f"digests={after.digests} 429s={len(slack_fake.pace.rate_limited)} lost={len(after.lost(keys))} "
        f"duplicated={len(after.duplicated())} restart_to_done={time.monotonic() - started:.1f}s"
    )
    assert after.duplicated() == [], second.log()
    assert "intake_reconciled" in second.log(), "the restart did not check the post that was on the wire"
    assert slack_fake.pace.early_calls == []
