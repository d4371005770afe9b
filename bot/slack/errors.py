"""The one ``app.error`` handler: every error a listener raises is answered on its own surface.

A ``UserError`` (usage, not mapped, forbidden, already done …) is rendered for the actor:
as the slash command's reply, as the modal's field error, or as an ephemeral message
after a button or shortcut was acknowledged. Anything else is logged with a reference id
that the actor sees too. Slack always gets a 200, so it never retries a request the bot
has already answered. The requests answered past Bolt (``bot.slack.hot``) get the same
answers from the same ``ErrorAnswers``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

import structlog
from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from bot.errors import UserError
from bot.slack.blocks import cut
from bot.slack.ids import BlockId, CallbackId
from bot.slack.render import capital, failure, user_error
from bot.slack.reporter import Reporter

log = structlog.get_logger(__name__)

FIELD_ERROR_MAX = 150

# The field a modal shows a refusal or a failure on.
FORM_FIELD: dict[str, BlockId] = {
    CallbackId.ASSIGN_MODAL.value: BlockId.ASSIGN_USER,
    CallbackId.ATTACH_MODAL.value: BlockId.ATTACH_CASE,
    CallbackId.RESOLVE_MODAL.value: BlockId.RESOLVE_REASON,
    CallbackId.DIGEST_ASSIGN_MODAL.value: BlockId.ASSIGN_USER,
    CallbackId.DIGEST_RESOLVE_MODAL.value: BlockId.RESOLVE_COMMENT,
    CallbackId.DIGEST_SHOW_MODAL.value: BlockId.DIGEST_ROWS,
}


class FormError(UserError):
    """A modal field the actor must fix before the form can be submitted."""

    def __init__(self, block: BlockId, message: str) -> None:
        super().__init__(message)
        self.block = block


def _json(body: dict[str, Any]) -> BoltResponse:
    return BoltResponse(status=200, body=json.dumps(body), headers={"content-type": ["application/json"]})


async def _command_reply(message: dict[str, Any]) -> BoltResponse:
    ack = AsyncAck()  # type: ignore[no-untyped-call]
    return await ack(**message)  # the same body a listener's ack() would have sent


class ErrorAnswers:
    """The answer to an error a listener raised, on the surface the request came from.

    ``acked`` is the response the listener had already acknowledged with, if it got that
    far. The Bolt error handler and ``bot.slack.hot`` (the requests answered without
    Bolt's dispatch) both answer through here, so an error reads the same either way.
    """

    def __init__(self, *, reporter: Reporter, spawn: Callable[[Coroutine[Any, Any, None]], None]) -> None:
        self.reporter, self.spawn = reporter, spawn

    async def answer(self, error: Exception, body: Any, acked: BoltResponse | None) -> BoltResponse:
        ref = uuid.uuid4().hex[:8]
        if isinstance(error, UserError):
            log.info("user_error", ref=ref, error=type(error).__name__, message=error.message)
        else:
            log.error("listener_failed", ref=ref, exc_info=error)
        body = body if isinstance(body, dict) else {}
        if "command" in body and acked is None:
            return await _command_reply(user_error(error) if isinstance(error, UserError) else failure(ref))
        if body.get("type") == "view_submission" and acked is None:
            callback = str((body.get("view") or {}).get("callback_id") or "")
            if isinstance(error, FormError):
                block, message = error.block, error.message
            else:
                block = FORM_FIELD.get(callback, BlockId.ASSIGN_USER)
                message = error.message if isinstance(error, UserError) else failure(ref)["text"]
            short = cut(capital(message), FIELD_ERROR_MAX)
            return _json({"response_action": "errors", "errors": {block.value: short}})
        url = body.get("response_url")
        if url:
            text = (
                capital(error.message)
                if isinstance(error, UserError)
                else f"Something went wrong (reference {ref}); nothing further was changed."
            )
            self.spawn(self.reporter.ephemeral(str(url), {"text": text}))
        if acked is not None:
            return acked
        return BoltResponse(status=200, body="")


def register_error_handler(app: AsyncApp, answers: ErrorAnswers) -> None:
    """Register the handler that answers every listener error on the surface it came from."""

    @app.error
    async def on_error(error: Exception, body: dict[str, Any], request: AsyncBoltRequest) -> BoltResponse:
        acked = request.context.ack.response if request.context.ack is not None else None
        return await answers.answer(error, body, acked)
