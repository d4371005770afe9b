"""Storm digests on the Slack side: the digest's listeners (the poster's renderer is ``bot.slack.intake_cards``).

A digest's buttons carry only its id; the listeners read the rows from the store and
make ordinary requests through the one door (``Core.handle``): "Assign all to me" is
``assign`` of every listed alert to the actor from a button, "Assign all…", "Resolve
all…" and "Show cards" open a modal whose submission is ``assign``, ``resolve`` (one
request per platform, each with its own reason) or ``show`` of the chosen rows. They
become jobs exactly as ``/triage assign`` with many ids does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.door import Core
from bot.core.service import ActionRequest, Source, Step
from bot.errors import UsageError
from bot.models import JobParams, Platform, Verb
from bot.slack import context as ctx
from bot.slack.blocks import digest as dblocks
from bot.slack.errors import FormError
from bot.slack.hot import Acker, Background
from bot.slack.ids import ActionId, BlockId, CallbackId
from bot.slack.metadata import DigestMeta, DigestRef
from bot.slack.reporter import Reporter
from bot.store.intake import DigestRow, IntakeStore

STALE_DIGEST = "This digest can no longer be acted on; its alerts are still in `/triage show`."

Blocks = list[dict[str, Any]]


def _team(body: dict[str, Any]) -> str:
    return str((body.get("team") or {}).get("id") or (body.get("user") or {}).get("team_id") or "")


async def _rows(intake: IntakeStore, digest_id: str) -> list[DigestRow]:
    rows = await intake.digest_rows(digest_id)
    if not rows:
        raise UsageError(STALE_DIGEST)
    return rows


def _ref(body: dict[str, Any]) -> DigestRef:
    try:
        return DigestRef.loads(str(ctx.action(body).get("value") or ""))
    except ValueError:
        raise UsageError(STALE_DIGEST) from None


def button_request(body: dict[str, Any], verb: Verb, rows: Sequence[DigestRow], **extra: Any) -> ActionRequest:
    """The request a digest button makes: ``verb`` on every alert the digest lists."""
    act = ctx.action(body)
    user = ctx.actor(body)
    container = body.get("container") or {}
    return ActionRequest(
        verb=verb,
        team_id=_team(body),
        actor_id=user,
        targets=[r.target for r in rows],
        source=Source.BUTTON,
        channel_id=container.get("channel_id") or (body.get("channel") or {}).get("id"),
        thread_ts=container.get("message_ts") or (body.get("message") or {}).get("ts"),
        response_url=body.get("response_url"),
        interaction_key=f"{user}:{act.get('action_ts')}:{act.get('action_id')}",
        **extra,
    )


def modal_request(
    body: dict[str, Any], meta: DigestMeta, verb: Verb, rows: Sequence[DigestRow], params: JobParams, *, part: str = ""
) -> ActionRequest:
    """The request a submitted digest modal makes (``part`` keeps per-platform requests apart)."""
    view = body.get("view") or {}
    return ActionRequest(
        verb=verb,
        team_id=_team(body),
        actor_id=ctx.actor(body),
        targets=[r.target for r in rows],
        params=params,
        source=Source.MODAL,
        channel_id=meta.channel,
        thread_ts=meta.ts,
        interaction_key=f"view:{view.get('id')}:{view.get('hash')}{part}",
    )


def _meta(body: dict[str, Any]) -> DigestMeta:
    try:
        return DigestMeta.loads((body.get("view") or {}).get("private_metadata") or "")
    except ValueError:
        raise UsageError("This form can no longer be submitted; open it again from the digest.") from None


def register_digest(
    app: AsyncApp, *, core: Core, reporter: Reporter, background: Background, intake: IntakeStore
) -> None:
    """Register the digest buttons and modals on ``app``."""

    @app.action(ActionId.DIGEST_ASSIGN_ME)
    async def on_assign_me(ack: AsyncAck, body: dict[str, Any]) -> None:
        rows = await _rows(intake, _ref(body).id)
        await core.handle(button_request(body, Verb.ASSIGN, rows, params=JobParams(assignee=ctx.actor(body))))
        await Acker(ack, "button")()

    async def open_view(client: AsyncWebClient, body: dict[str, Any], view: dict[str, Any]) -> None:
        try:
            await client.views_open(trigger_id=body["trigger_id"], view=view)
        except SlackApiError as exc:
            error = exc.response.get("error")
            await reporter.ephemeral(
                body.get("response_url"), {"text": f"Slack could not open the form ({error}); try again."}
            )

    def form_button(action_id: ActionId, verb: Verb) -> None:
        @app.action(action_id)
        async def on_open(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
            ref = _ref(body)
            rows = await _rows(intake, ref.id)
            request = button_request(body, verb, rows, step=Step.FORM)
            await core.handle(request)
            meta = DigestMeta(verb=verb, id=ref.id, channel=request.channel_id, ts=request.thread_ts)
            view = dblocks.digest_modal(verb, meta, rows)
            await Acker(ack, "button")()
            background.spawn(open_view(client, body, view))

    form_button(ActionId.DIGEST_ASSIGN_OPEN, Verb.ASSIGN)
    form_button(ActionId.DIGEST_RESOLVE_OPEN, Verb.RESOLVE)
    form_button(ActionId.DIGEST_SHOW_OPEN, Verb.SHOW)

    @app.action(ActionId.DIGEST_ROWS)
    async def on_rows_input(ack: AsyncAck) -> None:
        await ack()

    @app.view(CallbackId.DIGEST_ASSIGN_MODAL)
    async def on_assign_submit(ack: AsyncAck, body: dict[str, Any]) -> None:
        meta = _meta(body)
        picked = ctx.view_value(body["view"], BlockId.ASSIGN_USER, ActionId.ASSIGN_USER).get("selected_user")
        if not picked:
            raise FormError(BlockId.ASSIGN_USER, "Pick a person")
        rows = await _rows(intake, meta.id)
        await core.handle(modal_request(body, meta, Verb.ASSIGN, rows, JobParams(assignee=picked)))
        await Acker(ack, "view")()

    @app.view(CallbackId.DIGEST_RESOLVE_MODAL)
    async def on_resolve_submit(ack: AsyncAck, body: dict[str, Any]) -> None:
        meta = _meta(body)
        view = body["view"]
        rows = await _rows(intake, meta.id)
        comment = ctx.view_value(view, BlockId.RESOLVE_COMMENT, ActionId.RESOLVE_COMMENT).get("value")
        requests = []
        for platform, block in dblocks.REASON_BLOCKS.items():
            mine = [r for r in rows if r.target.platform is platform]
            if not mine:
                continue
            option = ctx.view_value(view, block, ActionId.RESOLVE_REASON).get("selected_option") or {}
            params = JobParams(reason=option.get("value"), comment=(comment or "").strip() or None)
            requests.append(modal_request(body, meta, Verb.RESOLVE, mine, params, part=f":{platform.value}"))
        if not requests:
            raise FormError(BlockId.RESOLVE_COMMENT, f"{Platform.DATADOG.label} findings cannot be resolved from Slack")
        for request in requests:
            await core.handle(request)
        await Acker(ack, "view")()

    @app.view(CallbackId.DIGEST_SHOW_MODAL)
    async def on_show_submit(ack: AsyncAck, body: dict[str, Any]) -> None:
        meta = _meta(body)
        chosen = ctx.view_value(body["view"], BlockId.DIGEST_ROWS, ActionId.DIGEST_ROWS).get("selected_options")
        seqs = {str(o.get("value")) for o in chosen or [] if isinstance(o, dict)}
        rows = [r for r in await _rows(intake, meta.id) if str(r.seq) in seqs]
        if not rows:
            raise FormError(BlockId.DIGEST_ROWS, "Choose at least one alert")
        await core.handle(modal_request(body, meta, Verb.SHOW, rows, JobParams()))
        await Acker(ack, "view")()
