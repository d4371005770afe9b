"""Cards that stay true, and reminders: the reconciler and the reminder pass.

Every ``interval`` the reconciler re-reads the items of the live cards (posted or updated
within ``window``, from ``bot.store.cards``) in the platforms' batch reads (``JobRunner.fetch``:
Datadog 50 ids a query, one Kibana search per space, Xpanse ``get_incidents`` behind its
rate limiter) and redraws, in place, each card whose item changed outside Slack (assignee,
status, severity, case, muted), with a line saying so and when. An unchanged card costs no
Slack call; an item the platform did not return (a failed read, a deleted item) is left as
the card shows it.

Then the reminder pass: an item carded at or above ``remind_severity`` and still unassigned
``remind_after`` after its card was posted gets one nudge in the card's thread, mentioning
who is on call now on the schedule of the card's channel (none configured: nobody). One
nudge per item: ``card_reminders`` is keyed by the item, across restarts and replicas.

A lease in the store (``loop_leases``) makes one replica at a time do both; ``run_once(now)``
takes the clock from its caller, so tests and the shell move time without sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog

from bot.core.oncall import OnCallWatcher
from bot.errors import PlatformError
from bot.metrics import CARDS_CHECKED, CARDS_UPDATED, REMINDERS_SENT
from bot.models import ItemState, Target
from bot.rules import vocabulary
from bot.slack_web import SlackApiError, SlackRequestError, SlackWeb
from bot.store.cards import CardStore, LiveCard, changes, snapshot

log = structlog.get_logger(__name__)

Blocks = list[dict[str, Any]]
Fetch = Callable[[Sequence[Target]], Awaitable[tuple[dict[str, ItemState], dict[str, str]]]]
# channel, now -> (the schedule posting to that channel or None, the Slack ids on call now)
OnCall = Callable[[str, datetime], Awaitable[tuple[str | None, list[str]]]]
LEASE = "reconciler"
BATCH = 500  # targets per JobRunner.fetch call (each platform client pages its own reads)
GONE = ("message_not_found", "cant_update_message", "channel_not_found", "is_archived", "edit_window_closed")


class TruthRenderer(Protocol):
    """The Slack side's builders (``bot.slack.truth``), injected so this layer renders nothing."""

    async def changed(
        self, state: ItemState, before: dict[str, Any], fields: Sequence[str], at: datetime
    ) -> tuple[str, Blocks]: ...

    def nudge(
        self, state: ItemState, *, schedule: str | None, mentions: Sequence[str], after_s: float
    ) -> tuple[str, Blocks]: ...


@dataclass
class Pass:
    """What one ``run_once`` did."""

    checked: int = 0  # cards whose item was read
    updated: int = 0  # cards redrawn
    unread: int = 0  # cards whose item the platform did not return (left as they are)
    reminded: int = 0  # nudges posted


