"""The shell's ``rotate``: a shift change in the sandbox schedule, watched at once.

``rotate [schedule] [to @person]`` hands the sandbox schedule (``bot.sandbox.oncall``) to
the person named, or to whoever is next, from this second, then polls the watcher once at
that time instead of waiting for its interval: the handoff preview with Confirm / Cancel
appears in the channel (and in both people's DMs), and ``press confirm`` hands off.
Rotating again before that is a flip back: the pending handoff is cancelled.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Protocol

from bot.runtime import Services
from bot.sandbox.oncall import ScheduleBook
from bot.sandbox.slack import SlackEvent, SlackSandbox

__all__ = ["HELP", "ScheduleBook", "rotate"]

HELP = "  rotate [schedule] [to @person]  sandbox: shift change now (default: whoever is next); `oncall` shows it"


class Shell(Protocol):
    """What ``rotate`` uses of the session (``bot.ops.shell.session.Shell``)."""

    schedules: ScheduleBook | None
    services: Services
    slack: SlackSandbox

    def say(self, text: str = "") -> None: ...
    async def settle(self, timeout: float = 30.0) -> None: ...
    def flush_events(self) -> list[SlackEvent]: ...


def _when(book: ScheduleBook, schedule_id: str) -> datetime:
    """Now, to the second (what the schedule APIs are asked at), after the last shift change."""
    now = datetime.now(UTC).replace(microsecond=0)
    last = max((s.start for s in book.shifts.get(schedule_id, []) if s.start <= now), default=None)
    return max(now, last + timedelta(seconds=1)) if last is not None else now


async def rotate(shell: Shell, arg: str) -> None:
    """Run one ``rotate`` line."""
    book, watcher = shell.schedules, shell.services.oncall
    if book is None:
        shell.say("`rotate` works in the sandbox only: real schedules change on their own. Try `oncall`.")
        return
    words = arg.split()
    target = None
    if "to" in words:
        at_word = words.index("to")
        target, words = " ".join(words[at_word + 1 :]), words[:at_word]
    names = watcher.schedule_names()
    name = words[0] if words else (names[0] if len(names) == 1 else "")
    schedule = watcher.config.get(name)
    if schedule is None:
        shell.say(f"Which schedule? Configured: {', '.join(names) or 'none'}. Usage: rotate [schedule] [to @person]")
        return
    users = None
    if target:
        slack_user = shell.slack.user_named(target)
        email = (slack_user.email or "") if slack_user else ""
        found = [p.id for p in book.people.values() if email and p.email == email]
        if not found:
            shell.say(f"{target} is not in the schedule's roster: try one of @{', @'.join(_names(book))}.")
            return
        users = found
    at = _when(book, schedule.id)
    # Two rotations within a second: wait for the clock, so `oncall` (asked at the real time) agrees.
    await asyncio.sleep(max(0.0, (at - datetime.now(UTC)).total_seconds()))
    outgoing, incoming = book.hand_over(schedule.id, users, at=at)
    if not incoming:
        shell.say(f"Nobody is next on {name}: say who, e.g. `rotate {name} to @bob`.")
        return
    before, after = _who(book, outgoing), _who(book, incoming)
    shell.say(f"Shift change on {name}: {before} → {after}. Polling the schedule now (no waiting)…")
    await watcher.poll_once(at)
    await shell.settle()
    if not shell.flush_events():
        shell.say(f"Nothing to hand off ({watcher.status.get(name, 'not polled')}).")
    await watcher.poll_once(at)  # the watcher's next look: closes a handoff that found nothing to move
    await shell.settle()
    shell.flush_events()


def _names(book: ScheduleBook) -> list[str]:
    return [p.email.split("@")[0] for p in book.people.values()]


def _who(book: ScheduleBook, ids: list[str]) -> str:
    people = [book.people[i].email if i in book.people else i for i in ids]
    return ", ".join(people) or "nobody"
