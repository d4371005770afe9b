"""The alert poster: drains the stored intake into Slack, one channel at Slack's pace.

The webhook only stores alerts (``bot.store.intake``); this poster, started beside the
workers, leases each channel that has work from the store (so one poster per channel
across processes and replicas, and a restarted process picks up where a killed one
stopped) and, per channel:

* redraws the card of an alert re-delivered with a new severity, status or title, with
  a thread note saying what changed;
* posts one card when at most ``digest_after`` alerts wait, else one digest listing up
  to ``DIGEST_ROWS`` of the oldest; what a full digest could not list rolls into the
  next digest, however few (so a storm's tail is not carded one a second);
* spaces its ``chat.postMessage`` calls ``interval`` seconds apart and, on a 429, records
  ``Retry-After`` for the channel as a whole and makes no call to it until then.

A call that may have landed (the process died, the connection broke) is reconciled
before anything else is posted there: the bot's own messages carry the alert key or
digest id in their metadata, and ``conversations.history`` says whether it arrived.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from typing import Any, Protocol

import structlog

from bot.metrics import (
    INTAKE_ALERTS,
    INTAKE_DIGESTS,
    INTAKE_OLDEST,
    INTAKE_QUEUE_DEPTH,
    INTAKE_RATE_LIMITED,
)
from bot.models import ItemState
from bot.slack_web import SlackApiError, SlackWeb, retry_after_seconds_of
from bot.store.cards import CardStore
from bot.store.intake import (
    CARDED,
    DIGESTING,
    POSTING,
    WAITING,
    DigestRow,
    IntakeStore,
    QueuedAlert,
)

log = structlog.get_logger(__name__)

Blocks = list[dict[str, Any]]
CARD_EVENT = "triage_alert"
DIGEST_EVENT = "triage_digest"
# Alerts per digest. A table block holds 100 rows (the first is the column header), but a
# message keeps under 8,000 characters of text: 60 rows leave every title readable.
DIGEST_ROWS = 60
LEASE_S = 6.0  # a dead poster's channels are taken over this long after its last renewal
HISTORY_SLACK_S = 600.0  # how far before the attempt to look for a message that landed


class IntakeRenderer(Protocol):
    """The Slack side's builders (``bot.slack``), injected so this layer renders nothing."""

    async def card(self, state: ItemState) -> tuple[str, Blocks]: ...

    def digest(self, digest_id: str, rows: Sequence[DigestRow]) -> tuple[str, Blocks]: ...

    def change(self, state: ItemState, note: str) -> tuple[str, Blocks]: ...


def _retry_after(exc: SlackApiError) -> float:
    """The wait a 429 asked for; a second when it did not say."""
    wait = retry_after_seconds_of(exc.response)
    return 1.0 if wait is None else wait


