"""Slack payloads in, typed requests out: where on Slack a request came from and what it asks.

Pure functions, no I/O: a slash command, a card button, a modal submission or the
message shortcut becomes an ``ActionRequest`` for the door, carrying the team,
actor, channel, card and thread it came from and the key that makes Slack's
retries harmless. A payload the bot cannot read raises ``UsageError``.
"""

from __future__ import annotations

from typing import Any

import structlog

from bot.core.service import ActionRequest, Source, Step
from bot.errors import UsageError
from bot.models import JobParams, Target, Verb
from bot.slack.commands import Command
from bot.slack.ids import ActionId, BlockId
from bot.slack.metadata import CardRef, HandoffRef, ModalMeta, UndoRef

log = structlog.get_logger(__name__)

STALE_CARD = "This card can no longer be acted on. Post a fresh one with `/triage show <target>`."


def team(body: dict[str, Any]) -> str:
    """The workspace an interactive payload came from."""
    return _team(body)


def _team(body: dict[str, Any]) -> str:
    return str((body.get("team") or {}).get("id") or (body.get("user") or {}).get("team_id") or "")


def actor(body: dict[str, Any]) -> str:
    """The Slack user an interactive payload came from."""
    return str((body.get("user") or {}).get("id") or "")


def actor_name(body: dict[str, Any]) -> str | None:
    """The Slack name of the user an interactive payload came from, if Slack sent one."""
    user = body.get("user") or {}
    name = user.get("username") or user.get("name")
    return str(name) if name else None


def _named(params: JobParams, name: str | None) -> JobParams:
    return params.model_copy(update={"actor_name": name}) if name and not params.actor_name else params


def command_request(command: dict[str, Any], cmd: Command) -> ActionRequest:
    """The request a parsed ``/triage`` command makes."""
    actor = command.get("user_id") or ""
    return ActionRequest(
        verb=cmd.verb,
        team_id=command.get("team_id") or "",
        actor_id=actor,
        targets=list(cmd.targets),
        params=JobParams(
            assignee=cmd.user,
            from_user=(cmd.from_user or actor) if cmd.verb is Verb.HANDOFF else None,
            case=cmd.case,
            reason=cmd.reason,
            comment=cmd.comment,
            text=cmd.text,
            severity=cmd.severity,
            expire_at=cmd.expire_at,
            tags_add=list(cmd.tags_add),
            tags_remove=list(cmd.tags_remove),
            actor_name=command.get("user_name") or None,
        ),
        source=Source.SLASH,
        channel_id=command.get("channel_id"),
        response_url=command.get("response_url"),
        interaction_key=command.get("trigger_id"),
        subject=cmd.user if cmd.verb in (Verb.MAP, Verb.UNMAP, Verb.WHOAMI, Verb.MINE) else None,
        identities=dict(cmd.identities),
        platform=cmd.platform,
        help_verb=cmd.help_verb,
    )


def action(body: dict[str, Any]) -> dict[str, Any]:
    """The one action of a ``block_actions`` payload."""
    actions = body.get("actions")
    if not isinstance(actions, list) or not actions or not isinstance(actions[0], dict):
        raise UsageError("That button sent nothing the bot can read.")
    return actions[0]


def card_ref(body: dict[str, Any]) -> CardRef:
    """The CardRef a card button carries; ``UsageError`` for one this bot cannot read."""
    act = action(body)
    try:
        return CardRef.loads(str(act.get("value") or ""))
    except ValueError:
        log.info("card_ref_unreadable", action_id=act.get("action_id"))
        raise UsageError(STALE_CARD) from None


def card_place(body: dict[str, Any], ref: CardRef) -> tuple[str | None, str | None, str | None]:
    """(channel, card ts, thread ts) of the card a button was clicked on."""
    container = body.get("container") or {}
    message = body.get("message") or {}
    channel = ref.channel or container.get("channel_id") or (body.get("channel") or {}).get("id")
    ts = ref.ts or container.get("message_ts") or message.get("ts")
    thread = ref.thread_ts or message.get("thread_ts")
    return channel, ts, thread


def button_request(
    body: dict[str, Any], verb: Verb, *, params: JobParams | None = None, step: Step = Step.RUN
) -> ActionRequest:
    """The request a card button makes: ``verb`` on the card's item."""
    ref = card_ref(body)
    channel, ts, thread = card_place(body, ref)
    act = action(body)
    user = actor(body)
    if channel is None and (body.get("container") or {}).get("type") == "view":
        channel = user  # from the App Home: the result goes to the actor's DM with the bot
    return ActionRequest(
        verb=verb,
        team_id=_team(body),
        actor_id=user,
        targets=[ref.target],
        params=_named(params or JobParams(), actor_name(body)),
        source=Source.BUTTON,
        channel_id=channel,
        card_ts=ts,
        thread_ts=thread,
        response_url=body.get("response_url"),
        interaction_key=f"{user}:{act.get('action_ts')}:{act.get('action_id')}",
        step=step,
    )


