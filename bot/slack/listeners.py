"""The Bolt listeners: one short function each, ack -> parse -> handle -> render.

Nothing here decides, stores or calls a platform: a payload becomes a typed request
(``bot.slack.context``), the door (``bot.core.door.Core.handle``) authorises and answers
or persists it, and the answer is rendered (``bot.slack.render``). Every error a listener
raises goes to the one ``app.error`` handler (``bot.slack.errors``), which answers on the
surface it came from. A job is stored before its acknowledgement, so a click Slack saw
acknowledged is never lost.
"""

from __future__ import annotations

from typing import Any

import structlog
from slack_bolt.async_app import AsyncAck, AsyncApp

from bot import rules
from bot.core.access import GroupDirectory
from bot.core.answers import Cards, HandoffDecided, HomeItems
from bot.core.door import Core
from bot.core.service import Step
from bot.errors import UsageError, UserError
from bot.models import JobParams, Verb
from bot.slack import blocks
from bot.slack import context as ctx
from bot.slack.errors import FormError
from bot.slack.hot import COMMAND, FORM_BUTTONS, JOB_BUTTONS, Acker, Background, HotRoutes
from bot.slack.ids import ActionId, BlockId, CallbackId
from bot.slack.render import render
from bot.slack.reporter import Reporter
from bot.slack.verb_parsers import tag_changes
from bot.targets import extract_targets, target_from_link

log = structlog.get_logger(__name__)

# Cards one "Triage this" posts at most: a thread of more is noise, and each is a platform read.
MAX_SHORTCUT_CARDS = 20


