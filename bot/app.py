"""``build_app``: a fresh Bolt ``AsyncApp`` wired to the services.

Listeners are glue: they parse, hand a typed request to the services (which
only touch SQLite on this path), acknowledge, and render. Platform calls
happen on the workers; the only other network calls here are Slack's own
(``views.open`` must use the trigger within 3 s).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

import structlog
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.service import ActionRequest, Source
from bot.errors import ForbiddenError, TriageError, UsageError, UserError
from bot.metrics import SLACK_ACK_LATENCY
from bot.models import Platform, Target, Verb
from bot.runtime import Services
from bot.settings import Settings
from bot.slack import blocks
from bot.slack.commands import Command, help_text, parse_command, usage
from bot.slack.ids import ActionId, BlockId, CallbackId
from bot.slack.metadata import CardRef, HandoffRef, ModalMeta
from bot.store.jobs import JobParams
from bot.targets import extract_targets

log = structlog.get_logger(__name__)

# Cards one "Triage this" posts at most: a thread of more is noise, and each is a platform read.
MAX_SHORTCUT_CARDS = 20


class Background:
    """Tracks fire-and-forget tasks started after an ack, logging their failures."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[None]] = set()

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            ref = uuid.uuid4().hex[:8]
            log.error("background_task_failed", ref=ref, exc_info=task.exception())


class Acker:
    """Acknowledges a Slack request exactly once, timing it; called after the durable write."""

    def __init__(self, ack: AsyncAck, kind: str) -> None:
        self._ack = ack
        self._kind = kind
        self._started = time.perf_counter()
        self.done = False

    async def __call__(self, *args: Any, **kwargs: Any) -> None:
        if self.done:
            return
        self.done = True
        try:
            await self._ack(*args, **kwargs)
        finally:
            SLACK_ACK_LATENCY.labels(self._kind).observe(time.perf_counter() - self._started)


def _ref() -> str:
    return uuid.uuid4().hex[:8]


def _user_message(exc: UserError) -> str:
    """The message for the actor: usage errors end with the verb's usage line."""
    if isinstance(exc, UsageError) and exc.verb and "Usage:" not in exc.message:
        try:
            return f"{_capital(exc.message)}\nUsage: `{usage(Verb(exc.verb))}`"
        except ValueError:
            return exc.message
    return exc.message


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _user_reply(exc: UserError) -> dict[str, Any]:
    """An ack/response body for a user error; usage errors get escaped blocks and a help pointer."""
    message = _user_message(exc)
    if isinstance(exc, UsageError):
        return {"text": blocks.usage_error_text(message), "blocks": blocks.usage_error_blocks(message)}
    return {"text": message}


