"""The shell's ``home``, ``paste <link>`` and ``undo``: the App Home, a link unfurl and Undo, on the console.

``home`` delivers ``app_home_opened`` for the shell's user and prints the Home the bot
published; ``paste`` delivers ``link_shared`` for a link typed into the shell's channel
and prints the compact card it unfurled into; ``undo`` presses the newest result's Undo.
All go through the real listeners and the one door, like Slack's payloads; the Home's
and the unfurl's buttons become numbered cards for ``press``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol
from urllib.parse import urlsplit

from bot.ops.shell.storm import run_storm
from bot.sandbox import payloads
from bot.sandbox.render import buttons, render_blocks
from bot.sandbox.slack import SlackEvent, SlackSandbox


class Shell(Protocol):
    """What ``home`` and ``paste`` need of the shell session (``bot.ops.shell.session.Shell``)."""

    slack: SlackSandbox
    team: str
    channel: str
    user: str

    def say(self, text: str = "") -> None: ...

    def name_of(self, user_id: str) -> str | None: ...

    def flush_events(self) -> list[SlackEvent]: ...

    def show_event(self, event: SlackEvent) -> None: ...

    async def dispatch(self, body: dict[str, Any]) -> dict[str, Any]: ...

    async def settle(self, timeout: float = 30.0) -> None: ...


def _event(shell: Shell, event: dict[str, Any]) -> dict[str, Any]:
    return payloads.event_callback(event, team_id=shell.team, event_id=f"Ev{time.time_ns()}")


def _show(shell: Shell, blocks: list[dict[str, Any]], *, ts: str) -> None:
    """Print blocks: as a numbered card when they have buttons (so ``press`` finds them), else as text."""
    if buttons(blocks):
        shell.show_event(SlackEvent("post", shell.channel, ts, None, "", blocks))
        return
    for line in render_blocks(blocks, name_of=shell.name_of, indent="  "):
        shell.say(line)


async def home(shell: Shell, _arg: str = "") -> None:
    """``home``: open the Home tab as the shell's user and print what the bot published."""
    before = len(shell.slack.calls_to("views.publish"))
    await shell.dispatch(_event(shell, payloads.app_home_opened(user_id=shell.user)))
    await shell.settle()
    shell.flush_events()
    view = shell.slack.homes.get(shell.user)
    if view is None or len(shell.slack.calls_to("views.publish")) == before:
        shell.say("The bot published no Home tab.")
        return
    shell.say("Home tab:")
    blocks: list[dict[str, Any]] = view.get("blocks") or []
    # One card per item (its line and its buttons), so `press resolve <n>` picks the item.
    head: list[dict[str, Any]] = []
    for index, block in enumerate(blocks):
        if block.get("type") == "actions" and head and head[-1].get("type") == "section":
            _show(shell, [head.pop(), block], ts=f"home.{time.time_ns()}.{index}")
            continue
        for pending in head:
            _show(shell, [pending], ts=f"home.{time.time_ns()}.{index}")
        head = [block]
    for pending in head:
        _show(shell, [pending], ts=f"home.{time.time_ns()}.end")


async def paste(shell: Shell, arg: str) -> None:
    """``paste <link>``: post a platform link as a person would and print its unfurl."""
    url = arg.strip().strip("<>")
    if not urlsplit(url).hostname:
        shell.say("Give a link, e.g. `paste https://app.datadoghq.com/security/findings?finding_id=<id>`.")
        return
    ts = f"{int(time.time())}.{time.time_ns() % 1_000_000:06d}"
    shell.say(f"you pasted {url}")
    before = len(shell.slack.unfurls)
    event = payloads.link_shared(user_id=shell.user, channel=shell.channel, message_ts=ts, urls=[url])
    await shell.dispatch(_event(shell, event))
    await shell.settle()
    shell.flush_events()
    if len(shell.slack.unfurls) == before:
        shell.say("Not unfurled: the host is not in TRIAGE_UNFURL_DOMAINS, or the link names no alert.")
        return
    for unfurl in shell.slack.unfurls[-1]["unfurls"].values():
        _show(shell, list(unfurl.get("blocks") or []), ts=ts)


async def undo(shell: Shell, _arg: str = "") -> None:
    """``undo``: press the Undo button of the newest result in the shell's channel that still has one."""
    for message in reversed(shell.slack.messages_in(shell.channel)):
        found = [(b, e) for b, e in buttons(message.get("blocks") or []) if e.get("action_id") == "undo"]
        if found:
            block, element = found[0]
            break
    else:
        shell.say("No result offers Undo now (the window may be over).")
        return
    body = payloads.block_actions(
        action=payloads.button("undo", str(element.get("value", "")), block_id=str(block.get("block_id", "undo"))),
        user_id=shell.user,
        team_id=shell.team,
        channel_id=shell.channel,
        message=message,
        message_ts=str(message["ts"]),
        trigger_id=f"undo.{time.time_ns()}",
        response_url=shell.slack.webhook_url(f"undo{time.time_ns()}"),
    )
    shell.say("(pressed [Undo])")
    await shell.dispatch(body)
    await shell.settle()
    shell.flush_events()


SURFACES: dict[str, Callable[[Any, str], Awaitable[None]]] = {
    "home": home,
    "paste": paste,
    "undo": undo,
    "storm": run_storm,
}