class Reconciler:
    """The reconcile-and-remind loop over the live cards."""

    def __init__(
        self,
        cards: CardStore,
        fetch: Fetch,
        slack: SlackWeb,
        render: TruthRenderer,
        *,
        window_s: float,
        interval_s: float,
        remind_after_s: float,
        remind_severity: str,
        oncall: OnCall | None = None,
        owner: str | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.cards = cards
        self.fetch = fetch
        self.slack = slack
        self.render = render
        self.window_s = window_s
        self.interval_s = interval_s
        self.remind_after_s = remind_after_s
        self.remind_severity = remind_severity.strip().lower()
        self.oncall = oncall
        self.owner = owner or uuid.uuid4().hex[:12]
        self.clock = clock
        self.lease_s = max(2 * interval_s, 60.0)
        self._task: asyncio.Task[None] | None = None

    # ---- lifecycle -------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="card-reconciler")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            with contextlib.suppress(Exception):
                await self.cards.release(LEASE, self.owner)

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception:  # the loop outlives any one bad pass; the cause is logged
                log.exception("reconcile_pass_crashed")
            await asyncio.sleep(self.interval_s)

    # ---- one pass ----------------------------------------------------------------------------

    async def run_once(self, now: datetime | None = None) -> Pass | None:
        """Reconcile the live cards, then send due reminders, at ``now`` (default: the clock);
        None when another replica holds the lease."""
        now = now or self.clock()
        if not await self.cards.lease(LEASE, self.owner, now=now.timestamp(), lease_s=self.lease_s):
            return None
        done = await self.reconcile(now)
        done.reminded = await self.remind(now)
        log.info("reconcile_pass", checked=done.checked, updated=done.updated, unread=done.unread,
                 reminded=done.reminded)  # fmt: skip
        return done

    async def _read(self, targets: Sequence[Target]) -> dict[str, ItemState]:
        unique = list({t.key: t for t in targets}.values())
        states: dict[str, ItemState] = {}
        for first in range(0, len(unique), BATCH):
            found, problems = await self.fetch(unique[first : first + BATCH])
            states.update(found)
            if problems:
                log.info("reconcile_unread", count=len(problems), sample=next(iter(problems.values())))
        return states

    async def reconcile(self, now: datetime) -> Pass:
        """Redraw every live card whose item's platform state differs from what it shows."""
        done = Pass()
        live = await self.cards.live(since=now.timestamp() - self.window_s)
        if not live:
            return done
        states = await self._read([c.target for c in live])
        for card in live:
            state = states.get(card.target.key)
            if state is None:
                done.unread += 1  # a failed read must not blank a card: it stays as it is
                continue
            done.checked += 1
            CARDS_CHECKED.inc()
            fields = changes(card.shown, snapshot(state))
            if fields and await self._redraw(card, state, fields, now):
                done.updated += 1
        return done

    async def _redraw(self, card: LiveCard, state: ItemState, fields: Sequence[str], now: datetime) -> bool:
        text, blocks = await self.render.changed(state, card.shown, fields, now)
        try:
            await self.slack.chat_update(channel=card.channel, ts=card.ts, text=text, blocks=blocks)
        except SlackApiError as exc:
            error = exc.response.get("error")
            log.warning("reconcile_update_failed", channel=card.channel, ts=card.ts, error=error)
            if error in GONE:
                await self.cards.forget(card.channel, card.ts)
            return False
        except SlackRequestError as exc:
            log.warning("reconcile_update_failed", channel=card.channel, ts=card.ts, error=type(exc).__name__)
            return False
        await self.cards.record(
            channel=card.channel, ts=card.ts, state=state, now=now.timestamp(), thread_ts=card.thread_ts
        )
        CARDS_UPDATED.labels(state.target.platform.value).inc()
        log.info("card_reconciled", channel=card.channel, ts=card.ts, target=card.target.key, fields=list(fields))
        return True

    # ---- reminders -----------------------------------------------------------------------------

    def _due(self, target: Target, severity: str | None, assigned: bool) -> bool:
        return not assigned and vocabulary.severity_at_least(target.platform, severity, self.remind_severity)

    async def remind(self, now: datetime) -> int:
        """Nudge, once per item, each carded item at or above the severity still unassigned."""
        if self.remind_severity in ("", "off", "none"):
            return 0
        at = now.timestamp()
        waiting = await self.cards.unreminded(posted_before=at - self.remind_after_s, since=at - self.window_s)
        first: dict[str, LiveCard] = {}
        for card in waiting:
            if self._due(card.target, card.shown.get("severity"), not card.unassigned):
                first.setdefault(card.target.key, card)
        if not first:
            return 0
        states = await self._read([c.target for c in first.values()])
        sent = 0
        for key, card in first.items():
            state = states.get(key)
            # Unread, or assigned / downgraded since: no nudge (the reconciler redraws the card).
            if state is None or not self._due(state.target, state.severity, bool(state.assignees)):
                continue
            if await self._nudge(card, state, now):
                sent += 1
        return sent

    async def _nudge(self, card: LiveCard, state: ItemState, now: datetime) -> bool:
        if not await self.cards.claim_reminder(card, now=now.timestamp()):
            return False  # another replica sent it
        schedule, mentions = (None, []) if self.oncall is None else await self.oncall(card.channel, now)
        text, blocks = self.render.nudge(state, schedule=schedule, mentions=mentions, after_s=self.remind_after_s)
        try:
            await self.slack.chat_postMessage(
                channel=card.channel, thread_ts=card.thread_ts or card.ts, text=text, blocks=blocks
            )
        except (SlackApiError, SlackRequestError) as exc:
            log.warning("reminder_failed", channel=card.channel, target=card.target.key, error=type(exc).__name__)
            await self.cards.unclaim_reminder(card.target)  # not sent: the next pass tries again
            return False
        REMINDERS_SENT.labels(state.target.platform.value).inc()
        log.info("reminder_sent", channel=card.channel, target=card.target.key, mentions=len(mentions))
        return True


def oncall_lookup(watcher: OnCallWatcher) -> OnCall:
    """Who is on call now on the schedule whose channel is the card's (the watcher's config,
    sources and Slack matching); a failed read mentions nobody rather than holding the nudge."""

    async def lookup(channel: str, now: datetime) -> tuple[str | None, list[str]]:
        for schedule in watcher.config.schedules:
            if schedule.channel != channel:
                continue
            source = watcher.sources.get(schedule.source)
            if source is None:
                return schedule.name, []
            try:
                roster = await source.roster(schedule.id, at=now)
                team = await watcher.team()
                found = [await watcher._match(team, r.email, r, schedule) for r in roster.current]
            except (PlatformError, SlackApiError, SlackRequestError, TimeoutError) as exc:
                log.warning("reminder_oncall_unknown", schedule=schedule.name, error=type(exc).__name__)
                return schedule.name, []
            return schedule.name, [u for u in found if u]
        return None, []

    return lookup
