"""The shell's ``reconcile`` and ``remind``: cards that stay true, and reminders, seen in the console.

``reconcile [n]`` changes card #n's item (the latest card if omitted) straight through the
platform's API, as someone working in the platform's own UI would (sandbox Bob takes it, or
drops it if it is assigned), then runs the reconciler once: the card is redrawn in place
with a line saying it changed outside Slack. ``remind [minutes]`` runs a pass with the clock
moved forward (by ``TRIAGE_REMIND_AFTER`` and a minute, unless told), so unassigned items at
or above ``TRIAGE_REMIND_SEVERITY`` get their one nudge in the card's thread.

``EXTRA`` maps these (and ``storm``) to their handlers for the session's dispatch.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from bot.errors import PlatformError, UserError
from bot.models import Platform
from bot.ops.shell.forms import Card
from bot.ops.shell.storm import run_storm
from bot.runtime import Services
from bot.sandbox import BOB
from bot.sandbox.slack import SlackEvent


class Shell(Protocol):
    """What these commands need of the shell session (``bot.ops.shell.session.Shell``)."""

    services: Services
    cards: dict[int, Card]
    sandbox: bool

    def say(self, text: str = "") -> None: ...

    def flush_events(self) -> list[SlackEvent]: ...


def _bob_on(platform: Platform) -> str:
    """Sandbox Bob's identity on ``platform`` (what its assign takes)."""
    ids = {Platform.DATADOG: BOB.datadog, Platform.KIBANA: BOB.kibana, Platform.XPANSE: BOB.email}
    return ids[platform] or BOB.email


def _summary(done: Any) -> str:
    if done is None:
        return "another replica holds the reconciler's lease: nothing done here"
    return (
        f"reconciler: {done.checked} live cards read, {done.updated} redrawn, "
        f"{done.unread} not returned by their platform (left as they are), {done.reminded} reminders sent"
    )


async def run_reconcile(shell: Shell, arg: str) -> None:
    """``reconcile [n]``: change card #n's item outside Slack, then run the reconciler once."""
    if not shell.sandbox:
        shell.say("`reconcile` changes an item behind the bot's back: sandbox only (`triage-bot shell --sandbox`).")
        return
    text = arg.strip().lstrip("#")
    if not shell.cards or (text and not text.isdigit()):
        shell.say("Usage: reconcile [card number] — `show` an item first (`cards` lists them).")
        return
    card = shell.cards.get(int(text) if text else max(shell.cards))
    reconciler = shell.services.reconciler
    live = await reconciler.cards.get(card.channel, card.ts) if card else None
    if card is None or live is None:
        shell.say("That card is not an alert card the reconciler keeps (try `cards`).")
        return
    target = live.target
    client = shell.services.clients[target.platform]
    label = target.platform.label
    try:
        if live.unassigned:
            await client.assign([target], _bob_on(target.platform), user_name=BOB.real_name)
            shell.say(f"(outside Slack) in {label}, {BOB.real_name} assigns {target.key} to themselves.")
        else:
            await client.unassign([target])
            shell.say(f"(outside Slack) in {label}, someone unassigns {target.key}.")
    except (PlatformError, UserError) as exc:
        shell.say(f"{label} refused the change: {exc.message}")
        return
    done = await reconciler.run_once()
    shell.flush_events()
    shell.say(_summary(done))


async def run_remind(shell: Shell, arg: str) -> None:
    """``remind [minutes]``: one reconciler pass with the clock moved forward."""
    reconciler = shell.services.reconciler
    text = arg.strip()
    if text and not text.replace(".", "", 1).isdigit():
        shell.say("Usage: remind [minutes to move the clock forward]")
        return
    ahead = timedelta(minutes=float(text)) if text else timedelta(seconds=reconciler.remind_after_s + 60)
    shell.say(
        f"(clock moved {int(ahead.total_seconds() // 60)} min forward) reminding unassigned items at or above "
        f"{reconciler.remind_severity or 'off'} carded over {int(reconciler.remind_after_s // 60)} min ago…"
    )
    done = await reconciler.run_once(datetime.now(UTC) + ahead)
    shell.flush_events()
    shell.say(_summary(done))


EXTRA: dict[str, Callable[[Any, str], Awaitable[None]]] = {
    "storm": run_storm,
    "reconcile": run_reconcile,
    "remind": run_remind,
}
