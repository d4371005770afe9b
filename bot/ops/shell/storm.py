"""The shell's ``storm N``: replay an alert storm through the webhook path and watch the digests.

The alerts go through the same code as ``POST /alerts/{platform}`` (parse, route, the
one door, the durable intake), 50 a batch, into the shell's channel; the sandbox Slack
then enforces Slack's pace (one message a second per channel, 429 + Retry-After), so
the poster posts a few cards and rolls the rest into digests with bulk buttons.
"""

from __future__ import annotations

import json
import time
from typing import Protocol

from bot.models import Platform
from bot.runtime import Services
from bot.sandbox.slack import SlackEvent, SlackSandbox
from bot.sandbox.storm import represented, storm_alerts
from bot.web import IngestRefused, ingest


class Shell(Protocol):
    """What ``storm`` needs of the shell session (``bot.ops.shell.session.Shell``)."""

    services: Services
    slack: SlackSandbox
    channel: str
    sandbox: bool

    def say(self, text: str = "") -> None: ...

    def flush_events(self) -> list[SlackEvent]: ...


STORM_MAX = 5000


async def run_storm(shell: Shell, arg: str) -> None:
    """``storm N``: N alerts at once; prints how Slack showed them once the poster is done."""
    if not shell.sandbox:
        shell.say("`storm` replays fake alerts: it runs in the sandbox only (`triage-bot shell --sandbox`).")
        return
    try:
        n = int(arg.strip() or "200")
    except ValueError:
        shell.say("Usage: storm <number of alerts>, e.g. `storm 200`")
        return
    if not 1 <= n <= STORM_MAX:
        shell.say(f"storm takes 1 to {STORM_MAX} alerts")
        return
    services = shell.services
    start = int(time.time() * 1000) % 10_000_000
    alerts = storm_alerts(n, seed=start, start=start)
    pace, rate = shell.slack.pace, shell.slack.pace.rate
    pace.rate = 1.0  # Slack's pace for the storm, so the digests show
    started = time.monotonic()
    try:
        for platform in Platform:
            mine = [a for a in alerts if a.platform == platform.value]
            for first in range(0, len(mine), 50):
                body = json.dumps({"alerts": [a.body for a in mine[first : first + 50]]}).encode()
                try:
                    await ingest(services, platform, body, default_channel=shell.channel)
                except IngestRefused as exc:
                    shell.say(f"the webhook refused a batch: {exc.reason}")
                    return
        shell.say(f"{n} alerts accepted in {time.monotonic() - started:.2f} s; posting at Slack's pace…")
        await services.poster.idle(timeout=max(60.0, n / 5))
        shell.flush_events()
    finally:
        pace.rate = rate
    shown = represented(shell.slack, [shell.channel])
    keys = [a.key for a in alerts]
    shell.say(
        f"storm: {n} alerts in {time.monotonic() - started:.1f} s — {shown.cards} cards, {shown.digests} digests "
        f"(so far in this channel), {len(pace.rate_limited)} 429s from Slack, "
        f"{len(shown.lost(keys))} lost, {len(shown.duplicated())} duplicated. "
        "Press the digest's buttons (`cards` lists them)."
    )