def register(
    app: AsyncApp,
    *,
    core: Core,
    reporter: Reporter,
    background: Background,
    hot: HotRoutes,
    groups: GroupDirectory,
    default_space: str,
    unfurl_domains: frozenset[str] = frozenset(),
) -> None:
    """Register every listener of the bot on ``app``."""

    # ---- /triage and the card's buttons (the hot requests: bot.web also routes them past Bolt)

    @app.command(COMMAND)
    async def on_triage(ack: AsyncAck, command: dict[str, Any]) -> None:
        await hot.triage(ack, command)

    def job_button(action_id: str, verb: Verb, me: bool) -> None:
        @app.action(action_id)
        async def on_button(ack: AsyncAck, body: dict[str, Any]) -> None:
            await hot.job_button(ack, body, verb, me=me)

    for action_id, (verb, me) in JOB_BUTTONS.items():
        job_button(action_id, verb, me)

    @app.action(ActionId.OPEN_LINK)
    async def on_open_link(ack: AsyncAck) -> None:
        await ack()

    def form_button(action_id: str, verb: Verb) -> None:
        @app.action(action_id)
        async def on_form_button(ack: AsyncAck, body: dict[str, Any]) -> None:
            await hot.form_button(ack, body, verb)

    for action_id, verb in FORM_BUTTONS.items():
        form_button(action_id, verb)

    # Modal inputs send block_actions only when dispatch_action is set; ack them if they do.
    for input_id in (ActionId.ASSIGN_USER, ActionId.RESOLVE_REASON, ActionId.MUTE_REASON, ActionId.MUTE_UNTIL):

        @app.action(input_id)
        async def on_input(ack: AsyncAck) -> None:
            await ack()

    # ---- modal submissions ---------------------------------------------------------------

    @app.view(CallbackId.ASSIGN_MODAL)
    async def on_assign_submit(ack: AsyncAck, body: dict[str, Any]) -> None:
        picked = ctx.view_value(body["view"], BlockId.ASSIGN_USER, ActionId.ASSIGN_USER).get("selected_user")
        if not picked:
            raise FormError(BlockId.ASSIGN_USER, "Pick a person")
        await core.handle(ctx.modal_request(body, Verb.ASSIGN, JobParams(assignee=picked)))
        await Acker(ack, "view")()

    @app.view(CallbackId.ATTACH_MODAL)
    async def on_attach_submit(ack: AsyncAck, body: dict[str, Any]) -> None:
        case = (ctx.view_value(body["view"], BlockId.ATTACH_CASE, ActionId.ATTACH_CASE).get("value") or "").strip()
        if not case:
            raise FormError(BlockId.ATTACH_CASE, "Give a case key or id")
        await core.handle(ctx.modal_request(body, Verb.ATTACH, JobParams(case=case)))
        await Acker(ack, "view")()

    @app.view(CallbackId.RESOLVE_MODAL)
    async def on_resolve_submit(ack: AsyncAck, body: dict[str, Any]) -> None:
        view = body["view"]
        option = ctx.view_value(view, BlockId.RESOLVE_REASON, ActionId.RESOLVE_REASON).get("selected_option") or {}
        comment = ctx.view_value(view, BlockId.RESOLVE_COMMENT, ActionId.RESOLVE_COMMENT).get("value")
        params = JobParams(reason=option.get("value"), comment=(comment or "").strip() or None)
        await core.handle(ctx.modal_request(body, Verb.RESOLVE, params))
        await Acker(ack, "view")()

    @app.view(CallbackId.MUTE_MODAL)
    async def on_mute_submit(ack: AsyncAck, body: dict[str, Any]) -> None:
        view = body["view"]
        option = ctx.view_value(view, BlockId.MUTE_REASON, ActionId.MUTE_REASON).get("selected_option") or {}
        if not option.get("value"):
            raise FormError(BlockId.MUTE_REASON, "Pick a reason")
        day = ctx.view_value(view, BlockId.MUTE_UNTIL, ActionId.MUTE_UNTIL).get("selected_date")
        try:
            expire_at = rules.parse_expiry("until", day) if day else None
        except UsageError as exc:
            raise FormError(BlockId.MUTE_UNTIL, "Pick a date after today") from exc
        text = ctx.view_value(view, BlockId.MUTE_DESCRIPTION, ActionId.MUTE_DESCRIPTION).get("value")
        params = JobParams(reason=option["value"], comment=(text or "").strip() or None, expire_at=expire_at)
        await core.handle(ctx.modal_request(body, Verb.RESOLVE, params))
        await Acker(ack, "view")()

    @app.view(CallbackId.TAG_MODAL)
    async def on_tag_submit(ack: AsyncAck, body: dict[str, Any]) -> None:
        text = ctx.view_value(body["view"], BlockId.TAG_CHANGES, ActionId.TAG_CHANGES).get("value") or ""
        try:
            add, remove = tag_changes(text)
        except UsageError as exc:
            raise FormError(BlockId.TAG_CHANGES, exc.message) from exc
        await core.handle(ctx.modal_request(body, Verb.TAG, JobParams(tags_add=add, tags_remove=remove)))
        await Acker(ack, "view")()

    # ---- handoff buttons --------------------------------------------------------------------

    def handoff_button(action_id: ActionId, step: Step) -> None:
        @app.action(action_id)
        async def on_handoff(ack: AsyncAck, body: dict[str, Any]) -> None:
            request = ctx.handoff_request(body, step)
            reply = await core.handle(request)
            await Acker(ack, "button")()
            answer = reply.now
            if isinstance(answer, HandoffDecided):
                background.spawn(reporter.handoff_decided(answer, body=body, response_url=request.response_url))
            elif (message := render(answer)) is not None:
                background.spawn(reporter.ephemeral(request.response_url, message))

    @app.action(ActionId.UNDO)
    async def on_undo(ack: AsyncAck, body: dict[str, Any]) -> None:
        request = ctx.undo_request(body)
        await core.handle(request)
        await Acker(ack, "button")()

    handoff_button(ActionId.HANDOFF_CONFIRM, Step.CONFIRM)
    handoff_button(ActionId.HANDOFF_CANCEL, Step.CANCEL)
    handoff_button(ActionId.RETRY_FAILED, Step.RETRY)

    # ---- user group changes (keep the policy's membership warm) ----------------------------

    @app.event("subteam_members_changed")
    async def on_members_changed(event: dict[str, Any]) -> None:
        groups.members_changed(
            str(event.get("subteam_id") or ""),
            added=event.get("added_users") or [],
            removed=event.get("removed_users") or [],
        )

    @app.event("subteam_updated")
    async def on_group_updated(event: dict[str, Any]) -> None:
        subteam = event.get("subteam") or {}
        if isinstance(subteam, dict) and isinstance(subteam.get("users"), list):
            groups.replaced(str(subteam.get("id") or ""), subteam["users"])

    # ---- message shortcut -----------------------------------------------------------------

    @app.shortcut(CallbackId.TRIAGE_MESSAGE)
    async def on_triage_message(ack: AsyncAck, body: dict[str, Any]) -> None:
        message = body.get("message") or {}
        targets = extract_targets(
            message.get("text") or "",
            message.get("blocks"),
            attachments=message.get("attachments"),
            default_space=default_space,
        )
        if not targets:
            raise UsageError(
                "I found no Datadog, Kibana or Xpanse alert in that message "
                "(no `dd:`/`kibana:`/`xpanse:` ids and no platform links)."
            )
        await core.handle(ctx.shortcut_request(body, targets[:MAX_SHORTCUT_CARDS]))
        await Acker(ack, "shortcut")()
        if len(targets) > MAX_SHORTCUT_CARDS:
            rest = " ".join(f"`{t.key}`" for t in targets[MAX_SHORTCUT_CARDS:])
            note = (
                f"That message names {len(targets)} alerts; cards follow for the first {MAX_SHORTCUT_CARDS}. "
                f"The rest: {rest}"
            )
            background.spawn(reporter.ephemeral(body.get("response_url"), {"text": blocks.cut(note, 3000)}))

    # ---- App Home ------------------------------------------------------------------------

    async def show_home(team_id: str, user_id: str) -> None:
        """Publish ``user_id``'s Home: the door decides (mine's rule), the reporter publishes after the ack."""
        try:
            reply = await core.handle(ctx.home_request(team_id, user_id))
        except UserError as exc:  # the Home is the surface that shows the refusal
            background.spawn(reporter.publish_home(user_id, None, refused=exc.message))
            return
        later = reply.later

        async def publish() -> None:
            answer = await later() if later is not None else None
            await reporter.publish_home(user_id, answer if isinstance(answer, HomeItems) else None)

        background.spawn(publish())

    @app.event("app_home_opened")
    async def on_home_opened(event: dict[str, Any], body: dict[str, Any]) -> None:
        if event.get("tab") == "home" and event.get("user"):
            await show_home(str(body.get("team_id") or ""), str(event["user"]))

    @app.action(ActionId.HOME_REFRESH)
    async def on_home_refresh(ack: AsyncAck, body: dict[str, Any]) -> None:
        await Acker(ack, "button")()
        await show_home(ctx.team(body), ctx.actor(body))

    # ---- link unfurls ----------------------------------------------------------------------

    @app.event("link_shared")
    async def on_link_shared(event: dict[str, Any], body: dict[str, Any]) -> None:
        links: dict[str, Any] = {}
        for link in event.get("links") or []:
            url = str((link or {}).get("url") or "")
            domain = str((link or {}).get("domain") or "").lower()
            target = target_from_link(url, default_space=default_space) if domain in unfurl_domains else None
            if target is not None:
                links[url] = target
        channel, ts = str(event.get("channel") or ""), str(event.get("message_ts") or "")
        if not links or not event.get("user") or not channel or not ts:
            return
        try:
            reply = await core.handle(ctx.unfurl_request(event, str(body.get("team_id") or ""), list(links.values())))
        except UserError as exc:  # refused (in the ledger) or unreadable: the link stays as it was pasted
            log.info("unfurl_declined", reason=exc.message)
            return
        later = reply.later

        async def unfurl() -> None:
            cards = await later() if later is not None else None
            if isinstance(cards, Cards):
                await reporter.unfurl(
                    channel=channel, ts=ts, links=links, cards=cards, unfurl_id=event.get("unfurl_id")
                )

        background.spawn(unfurl())
