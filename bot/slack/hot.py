"""The hot requests: ``/triage`` and the card's buttons, answered without Bolt's dispatch.

These are the requests that come in bursts (a channel working through a wave of alerts): a
command or a job button is stored as a job before its acknowledgement, a form button
(Assign…, Resolve…) is authorised and acknowledged and its modal opened after. Bolt's
dispatch runs its middleware chain and then tries every registered listener in turn until
one matches, which for these requests costs more CPU than building and storing the job.
``HotRoutes.answer`` recognises them from the parsed body as Bolt's matchers would (the
command name; the first action's ``action_id`` of a ``block_actions`` payload) and runs the
same listener body Bolt runs for them (``triage``, ``job_button`` and ``form_button``, which
``bot.slack.listeners`` registers on Bolt too), with Bolt's own ``AsyncAck`` building the
response and the same error answers (``bot.slack.errors.ErrorAnswers``). For every other
request it returns None and the request goes to Bolt. Bolt's middleware does nothing these
requests need: the signature is checked before (``bot.web``), the bot's identity was fetched
at start, and the rest concerns events.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import structlog
from slack_bolt.async_app import AsyncAck
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.answers import Reply
from bot.core.door import Core
from bot.core.service import ActionRequest, Step
from bot.metrics import SLACK_ACK_LATENCY
from bot.models import JobParams, Verb
from bot.slack import blocks
from bot.slack import context as ctx
from bot.slack.commands import parse_command
from bot.slack.errors import ErrorAnswers
from bot.slack.ids import ActionId
from bot.slack.render import render
from bot.slack.reporter import Reporter

log = structlog.get_logger(__name__)

COMMAND = "/triage"

# The card buttons that store a job: the verb each asks for, and whether the clicker is the assignee.
JOB_BUTTONS: dict[str, tuple[Verb, bool]] = {
    ActionId.ASSIGN_ME.value: (Verb.ASSIGN, True),
    ActionId.UNASSIGN.value: (Verb.UNASSIGN, False),
    ActionId.REFRESH.value: (Verb.REFRESH, False),
    ActionId.UNMUTE.value: (Verb.REOPEN, False),
    ActionId.REOPEN.value: (Verb.REOPEN, False),
    ActionId.ACK.value: (Verb.ACK, False),
    ActionId.DETACH.value: (Verb.DETACH, False),
}


# The card buttons that open a form (a modal; nothing is stored until it is submitted).
FORM_BUTTONS: dict[str, Verb] = {
    ActionId.ASSIGN_OPEN.value: Verb.ASSIGN,
    ActionId.ATTACH_OPEN.value: Verb.ATTACH,
    ActionId.RESOLVE_OPEN.value: Verb.RESOLVE,
    ActionId.MUTE_OPEN.value: Verb.RESOLVE,  # Datadog's resolve modal is the mute modal
    ActionId.TAG_OPEN.value: Verb.TAG,
}


def form_view(request: ActionRequest) -> dict[str, Any]:
    """The modal a card's form button opens for ``request``."""
    meta = ctx.form_meta(request)
    if request.verb is Verb.ASSIGN:
        return blocks.assign_modal(meta)
    if request.verb is Verb.ATTACH:
        return blocks.attach_modal(meta)
    if request.verb is Verb.TAG:
        return blocks.tag_modal(meta)
    return blocks.resolve_modal(meta, platform=request.targets[0].platform)