class Poster:
    """Per-channel posters over the intake store; ``start``/``stop`` beside the workers."""

    def __init__(
        self,
        intake: IntakeStore,
        slack: SlackWeb,
        render: IntakeRenderer,
        *,
        digest_after: int = 10,
        interval: float = 1.0,
        lease_s: float = LEASE_S,
        owner: str | None = None,
        cards: CardStore | None = None,
    ) -> None:
        self.intake = intake
        self.cards = cards  # the live-card registry the reconciler keeps true
        # The same connections without retrying a 429 or a 5xx: a 429 is honoured for the channel
        # here, and a post retried blindly could show a card twice.
        # Its timeout stays well inside the lease, so a hung call cannot outlive our claim.
        self.slack = slack.with_options(timeout=max(1.0, lease_s / 2), rate_limit_retries=0, server_error_retries=0)
        self.render = render
        self.digest_after = digest_after
        self.interval = interval
        self.lease_s = lease_s
        self.owner = owner or uuid.uuid4().hex[:12]
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._supervisor: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._last_post: dict[str, float] = {}
        self._failures: dict[str, int] = {}
        self._rollover: set[str] = set()  # channels whose last digest was full with more waiting

    @property
    def running(self) -> bool:
        return self._supervisor is not None and not self._supervisor.done()

    async def start(self) -> None:
        self._supervisor = asyncio.create_task(self._supervise(), name="intake-poster")

    def wake(self) -> None:
        """New alerts were stored: look for work now rather than at the next tick."""
        self._wake.set()

    async def stop(self) -> None:
        tasks = [t for t in (self._supervisor, *self._tasks.values()) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._supervisor = None
        for channel in list(self._tasks):
            await self.intake.release(channel, self.owner)
        self._tasks.clear()

    async def idle(self, timeout: float = 30.0) -> bool:
        """Wait until nothing is left to post (for tests and the shell); False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._tasks and not await self.intake.stats() and not await self._changes_left():
                return True
            self.wake()
            await asyncio.sleep(0.05)
        return False

    async def _changes_left(self) -> bool:
        for channel in await self.intake.channels():
            if await self.intake.changed(channel, limit=1):
                return True
        return False

    async def update_metrics(self) -> None:
        stats = await self.intake.stats()
        now = time.time()
        for channel in set(await self.intake.channels()):
            depth, oldest = stats.get(channel, (0, None))
            INTAKE_QUEUE_DEPTH.labels(channel).set(depth)
            INTAKE_OLDEST.labels(channel).set(now - oldest if oldest else 0)

    # ---- the loops -----------------------------------------------------------------------

    async def _supervise(self) -> None:
        while True:
            try:
                for channel in await self.intake.claim_channels(self.owner, lease_s=self.lease_s):
                    if channel not in self._tasks:
                        self._tasks[channel] = asyncio.create_task(self._drain(channel), name=f"poster-{channel}")
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("intake_claim_failed")
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), 0.5)
            except TimeoutError:
                pass

    async def _drain(self, channel: str) -> None:
        try:
            reconcile = True
            while await self.intake.renew(channel, self.owner, lease_s=self.lease_s):
                await self._wait_turn(channel)
                try:
                    if reconcile:
                        await self._reconcile(channel)
                        reconcile = False
                    did = await self._step(channel)
                except SlackApiError as exc:
                    await self._refused(channel, exc)
                    continue
                except (asyncio.CancelledError, KeyboardInterrupt):
                    raise
                except Exception as exc:  # the call may have landed: reconcile before the next one
                    log.warning("intake_post_uncertain", channel=channel, error=f"{type(exc).__name__}: {exc}")
                    await self.intake.block(channel, time.time() + self._backoff(channel))
                    reconcile = True
                    continue
                self._failures.pop(channel, None)
                if not did:
                    await self.intake.release(channel, self.owner)
                    return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("intake_drain_crashed", channel=channel)
        finally:
            self._tasks.pop(channel, None)

    async def _wait_turn(self, channel: str) -> None:
        """Sleep until the channel's next slot: our own pacing and any Retry-After."""
        while True:
            now = time.time()
            until = max(await self.intake.blocked_until(channel), self._last_post.get(channel, 0) + self.interval)
            if until <= now:
                return
            await asyncio.sleep(min(until - now, self.lease_s / 3))
            await self.intake.renew(channel, self.owner, lease_s=self.lease_s)

    def _backoff(self, channel: str) -> float:
        n = self._failures[channel] = self._failures.get(channel, 0) + 1
        return float(min(300, 2 ** min(n, 9)))

    async def _refused(self, channel: str, exc: SlackApiError) -> None:
        """A Slack error answer: nothing was posted, so the alerts wait again."""
        for alert in await self.intake.in_status(channel, POSTING):
            await self.intake.move([alert.target], WAITING)
        for digest_id in {a.digest_id for a in await self.intake.in_status(channel, DIGESTING) if a.digest_id}:
            await self.intake.digest_abandoned(digest_id)
        if exc.response.status_code == 429:
            wait = _retry_after(exc)
            INTAKE_RATE_LIMITED.labels(channel).inc()
            log.info("intake_rate_limited", channel=channel, retry_after=wait)
        else:
            wait = self._backoff(channel)
            log.warning("intake_post_refused", channel=channel, error=exc.response.get("error"), retry_in=wait)
        await self.intake.block(channel, time.time() + wait)

    async def _post(self, channel: str, **kwargs: Any) -> str:
        self._last_post[channel] = time.time()
        resp = await self.slack.chat_postMessage(channel=channel, **kwargs)
        self._last_post[channel] = time.time()
        return str(resp["ts"])

    async def _step(self, channel: str) -> bool:
        """Do the next thing the channel needs; False when there is nothing left."""
        changed = await self.intake.changed(channel, limit=1)
        if changed:
            await self._redraw(channel, changed[0])
            return True
        waiting = await self.intake.count_waiting(channel)
        # Rows a full digest could not list roll into the next digest, however few.
        if waiting > self.digest_after or (waiting and channel in self._rollover):
            await self._digest(channel, await self.intake.in_status(channel, WAITING, limit=DIGEST_ROWS))
            return True
        if waiting:
            (alert,) = await self.intake.in_status(channel, WAITING, limit=1)
            await self._card(channel, alert)
            return True
        return False

    async def _card(self, channel: str, alert: QueuedAlert) -> None:
        text, blocks = await self.render.card(alert.state)
        await self.intake.move([alert.target], POSTING)
        ts = await self._post(
            channel,
            text=text,
            blocks=blocks,
            metadata={"event_type": CARD_EVENT, "event_payload": {"key": alert.target.key}},
        )
        await self.intake.move([alert.target], CARDED, card_ts=ts)
        if self.cards is not None:
            await self.cards.record(channel=channel, ts=ts, state=alert.state, now=time.time())
        INTAKE_ALERTS.labels("posted").inc()

    async def _digest(self, channel: str, alerts: Sequence[QueuedAlert]) -> None:
        rows = [(a.target, a.state.severity or "", a.state.title) for a in alerts]
        digest_id = await self.intake.new_digest(channel, rows)
        text, blocks = self.render.digest(digest_id, await self.intake.digest_rows(digest_id))
        ts = await self._post(
            channel, text=text, blocks=blocks, metadata={"event_type": DIGEST_EVENT, "event_payload": {"id": digest_id}}
        )
        await self.intake.digest_posted(digest_id, ts)
        if len(alerts) >= DIGEST_ROWS and await self.intake.count_waiting(channel):
            self._rollover.add(channel)
        else:
            self._rollover.discard(channel)
        INTAKE_ALERTS.labels("digested").inc(len(alerts))
        INTAKE_DIGESTS.inc()

    async def _redraw(self, channel: str, alert: QueuedAlert) -> None:
        assert alert.card_ts and alert.change_note
        text, blocks = await self.render.card(alert.state)
        try:
            await self.slack.chat_update(channel=channel, ts=alert.card_ts, text=text, blocks=blocks)
        except SlackApiError as exc:
            if exc.response.status_code == 429:
                raise
            # The card is gone (deleted, too old to edit): the stored state stands.
            log.warning("intake_card_update_failed", channel=channel, error=exc.response.get("error"))
            await self.intake.noted(alert.target, alert.change_note)
            return
        if self.cards is not None:
            await self.cards.record(channel=channel, ts=alert.card_ts, state=alert.state, now=time.time())
        note_text, note_blocks = self.render.change(alert.state, alert.change_note)
        await self._post(channel, thread_ts=alert.card_ts, text=note_text, blocks=note_blocks)
        await self.intake.noted(alert.target, alert.change_note)
        INTAKE_ALERTS.labels("updated").inc()

    # ---- after a crash ----------------------------------------------------------------------

    async def _reconcile(self, channel: str) -> None:
        """Settle calls that may have landed: adopt what Slack has, re-queue what it has not."""
        cards = await self.intake.in_status(channel, POSTING)
        digested = await self.intake.in_status(channel, DIGESTING)
        if not cards and not digested:
            return
        since = min(a.attempt_at or a.received_at for a in (*cards, *digested)) - HISTORY_SLACK_S
        found = await self._history(channel, since)
        for alert in cards:
            ts = found.get((CARD_EVENT, alert.target.key))
            await self.intake.move([alert.target], CARDED if ts else WAITING, card_ts=ts)
        for digest_id in {a.digest_id for a in digested if a.digest_id}:
            ts = found.get((DIGEST_EVENT, digest_id))
            if ts:
                await self.intake.digest_posted(digest_id, ts)
            else:
                await self.intake.digest_abandoned(digest_id)
        log.info("intake_reconciled", channel=channel, cards=len(cards), digested=len(digested), found=len(found))

    async def _history(self, channel: str, since: float) -> dict[tuple[str, str], str]:
        """(event type, key or digest id) -> ts of the bot's messages in ``channel`` since ``since``."""
        found: dict[tuple[str, str], str] = {}
        cursor: str | None = None
        try:
            for _ in range(20):
                resp = await self.slack.conversations_history(
                    channel=channel, oldest=f"{since:.6f}", include_all_metadata=True, limit=200, cursor=cursor
                )
                for message in resp.get("messages") or []:
                    meta = message.get("metadata") or {}
                    payload = meta.get("event_payload") or {}
                    ref = payload.get("key") if meta.get("event_type") == CARD_EVENT else payload.get("id")
                    if meta.get("event_type") in (CARD_EVENT, DIGEST_EVENT) and ref:
                        found[(str(meta["event_type"]), str(ref))] = str(message["ts"])
                cursor = (resp.get("response_metadata") or {}).get("next_cursor") or None
                if not cursor:
                    break
        except SlackApiError as exc:
            if exc.response.status_code == 429:
                raise  # not an answer: ask again after Retry-After
            # Without history (no channels:history scope) an uncertain post is sent again:
            # at least once, never lost.
            log.warning("intake_history_unavailable", channel=channel, error=exc.response.get("error"))
        return found