def form_meta(request: ActionRequest) -> ModalMeta:
    """The state a modal opened from a card button carries to its submission."""
    return ModalMeta(
        verb=request.verb,
        targets=tuple(request.targets),
        channel=request.channel_id,
        ts=request.card_ts,
        thread_ts=request.thread_ts,
    )


def handoff_request(body: dict[str, Any], step: Step) -> ActionRequest:
    """The request a handoff preview or result button makes (confirm, cancel, retry)."""
    act = action(body)
    try:
        ref = HandoffRef.loads(str(act.get("value") or ""))
    except ValueError:
        raise UsageError("This handoff message can no longer be acted on.") from None
    user = actor(body)
    container = body.get("container") or {}
    return ActionRequest(
        verb=Verb.HANDOFF,
        team_id=_team(body),
        actor_id=user,
        source=Source.BUTTON,
        channel_id=container.get("channel_id") or (body.get("channel") or {}).get("id"),
        card_ts=container.get("message_ts"),
        response_url=body.get("response_url"),
        interaction_key=f"{user}:{act.get('action_ts')}",
        step=step,
        job_ref=ref.id,
    )


def view_value(view: dict[str, Any], block: BlockId, action_id: ActionId) -> dict[str, Any]:
    """The state of one input of a submitted view ({} when absent)."""
    found = ((view.get("state") or {}).get("values") or {}).get(block.value, {}).get(action_id.value, {})
    return found if isinstance(found, dict) else {}


def modal_request(body: dict[str, Any], verb: Verb, params: JobParams) -> ActionRequest:
    """The request a submitted modal makes, on the items its metadata names."""
    view = body.get("view") or {}
    try:
        meta = ModalMeta.loads(view.get("private_metadata") or "")
    except ValueError:
        raise UsageError("This form can no longer be submitted; open it again from the card.") from None
    return ActionRequest(
        verb=verb,
        team_id=_team(body),
        actor_id=actor(body),
        targets=list(meta.targets),
        params=_named(params, actor_name(body)),
        source=Source.MODAL,
        channel_id=meta.channel,
        card_ts=meta.ts,
        thread_ts=meta.thread_ts,
        interaction_key=f"view:{view.get('id')}:{view.get('hash')}",
    )


def shortcut_request(body: dict[str, Any], targets: list[Target]) -> ActionRequest:
    """The request "Triage this" makes: cards for the alerts the message names, in its thread."""
    message = body.get("message") or {}
    return ActionRequest(
        verb=Verb.SHOW,
        team_id=_team(body),
        actor_id=actor(body),
        targets=targets,
        source=Source.SHORTCUT,
        channel_id=(body.get("channel") or {}).get("id"),
        thread_ts=message.get("thread_ts") or body.get("message_ts") or message.get("ts"),
        response_url=body.get("response_url"),
        interaction_key=body.get("trigger_id"),
    )


def home_request(team_id: str, user_id: str) -> ActionRequest:
    """The request the App Home makes when ``user_id`` opens (or refreshes) it: their items, as ``mine``."""
    return ActionRequest(verb=Verb.MINE, team_id=team_id, actor_id=user_id, source=Source.HOME)


def unfurl_request(event: dict[str, Any], team_id: str, targets: list[Target]) -> ActionRequest:
    """The request a ``link_shared`` event makes: the linked items' states, as ``show`` (no job)."""
    return ActionRequest(
        verb=Verb.SHOW,
        team_id=team_id,
        actor_id=str(event.get("user") or ""),
        targets=targets,
        source=Source.UNFURL,
        channel_id=str(event.get("channel") or "") or None,
        thread_ts=event.get("thread_ts"),
    )


def undo_request(body: dict[str, Any]) -> ActionRequest:
    """The request a result's Undo button makes: put back the write it names."""
    act = action(body)
    try:
        ref = UndoRef.loads(str(act.get("value") or ""))
    except ValueError:
        raise UsageError("This change can no longer be undone.") from None
    user = actor(body)
    container = body.get("container") or {}
    return ActionRequest(
        verb=Verb.UNDO,
        team_id=_team(body),
        actor_id=user,
        params=_named(JobParams(), actor_name(body)),
        source=Source.BUTTON,
        channel_id=container.get("channel_id") or (body.get("channel") or {}).get("id"),
        response_url=body.get("response_url"),
        interaction_key=f"{user}:{act.get('action_ts')}",
        job_ref=ref.id,
    )