class Background:
    """Tracks the work started after an acknowledgement, logging its failures."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[None]] = set()

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background_task_failed", exc_info=task.exception())


class Acker:
    """Acknowledges a Slack request once, recording how long the acknowledgement took."""

    def __init__(self, ack: AsyncAck, kind: str) -> None:
        self._ack = ack
        self._kind = kind
        self._started = time.perf_counter()

    async def __call__(self, **body: Any) -> None:
        await self._ack(**body)
        SLACK_ACK_LATENCY.labels(self._kind).observe(time.perf_counter() - self._started)


class HotRoutes:
    """The ``/triage`` and job-button listener bodies, and the route to them that skips Bolt."""

    def __init__(
        self,
        *,
        core: Core,
        reporter: Reporter,
        background: Background,
        errors: ErrorAnswers,
        default_space: str,
        client: AsyncWebClient,
    ) -> None:
        self.core, self.reporter, self.background = core, reporter, background
        self.errors, self.default_space, self.client = errors, default_space, client

    def follow_up(self, reply: Reply, response_url: str | None) -> None:
        """After the ack: the answer that had to wait for the network, sent where the request came from."""
        later = reply.later
        if later is None:
            return

        async def send() -> None:
            message = render(await later())
            if message is not None:
                await self.reporter.ephemeral(response_url, message)

        self.background.spawn(send())

    async def triage(self, ack: AsyncAck, command: dict[str, Any]) -> None:
        """``/triage <text>``: parsed, through the door, acknowledged with the answer it has now."""
        cmd = parse_command(
            command.get("text") or "", actor_id=command.get("user_id") or "", default_space=self.default_space
        )
        reply = await self.core.handle(ctx.command_request(command, cmd))
        await Acker(ack, "command")(**(render(reply.now) or {}))
        self.follow_up(reply, command.get("response_url"))

    async def job_button(self, ack: AsyncAck, body: dict[str, Any], verb: Verb, *, me: bool) -> None:
        """A card button that stores a job: through the door, then an empty acknowledgement."""
        params = JobParams(assignee=ctx.actor(body)) if me else None
        await self.core.handle(ctx.button_request(body, verb, params=params))
        await Acker(ack, "button")()

    async def form_button(self, ack: AsyncAck, body: dict[str, Any], verb: Verb) -> None:
        """A card button that opens a form: authorised through the door, acknowledged, then the modal opened."""
        request = ctx.button_request(body, verb, step=Step.FORM)
        await self.core.handle(request)
        await Acker(ack, "button")()
        # The modal is built and opened after the ack, from what it needs (not the click's payload, which
        # carries the whole card): in a burst of clicks the openings queue up behind their acks.
        self.background.spawn(self._open_view(str(body.get("trigger_id", "")), request))

    async def _open_view(self, trigger_id: str, request: ActionRequest) -> None:
        response_url = request.response_url
        try:
            await self.client.views_open(trigger_id=trigger_id, view=form_view(request))
        except SlackApiError as exc:
            error = exc.response.get("error")
            text = f"Slack could not open the form ({error}); try again."
            await self.reporter.ephemeral(response_url, {"text": text})
        except Exception:
            log.exception("form_not_opened", verb=request.verb.value)
            await self.reporter.ephemeral(response_url, {"text": "The form could not be opened; try again."})

    def route(self, body: dict[str, Any]) -> Callable[[AsyncAck], Awaitable[None]] | None:
        """The listener body for a hot request, as Bolt's matchers would pick it; None for any other."""
        if body.get("command") == COMMAND:
            return lambda ack: self.triage(ack, body)
        if body.get("type") != "block_actions":
            return None
        actions = body.get("actions")
        first = actions[0] if isinstance(actions, list) and actions and isinstance(actions[0], dict) else {}
        action_id = str(first.get("action_id"))
        if (button := JOB_BUTTONS.get(action_id)) is not None:
            verb, me = button
            return lambda ack: self.job_button(ack, body, verb, me=me)
        if (form := FORM_BUTTONS.get(action_id)) is not None:
            return lambda ack: self.form_button(ack, body, form)
        return None

    async def answer(self, body: dict[str, Any]) -> BoltResponse | None:
        """The response to a hot request (its listener run, or its error answered); None for any other."""
        run = self.route(body)
        if run is None:
            return None
        ack = AsyncAck()  # type: ignore[no-untyped-call]
        try:
            await run(ack)
        except Exception as exc:  # answered on the surface, as Bolt's error handler would
            return await self.errors.answer(exc, body, ack.response)
        return ack.response if ack.response is not None else BoltResponse(status=200, body="")
