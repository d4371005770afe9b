"""The Undo button on a write's result: offered for a while, then taken off the message.

``UndoOffers`` is mixed into the reporter (the only code that writes to Slack after the
ack): the first message of an undoable write's result carries the Undo button, and the
job keeps where it is, until when, and the message's blocks without it
(``JobParams.undo``); when the undo itself is reported the button gives way to who
undid it. ``UndoSweeper`` takes the buttons
whose window is over off their messages: ``run_once(now)`` is one pass (tests call it
with their own clock), ``start`` runs it every few seconds where the jobs run.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from typing import Any

import structlog

from bot.core.undo import UNDOABLE, undoable_items
from bot.models import Job, JobItem, UndoOffer, Verb
from bot.slack.blocks._kit import _button, _context
from bot.slack.ids import ActionId
from bot.slack.metadata import UndoRef
from bot.slack.threads import Post
from bot.slack_web import SlackApiError, SlackRequestError, SlackWeb
from bot.store.jobs import JobStore

log = structlog.get_logger(__name__)

SWEEP_INTERVAL_S = 5.0
WINDOW_OVER = ":leftwards_arrow_with_hook: The time to undo this change is over."
MESSAGE_BLOCKS_MAX = 50
_SLACK_ERRORS = (SlackApiError, SlackRequestError, TimeoutError)


def undo_blocks(job: Job, seconds: int) -> list[dict[str, Any]]:
    """The Undo line a write's result carries: who may undo it and for how long, and the button."""
    text = f"<@{job.actor_id}> (or an admin) can undo this {job.verb.value} for {seconds} s."
    button = _button("Undo", ActionId.UNDO, value=UndoRef(id=job.id).dumps(), style="danger")
    return [
        _context(f":leftwards_arrow_with_hook: {text}"),
        {"type": "actions", "block_id": "undo", "elements": [button]},
    ]


class UndoOffers:
    """Puts the Undo button on a result, then takes it off (needs the reporter's ``slack`` and ``jobs``)."""

    slack: SlackWeb
    jobs: JobStore
    undo_seconds: int = 0

    def with_undo(self, job: Job, items: Sequence[JobItem], post: Post) -> Post:
        """``post``, with the Undo button on the first message it sends when the write offers one."""
        if not self.undo_seconds or job.verb not in UNDOABLE or not job.channel_id or job.params.undo is not None:
            return post
        if not undoable_items(items):
            return post
        channel, first = job.channel_id, True

        async def posting(text: str, blocks_: list[dict[str, Any]], thread: str | None) -> str | None:
            nonlocal first
            if not first or len(blocks_) > MESSAGE_BLOCKS_MAX - 2:
                return await post(text, blocks_, thread)
            first = False
            # Kept before the post, so a click that beats the store's update still finds the window.
            job.params.undo = UndoOffer(channel=channel, until=time.time() + self.undo_seconds)
            await self.jobs.update_params(job.id, job.params)
            ts = await post(text, [*blocks_, *undo_blocks(job, self.undo_seconds)], thread)
            job.params.undo = job.params.undo.model_copy(update={"ts": ts or "", "text": text, "blocks": blocks_})
            await self.jobs.update_params(job.id, job.params)
            return ts

        return posting

    async def close_offer(self, write: Job, text: str) -> bool:
        """Take the Undo button off its message, saying ``text`` instead; True once done (or nothing to do)."""
        offer = write.params.undo
        if offer is None or offer.closed:
            return True
        if offer.ts:
            try:
                await self.slack.chat_update(
                    channel=offer.channel, ts=offer.ts, text=offer.text or text, blocks=[*offer.blocks, _context(text)]
                )
            except _SLACK_ERRORS as exc:
                log.info("undo_offer_not_closed", job_id=write.id, error=type(exc).__name__)
                return False
        write.params.undo = offer.model_copy(update={"closed": True, "text": "", "blocks": []})
        await self.jobs.update_params(write.id, write.params)
        return True

    async def undone(self, job: Job) -> None:
        """After an undo job is reported: the write's Undo button says who undid it."""
        write = await self.jobs.get(job.params.undo_of or "")
        if write is not None and job.verb is Verb.UNDO:
            await self.close_offer(write, f":leftwards_arrow_with_hook: Undone by <@{job.actor_id}>.")


class UndoSweeper:
    """Takes Undo buttons whose window is over off their messages."""

    def __init__(self, offers: UndoOffers, jobs: JobStore, *, interval: float = SWEEP_INTERVAL_S) -> None:
        self.offers = offers
        self.jobs = jobs
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    async def run_once(self, now: float) -> int:
        """Close every offer whose window ended before ``now``; returns how many were closed."""
        closed = 0
        for job in await self.jobs.undo_offers():
            offer = job.params.undo
            if offer is not None and not offer.closed and offer.until <= now:
                closed += await self.offers.close_offer(
                    job, ":leftwards_arrow_with_hook: The time to undo this change is over."
                )
        return closed

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="undo-sweeper")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.run_once(time.time())
            except Exception:  # a store hiccup must not end the sweeps
                log.exception("undo_sweep_failed")