def build_app(settings: Settings, services: Services, *, socket_mode: bool | None = None) -> AsyncApp:
    """A new ``AsyncApp`` with every listener registered; nothing is started."""
    socket = settings.slack_app_token is not None if socket_mode is None else socket_mode
    app = AsyncApp(
        client=services.slack,
        signing_secret=settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else None,
        request_verification_enabled=not socket,
        process_before_response=False,
        raise_error_for_unhandled_request=False,
    )
    bg = Background()
    app_state: dict[str, Any] = {"background": bg}
    app.__dict__["triage_state"] = app_state  # tests and the shell wait on background tasks through this
    actions = services.actions

    async def ephemeral(respond: AsyncRespond | None, text: str, blocks_: list[dict[str, Any]] | None = None) -> None:
        if respond is None:
            return
        try:
            await respond(text=text, blocks=blocks_, response_type="ephemeral", replace_original=False)
        except Exception as exc:  # the response_url may have expired; the log keeps it
            log.warning("respond_failed", error=type(exc).__name__)

    # ---- /triage ------------------------------------------------------------------------

    @app.command("/triage")
    async def on_triage(ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond) -> None:
        ack = Acker(ack, "command")  # type: ignore[assignment]
        team = command.get("team_id") or ""
        actor = command.get("user_id") or ""
        channel = command.get("channel_id")
        try:
            cmd = parse_command(command.get("text") or "", actor_id=actor, default_space=settings.kibana_space)
        except UsageError as exc:
            await ack(**_user_reply(exc))
            return
        try:
            await dispatch(
                cmd,
                team=team,
                actor=actor,
                channel=channel,
                ack=ack,
                respond=respond,
                response_url=command.get("response_url"),
                trigger_id=command.get("trigger_id"),
            )
        except UserError as exc:
            await ack(**_user_reply(exc))
        except TriageError as exc:
            ref = _ref()
            log.error("command_failed", ref=ref, error=str(exc))
            await ack(text=f"That did not work (reference {ref}). The team can find it in the bot's log.")

    async def dispatch(
        cmd: Command,
        *,
        team: str,
        actor: str,
        channel: str | None,
        ack: Callable[..., Awaitable[Any]],
        respond: AsyncRespond,
        response_url: str | None,
        trigger_id: str | None,
    ) -> None:
        verb = cmd.verb
        if verb is Verb.HELP:
            text = help_text(cmd.help_verb)
            await ack(text=blocks.help_fallback_text(text), blocks=blocks.help_blocks(text))
            return
        if verb in (Verb.MAP, Verb.UNMAP):
            target_user = cmd.user or actor
            policy_verb = verb.value if target_user == actor else "map_others"
            await services.authorize_verb(verb=policy_verb, actor_id=actor, channel_id=channel)
            if verb is Verb.MAP:
                mapped = await services.identity.map(team, actor, target_user, cmd.identities)
                lines = [f"{p.label}: `{i.value}`" for p in Platform if (i := mapped.get(p)) is not None]
                await ack(text=f"Mapped <@{target_user}>: " + ", ".join(lines))
            else:
                assert cmd.platform is not None
                removed = await services.identity.unmap(team, target_user, cmd.platform)
                await ack(
                    text=(
                        f"Removed <@{target_user}>'s {cmd.platform.label} mapping."
                        if removed
                        else f"<@{target_user}> had no {cmd.platform.label} mapping."
                    )
                )
            return
        if verb is Verb.WHOAMI:
            who = cmd.user or actor
            await ack(text=f"Checking <@{who}>'s identities…")
            bg.spawn(whoami(team, who, respond))
            return
        if verb is Verb.HISTORY:
            await ack(text=await history_text(cmd.targets[0]))
            return
        if verb is Verb.MINE:
            who = cmd.user or actor
            await ack(text=f"Looking up what <@{who}> holds…")
            bg.spawn(mine(team, who, respond))
            return
        if verb is Verb.HANDOFF:
            from_user = cmd.from_user or actor
            assert cmd.user is not None
            await services.handoff.request(
                team_id=team,
                actor_id=actor,
                from_user=from_user,
                to_user=cmd.user,
                channel_id=channel,
                response_url=response_url,
                interaction_key=trigger_id,
            )
            await ack(text=f"Collecting what <@{from_user}> holds; a preview follows here.")
            return
        request = ActionRequest(
            verb=verb,
            team_id=team,
            actor_id=actor,
            targets=list(cmd.targets),
            source=Source.SLASH,
            params=JobParams(
                assignee=cmd.user,
                case=cmd.case,
                reason=cmd.reason,
                comment=cmd.comment,
                text=cmd.text,
                severity=cmd.severity,
            ),
            channel_id=channel,
            response_url=response_url,
            interaction_key=trigger_id,
        )
        submitted = await actions.submit(request)
        if submitted.duplicate:
            await ack()
            return
        n = len(request.targets)
        await ack(text=f"On it: {verb.value} {n} item{'s' if n != 1 else ''}.")

    async def whoami(team: str, who: str, respond: AsyncRespond) -> None:
        statuses = await services.identity.whoami(team, who, verify=True)
        configured = list(services.clients)
        await ephemeral(respond, blocks.whoami_text(who), blocks.whoami_blocks(who, statuses, configured=configured))

    async def mine(team: str, who: str, respond: AsyncRespond) -> None:
        held = await services.runner.holdings(team, who)
        lines: list[str] = []
        total = 0
        for platform, items in held.items():
            if isinstance(items, str):
                lines.append(f"*{platform.label}*: {items}")
                continue
            total += len(items)
            shown = ", ".join(f"`{t.key}`" for t in items[:20])
            more = f" …and {len(items) - 20} more" if len(items) > 20 else ""
            lines.append(f"*{platform.label}* ({len(items)}): {shown or 'nothing open'}{more}")
        head = f"<@{who}> holds {total} open item{'s' if total != 1 else ''}:"
        await ephemeral(respond, "\n".join([head, *lines])[:3900])

    async def history_text(target: Target) -> str:
        entries = await services.jobs.history(target, limit=25)
        if not entries:
            return f"The bot has no history for `{target.key}`."
        lines = [f"History of `{target.key}` (newest first):"]
        for e in entries:
            when = datetime.fromtimestamp(e.at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
            change = f" {e.before or '—'} → {e.after or '—'}" if (e.before or e.after) else ""
            detail = f" — {e.detail}" if e.detail else ""
            lines.append(f"• {when} <@{e.actor_id}> {e.verb}: {e.outcome}{change}{detail}")
        return "\n".join(lines)[:3900]

    # ---- card buttons ----------------------------------------------------------------------

    def card_ref(action: dict[str, Any]) -> CardRef:
        """The CardRef a card button carries; ``UsageError`` for one this bot cannot read
        (a card drawn by an incompatible version, or a value not written by the bot)."""
        try:
            return CardRef.loads(str(action.get("value") or ""))
        except ValueError:
            log.info("card_ref_unreadable", action_id=action.get("action_id"))
            raise UsageError(
                "This card can no longer be acted on. Post a fresh one with `/triage show <target>`."
            ) from None

    def card_place(body: dict[str, Any], ref: CardRef) -> tuple[str | None, str | None, str | None]:
        container = body.get("container") or {}
        message = body.get("message") or {}
        channel = ref.channel or container.get("channel_id") or (body.get("channel") or {}).get("id")
        ts = ref.ts or container.get("message_ts") or message.get("ts")
        thread = ref.thread_ts or message.get("thread_ts")
        return channel, ts, thread

    async def submit_button(
        ack: Acker, body: dict[str, Any], respond: AsyncRespond, verb: Verb, params: JobParams | None = None
    ) -> None:
        """Store the job, then ack: a click Slack saw acknowledged is never lost."""
        action = body["actions"][0]
        try:
            ref = card_ref(action)
        except UserError as exc:
            await ack()
            await ephemeral(respond, exc.message)
            return
        channel, ts, thread = card_place(body, ref)
        user = body["user"]["id"]
        request = ActionRequest(
            verb=verb,
            team_id=(body.get("team") or {}).get("id") or body["user"].get("team_id", ""),
            actor_id=user,
            targets=[ref.target],
            params=params or JobParams(),
            source=Source.BUTTON,
            channel_id=channel,
            card_ts=ts,
            thread_ts=thread,
            response_url=body.get("response_url"),
            interaction_key=f"{user}:{action.get('action_ts')}:{action['action_id']}",
        )
        try:
            await actions.submit(request)
        except UserError as exc:
            await ack()
            await ephemeral(respond, _capital(exc.message))
            return
        await ack()

    async def after_store(ack: AsyncAck, kind: str, step: Callable[[Acker], Awaitable[None]]) -> None:
        acker = Acker(ack, kind)
        try:
            await step(acker)
        finally:
            await acker()  # on any path, including a crash, Slack gets its ack

    @app.action(ActionId.ASSIGN_ME)
    async def on_assign_me(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        params = JobParams(assignee=body["user"]["id"])
        await after_store(ack, "button", lambda a: submit_button(a, body, respond, Verb.ASSIGN, params))

    @app.action(ActionId.UNASSIGN)
    async def on_unassign(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await after_store(ack, "button", lambda a: submit_button(a, body, respond, Verb.UNASSIGN))

    @app.action(ActionId.REFRESH)
    async def on_refresh(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await after_store(ack, "button", lambda a: submit_button(a, body, respond, Verb.REFRESH))

    @app.action(ActionId.OPEN_LINK)
    async def on_open_link(ack: AsyncAck) -> None:
        await ack()

    async def open_modal(body: dict[str, Any], client: AsyncWebClient, respond: AsyncRespond, verb: Verb) -> None:
        try:
            ref = card_ref(body["actions"][0])
            channel, ts, thread = card_place(body, ref)
            meta = ModalMeta(verb=verb, targets=(ref.target,), channel=channel, ts=ts, thread_ts=thread)
            if verb is Verb.ASSIGN:
                view = blocks.assign_modal(meta)
            elif verb is Verb.ATTACH:
                view = blocks.attach_modal(meta)
            else:
                view = blocks.resolve_modal(meta, platform=ref.target.platform)
        except UserError as exc:
            await ephemeral(respond, exc.message)
            return
        try:
            await client.views_open(trigger_id=body["trigger_id"], view=view)
        except SlackApiError as exc:
            await ephemeral(respond, f"Slack could not open the form ({exc.response.get('error')}); try again.")

    @app.action(ActionId.ASSIGN_OPEN)
    async def on_assign_open(
        ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, respond: AsyncRespond
    ) -> None:
        await Acker(ack, "button")()
        await open_modal(body, client, respond, Verb.ASSIGN)

    @app.action(ActionId.ATTACH_OPEN)
    async def on_attach_open(
        ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, respond: AsyncRespond
    ) -> None:
        await Acker(ack, "button")()
        await open_modal(body, client, respond, Verb.ATTACH)

    @app.action(ActionId.RESOLVE_OPEN)
    async def on_resolve_open(
        ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, respond: AsyncRespond
    ) -> None:
        await Acker(ack, "button")()
        await open_modal(body, client, respond, Verb.RESOLVE)

    # Modal inputs send block_actions only when dispatch_action is set; ack them if they do.
    for input_id in (ActionId.ASSIGN_USER, ActionId.RESOLVE_REASON):

        @app.action(input_id)
        async def on_input(ack: AsyncAck) -> None:
            await ack()

    # ---- modal submissions -----------------------------------------------------------------

    def modal_value(view: dict[str, Any], block: BlockId, action: ActionId) -> dict[str, Any]:
        found = ((view.get("state") or {}).get("values") or {}).get(block.value, {}).get(action.value, {})
        return found if isinstance(found, dict) else {}

    async def submit_modal(
        ack: AsyncAck, body: dict[str, Any], verb: Verb, params: JobParams, error_block: BlockId
    ) -> None:
        view = body["view"]
        meta = ModalMeta.loads(view.get("private_metadata") or "")
        user = body["user"]["id"]
        request = ActionRequest(
            verb=verb,
            team_id=(body.get("team") or {}).get("id") or "",
            actor_id=user,
            targets=list(meta.targets),
            params=params,
            source=Source.MODAL,
            channel_id=meta.channel,
            card_ts=meta.ts,
            thread_ts=meta.thread_ts,
            interaction_key=f"view:{view.get('id')}:{view.get('hash')}",
        )
        try:
            await actions.submit(request)
        except UserError as exc:
            await ack(response_action="errors", errors={error_block.value: blocks.cut(_capital(exc.message), 150)})
            return
        await ack()

    @app.view(CallbackId.ASSIGN_MODAL)
    async def on_assign_submit(ack: AsyncAck, body: dict[str, Any]) -> None:
        ack = Acker(ack, "view")  # type: ignore[assignment]
        picked = modal_value(body["view"], BlockId.ASSIGN_USER, ActionId.ASSIGN_USER).get("selected_user")
        if not picked:
            await ack(response_action="errors", errors={BlockId.ASSIGN_USER.value: "Pick a person"})
            return
        await submit_modal(ack, body, Verb.ASSIGN, JobParams(assignee=picked), BlockId.ASSIGN_USER)

    @app.view(CallbackId.ATTACH_MODAL)
    async def on_attach_submit(ack: AsyncAck, body: dict[str, Any]) -> None:
        ack = Acker(ack, "view")  # type: ignore[assignment]
        case = (modal_value(body["view"], BlockId.ATTACH_CASE, ActionId.ATTACH_CASE).get("value") or "").strip()
        if not case:
            await ack(response_action="errors", errors={BlockId.ATTACH_CASE.value: "Give a case key or id"})
            return
        await submit_modal(ack, body, Verb.ATTACH, JobParams(case=case), BlockId.ATTACH_CASE)

    @app.view(CallbackId.RESOLVE_MODAL)
    async def on_resolve_submit(ack: AsyncAck, body: dict[str, Any]) -> None:
        ack = Acker(ack, "view")  # type: ignore[assignment]
        view = body["view"]
        option = modal_value(view, BlockId.RESOLVE_REASON, ActionId.RESOLVE_REASON).get("selected_option") or {}
        comment = modal_value(view, BlockId.RESOLVE_COMMENT, ActionId.RESOLVE_COMMENT).get("value")
        params = JobParams(reason=option.get("value"), comment=(comment or "").strip() or None)
        await submit_modal(ack, body, Verb.RESOLVE, params, BlockId.RESOLVE_REASON)

    # ---- handoff buttons ------------------------------------------------------------------

    async def handoff_button(
        ack: Acker, body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient, kind: str
    ) -> None:
        action = body["actions"][0]
        ref = HandoffRef.loads(action["value"])
        user = body["user"]["id"]
        try:
            if kind == "retry":
                await services.handoff.retry_failed(
                    ref.id, actor_id=user, interaction_key=f"{user}:{action.get('action_ts')}"
                )
                await ack()
                await ephemeral(respond, "Retrying the failed items; the outcome follows in the thread.")
                return
            admin = await services.is_admin(user)
            if kind == "confirm":
                job = await services.handoff.confirm(ref.id, actor_id=user, admin=admin)
                note = f":hourglass_flowing_sand: Confirmed by <@{user}>; reassigning now."
            else:
                job = await services.handoff.cancel(ref.id, actor_id=user, admin=admin)
                note = f":no_entry_sign: Cancelled by <@{user}>; nothing was changed."
        except UserError as exc:
            await ack()
            await ephemeral(respond, _capital(exc.message))
            return
        await ack()
        container = body.get("container") or {}
        message = body.get("message") or {}
        kept = [b for b in message.get("blocks", []) if b.get("type") != "actions"]
        kept.append({"type": "context", "elements": [{"type": "mrkdwn", "text": note}]})
        channel = container.get("channel_id") or job.channel_id
        ts = container.get("message_ts") or job.card_ts
        if not channel or not ts:  # a preview sent through a response_url has no message to edit
            await ephemeral(respond, note)
            return
        try:
            await client.chat_update(channel=str(channel), ts=str(ts), text=note, blocks=kept)
        except SlackApiError as exc:
            log.warning("handoff_preview_update_failed", error=exc.response.get("error"))

    @app.action(ActionId.HANDOFF_CONFIRM)
    async def on_handoff_confirm(
        ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient
    ) -> None:
        await after_store(ack, "button", lambda a: handoff_button(a, body, respond, client, "confirm"))

    @app.action(ActionId.HANDOFF_CANCEL)
    async def on_handoff_cancel(
        ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient
    ) -> None:
        await after_store(ack, "button", lambda a: handoff_button(a, body, respond, client, "cancel"))

    @app.action(ActionId.RETRY_FAILED)
    async def on_retry(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient) -> None:
        await after_store(ack, "button", lambda a: handoff_button(a, body, respond, client, "retry"))

    # ---- message shortcut -------------------------------------------------------------------

    @app.shortcut(CallbackId.TRIAGE_MESSAGE)
    async def on_triage_message(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await after_store(ack, "shortcut", lambda a: triage_message(a, body, respond))

    async def triage_message(ack: Acker, body: dict[str, Any], respond: AsyncRespond) -> None:
        message = body.get("message") or {}
        targets = extract_targets(
            message.get("text") or "",
            message.get("blocks"),
            attachments=message.get("attachments"),
            default_space=settings.kibana_space,
        )
        if not targets:
            await ack()
            await ephemeral(
                respond,
                "I found no Datadog, Kibana or Xpanse alert in that message "
                "(no `dd:`/`kibana:`/`xpanse:` ids and no platform links).",
            )
            return
        user = body["user"]["id"]
        request = ActionRequest(
            verb=Verb.SHOW,
            team_id=(body.get("team") or {}).get("id") or "",
            actor_id=user,
            targets=targets[:MAX_SHORTCUT_CARDS],
            source=Source.SHORTCUT,
            channel_id=(body.get("channel") or {}).get("id"),
            thread_ts=message.get("thread_ts") or body.get("message_ts") or message.get("ts"),
            response_url=body.get("response_url"),
            interaction_key=body.get("trigger_id"),
        )
        try:
            await actions.submit(request)
        except UserError as exc:
            await ack()
            await ephemeral(respond, _capital(exc.message))
            return
        await ack()
        if len(targets) > MAX_SHORTCUT_CARDS:
            rest = " ".join(f"`{t.key}`" for t in targets[MAX_SHORTCUT_CARDS:])
            await ephemeral(
                respond,
                blocks.cut(
                    f"That message names {len(targets)} alerts; cards follow for the first {MAX_SHORTCUT_CARDS}. "
                    f"The rest: {rest}",
                    3000,
                ),
            )

    # ---- errors -----------------------------------------------------------------------------

    @app.error
    async def on_error(error: Exception, body: dict[str, Any]) -> None:
        ref = _ref()
        if isinstance(error, ForbiddenError | UserError):
            log.info("user_error_unhandled", ref=ref, error=str(error))
        else:
            log.error("listener_failed", ref=ref, exc_info=error)
        url = body.get("response_url") if isinstance(body, dict) else None
        if url:
            from slack_sdk.webhook.async_client import AsyncWebhookClient

            text = (
                error.message
                if isinstance(error, UserError)
                else f"Something went wrong (reference {ref}); nothing further was changed."
            )
            try:
                await AsyncWebhookClient(url).send(text=text, response_type="ephemeral", replace_original=False)
            except Exception:
                log.warning("error_reply_failed", ref=ref)

    return app
