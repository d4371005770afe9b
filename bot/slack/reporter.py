"""Tells Slack how a job ended: a threaded reply, the card updated to the platform's state.

The reporter runs on the worker after a job reached a terminal state (or a
handoff preview was collected). Slack failures are logged and, for slash
commands, fall back to the command's ``response_url``; they never lose the
job's stored outcome.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import structlog

from bot import rules
from bot.core.identity import IdentityResolver
from bot.core.runner import JobRunner
from bot.core.verbs import with_details
from bot.models import (
    WRITE_VERBS,
    BatchResult,
    HandoffPlan,
    ItemState,
    Job,
    JobItem,
    JobState,
    Outcome,
    Verb,
)
from bot.slack import blocks
from bot.slack.metadata import HandoffRef
from bot.slack.overlays import overlay
from bot.slack.render import refusal
from bot.slack.replies import Replies
from bot.slack.surfaces import SurfaceWriter
from bot.slack.threads import send_result
from bot.slack.undo_offers import UndoOffers
from bot.slack_web import SlackApiError, SlackRequestError, SlackWeb
from bot.store.cards import CardStore
from bot.store.jobs import JobStore

log = structlog.get_logger(__name__)

# What follows "<verb.past> <n items>" in a write's summary; the wording itself is Verb.past.
_SUMMARY_TAIL = {
    Verb.ASSIGN: " to {who}",
    Verb.ATTACH: " to case {case}",
    Verb.SEVERITY: " to {severity}",
    Verb.TAG: " ({tags})",
}


def _items_word(n: int) -> str:
    return f"{n} item" + ("" if n == 1 else "s")


class Reporter(Replies, SurfaceWriter, UndoOffers):
    """Renders job outcomes into Slack."""

    def __init__(self, *, slack: SlackWeb, runner: JobRunner, identity: IdentityResolver, jobs: JobStore,
                 cards: CardStore | None = None) -> None:  # fmt: skip
        self.slack = slack
        self.runner = runner
        self.identity = identity
        self.jobs = jobs
        self.cards = cards  # the live-card registry the reconciler keeps true

    async def _track(self, channel: str | None, ts: str | None, state: ItemState | None, thread: str | None) -> None:
        if self.cards is not None and channel and ts and state is not None:
            await self.cards.record(channel=channel, ts=ts, state=state, now=time.time(), thread_ts=thread)

    # ---- cards -----------------------------------------------------------------------

    async def mentions(self, state: ItemState) -> list[str]:
        found = []
        for value in state.assignees:
            user = await self.identity.slack_user_for(state.target.platform, value)
            if user:
                found.append(user)
        return found

    async def card(self, state: ItemState, *, note: str | None = None) -> list[dict[str, Any]]:
        state = await with_details(self.runner.clients, state)
        return blocks.alert_card(state, assignee_mentions=await self.mentions(state), actor_note=note)

    async def post_card(self, *, channel: str, state: ItemState, thread_ts: str | None = None) -> str:
        """Post one alert card; returns its ts. Raises ``SlackApiError`` when Slack refuses."""
        resp = await self.slack.chat_postMessage(
            channel=channel,
            thread_ts=thread_ts,
            text=blocks.alert_card_text(state),
            blocks=await self.card(state),
        )
        await self._track(channel, str(resp["ts"]), state, thread_ts)
        return str(resp["ts"])

    # ---- entry point ---------------------------------------------------------------------

    async def report(self, job: Job) -> bool:
        """Post the job's outcome; True once Slack took it.

        Slack errors are logged, not raised; on False the job stays unreported and is
        reported again on the next start rather than silently dropped.
        """
        items = await self.jobs.items(job.id)
        verb = job.verb
        try:
            if job.params.refused:
                await self._refused(job, items, job.params.refused)
            elif verb is Verb.HANDOFF:
                await self._handoff(job, items)
            elif verb in (Verb.SHOW, Verb.REFRESH):
                await self._show(job, items)
            else:
                await self._write(job, verb, items)
                await self.undone(job)
        except SlackApiError as exc:
            log.warning("report_failed", job_id=job.id, error=exc.response.get("error"))
            return False
        except SlackRequestError as exc:
            log.warning("report_failed", job_id=job.id, error=type(exc).__name__)
            return False
        return True

    async def _respond(
        self, job: Job, *, text: str, blocks_: list[dict[str, Any]] | None = None, ephemeral: bool = False
    ) -> None:
        if not job.response_url:
            log.warning("report_undeliverable", job_id=job.id)
            return
        status = await self.slack.respond(
            job.response_url,
            {
                "text": text,
                "blocks": blocks_,
                "response_type": "ephemeral" if ephemeral else "in_channel",
                "replace_original": False,
            },
        )
        if status >= 400:  # an expired URL: what was stored stands, and retrying cannot help
            log.warning("respond_refused", job_id=job.id, status=status)

    async def _post(
        self,
        job: Job,
        *,
        text: str,
        blocks_: list[dict[str, Any]],
        thread_ts: str | None = None,
        fallback: list[dict[str, Any]] | None = None,
    ) -> str | None:
        """chat.postMessage in the job's channel; returns its ts. When the bot cannot post
        there (not a member, a DM it is not in), sends ``fallback`` (else ``blocks_``) through
        the job's response_url instead and returns None."""
        if job.channel_id:
            try:
                resp = await self.slack.chat_postMessage(
                    channel=job.channel_id, thread_ts=thread_ts, text=text, blocks=blocks_
                )
                return str(resp["ts"])
            except SlackApiError as exc:
                if exc.response.get("error") not in ("not_in_channel", "channel_not_found", "is_archived"):
                    raise
                log.info("post_fallback_response_url", job_id=job.id, error=exc.response.get("error"))
        await self._respond(job, text=text, blocks_=fallback or blocks_)
        return None

    async def _refused(self, job: Job, items: Sequence[JobItem], reason: str) -> None:
        """A job refused before any write: one message, in the card's (or preview's) thread
        when there is one, else in the channel; the cards are left as they are."""
        message = refusal(reason, actor_id=job.actor_id, keys=[i.target.key for i in items])
        thread = job.thread_ts or job.card_ts
        await self._post(job, text=message["text"], blocks_=message["blocks"], thread_ts=thread)

    # ---- writes ---------------------------------------------------------------------------

    def _summary(self, job: Job, verb: Verb, result: BatchResult) -> str:
        p = job.params
        head = verb.past if verb in WRITE_VERBS else verb.value
        if verb in (Verb.RESOLVE, Verb.REOPEN) and result.items:
            # On Datadog alone, resolving is muting and reopening unmuting: say so.
            if all(rules.CAPABILITIES[i.target.platform].mute for i in result.items):
                head = "muted" if verb is Verb.RESOLVE else "unmuted"
        template = head + " {n}" + _SUMMARY_TAIL.get(verb, "")
        who = f"<@{p.assignee}>" if p.assignee else "someone"
        tags = " ".join([*(f"+{t}" for t in p.tags_add), *(f"-{t}" for t in p.tags_remove)])
        return template.format(
            n=_items_word(len(result.items)), who=who, case=p.case or "", severity=p.severity or "", tags=tags
        )

    async def _write(self, job: Job, verb: Verb, items: Sequence[JobItem]) -> None:
        """The per-item detail in a thread, paged and with a CSV for big jobs (``bot.slack.threads``)."""
        result = BatchResult.of(i.result() for i in items)
        summary = self._summary(job, verb, result)
        text = blocks.result_text(verb, result, actor_id=job.actor_id, summary=summary)
        detail = blocks.result_blocks(verb, result, actor_id=job.actor_id, summary=summary)

        async def plain(text_: str, blocks_: list[dict[str, Any]], thread: str | None) -> str | None:
            return await self._post(
                job, text=text_, blocks_=blocks_, thread_ts=thread, fallback=None if thread else detail
            )

        post = self.with_undo(job, items, plain)  # the first message of the result carries Undo

        async def reply(thread: str) -> None:
            await send_result(
                self.slack,
                post,
                channel=job.channel_id,
                thread_ts=thread,
                verb=verb,
                result=result,
                actor_id=job.actor_id,
                summary=summary,
                job_id=job.id,
            )

        if job.card_ts and job.channel_id:
            await reply(job.thread_ts or job.card_ts)
            await self._update_cards(job, verb, items)
            return
        # The summary in the channel, the per-item detail in its thread; where the bot
        # cannot post, the (truncated) detail goes through the response_url in one message.
        parent = await post(text, detail[:2], None)
        if parent:
            await reply(parent)

    async def _update_cards(self, job: Job, verb: Verb, items: Sequence[JobItem]) -> None:
        """Redraw the card from the platform's state, with confirmed writes laid over it."""
        assert job.channel_id and job.card_ts
        target = items[0].target
        states, problems = await self.runner.fetch([target])
        state = states.get(target.key)
        note = blocks.updated_note(job.actor_id, datetime.now(UTC))
        if state is None:
            if verb is Verb.ASSIGN or items[0].state.value != Outcome.NOT_FOUND.value:
                # A failed read must not blank a card that still shows the item.
                log.info("card_not_redrawn", target=target.key, reason=problems.get(target.key))
                return
            card = blocks.missing_card(target, problems.get(target.key, "not found"))
            await self.slack.chat_update(
                channel=job.channel_id, ts=job.card_ts, text=blocks.missing_card_text(target, ""), blocks=card
            )
            return
        state = overlay(state, verb, items[0].result(), job.params)
        await self.slack.chat_update(
            channel=job.channel_id,
            ts=job.card_ts,
            text=blocks.alert_card_text(state),
            blocks=await self.card(state, note=note),
        )
        await self._track(job.channel_id, job.card_ts, state, job.thread_ts)

    # ---- show / refresh -------------------------------------------------------------------

    async def _show(self, job: Job, items: Sequence[JobItem]) -> None:
        targets = [i.target for i in items]
        states, problems = await self.runner.fetch(targets)
        if job.verb == Verb.REFRESH and job.card_ts and job.channel_id:
            t = targets[0]
            state = states.get(t.key)
            if state is None:
                await self.slack.chat_update(
                    channel=job.channel_id,
                    ts=job.card_ts,
                    text=blocks.missing_card_text(t, ""),
                    blocks=blocks.missing_card(t, problems.get(t.key, "not found")),
                )
            else:
                await self.slack.chat_update(
                    channel=job.channel_id,
                    ts=job.card_ts,
                    text=blocks.alert_card_text(state),
                    blocks=await self.card(state, note=blocks.updated_note(job.actor_id, datetime.now(UTC))),
                )
                await self._track(job.channel_id, job.card_ts, state, job.thread_ts)
            return
        for t in targets:
            state = states.get(t.key)
            if state is not None:
                text, card = blocks.alert_card_text(state), await self.card(state)
            else:
                reason = problems.get(t.key, "not found")
                text, card = blocks.missing_card_text(t, reason), blocks.missing_card(t, reason)
            ts = await self._post(job, text=text, blocks_=card, thread_ts=job.thread_ts)
            await self._track(job.channel_id, ts, state, job.thread_ts)

    # ---- handoff ------------------------------------------------------------------------

    async def _handoff(self, job: Job, items: Sequence[JobItem]) -> None:
        p = job.params
        assert p.from_user and p.assignee
        ref = HandoffRef(id=job.id)
        if job.state is JobState.CANCELLED:
            return  # withdrawn before its preview (a rotation flipped back): the watcher said so
        if job.state is JobState.AWAITING_CONFIRM:
            states = [ItemState(target=i.target) for i in items]
            plan = p.handoff or HandoffPlan()
            unmapped = plan.unmapped
            preview = blocks.handoff_preview(
                ref, from_user=p.from_user, to_user=p.assignee, items=states, unmapped=unmapped
            )
            problems = plan.problems
            if problems:
                preview.insert(
                    1,
                    {
                        "type": "context",
                        "elements": [
                            {
                                "type": "mrkdwn",
                                "text": "; ".join(f"{k.label}: {v}" for k, v in problems.items())[:2900],
                            }
                        ],
                    },
                )
            text = blocks.handoff_preview_text(from_user=p.from_user, to_user=p.assignee, items=states)
            if plan.schedule:
                preview.insert(1, blocks.shift_change_note(plan, from_user=p.from_user, to_user=p.assignee))
            ts = await self._post(job, text=text, blocks_=preview)
            if ts:
                await self.jobs.set_message(job.id, channel_id=job.channel_id, card_ts=ts, thread_ts=None)
            if plan.schedule:  # a shift change: both people are told directly too
                for user in (p.from_user, p.assignee):
                    dm = await self.slack.conversations_open(users=user)
                    await self.slack.chat_postMessage(channel=dm["channel"]["id"], text=text, blocks=preview)
            return
        result = BatchResult.of(i.result() for i in items)
        detail = blocks.handoff_result(
            ref, result=result, actor_id=job.actor_id, from_user=p.from_user, to_user=p.assignee
        )
        text = blocks.handoff_result_text(
            result=result, actor_id=job.actor_id, from_user=p.from_user, to_user=p.assignee
        )
        thread: str | None
        if job.channel_id and job.card_ts:
            thread = job.thread_ts or job.card_ts
            await self.slack.chat_postMessage(channel=job.channel_id, thread_ts=thread, text=text, blocks=detail)
        else:
            thread = await self._post(job, text=text, blocks_=detail)
        summary = f"handed off <@{p.from_user}>'s items to <@{p.assignee}>"
        if thread and not blocks.lists_every_item(result, actor_id=job.actor_id, summary=summary):
            # Too many items to name in one message: every item follows in the thread, paged
            # within Slack's limits, with a CSV for big handoffs (bot.slack.threads).
            async def post(text_: str, blocks_: list[dict[str, Any]], thread_: str | None) -> str | None:
                return await self._post(job, text=text_, blocks_=blocks_, thread_ts=thread_)

            await send_result(
                self.slack,
                post,
                channel=job.channel_id,
                thread_ts=thread,
                verb=Verb.HANDOFF,
                result=result,
                actor_id=job.actor_id,
                summary=summary,
                job_id=job.id,
            )
        done = BatchResult.of(r for r in result.items if r.outcome.ok)
        if done.items:
            dm = await self.slack.conversations_open(users=p.assignee)
            channel = dm["channel"]["id"]
            summary = f"handed {_items_word(len(done.items))} of <@{p.from_user}> to you"
            await self.slack.chat_postMessage(
                channel=channel,
                text=blocks.result_text(Verb.HANDOFF, done, actor_id=job.actor_id, summary=summary),
                blocks=blocks.result_blocks(Verb.HANDOFF, done, actor_id=job.actor_id, summary=summary),
            )
