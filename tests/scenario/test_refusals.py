"""What a refused or unreachable vendor looks like in the thread: who refused, what the key lacks, which host."""

from __future__ import annotations

import socket

from tests.fakes.datadog import DatadogFake
from tests.fakes.slack import SlackFake
from tests.scenario.conftest import BOB, MakeBot
from tests.scenario.harness import CHANNEL

FINDING = "ZGVmLTAwcC1pZXJ-aS0wZjhjNjMyZDNmMzRlZTgzNw=="


def thread_text(slack: SlackFake) -> str:
    """Every section text of the bot's threaded replies in the channel, joined."""
    return "\n".join(
        b["text"]["text"]
        for m in slack.messages_in(CHANNEL)
        if m.get("thread_ts")
        for b in m.get("blocks") or []
        if b.get("type") == "section"
    )


async def test_datadog_403_names_the_missing_permission_in_the_item_line(
    make_bot: MakeBot, slack_fake: SlackFake, datadog_fake: DatadogFake
) -> None:
    """Datadog's own 403 body on the assignee write gives an item line naming the permission to grant."""
    bot = await make_bot()
    datadog_fake.add_finding(FINDING)
    datadog_fake.fail("/assignee", 403, body={"errors": ["Forbidden"]})
    await bot.command(f"assign dd:{FINDING} to <@{BOB}|bob>")
    await bot.settle()
    line = next(x for x in thread_text(slack_fake).splitlines() if FINDING in x)
    assert line == (
        f":x: `dd:{FINDING}` — Datadog refused (403): the application key lacks "
        "`security_monitoring_findings_write` (or `appsec_vm_write`)"
    )


async def test_unreachable_xpanse_names_the_host_and_the_tries(make_bot: MakeBot, slack_fake: SlackFake) -> None:
    """An Xpanse nobody listens on reads "could not reach Xpanse at <host> (connection refused); gave up after N"."""
    with socket.socket() as sock:  # a port that was free a moment ago: connection refused
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    bot = await make_bot(xpanse_api_url=dead)
    await bot.command("unassign xpanse:5471")
    await bot.settle(timeout=20)
    line = next(x for x in thread_text(slack_fake).splitlines() if "xpanse:5471" in x)
    assert line == ":x: `xpanse:5471` — could not reach Xpanse at 127.0.0.1 (connection refused); gave up after 3 tries"
