"""What a confirmed write leaves on a card, where a lagging read may not
show it yet (Datadog queues mutes: a search straight after a 202 can still show the old state)."""

from __future__ import annotations

from typing import Any

from bot import rules
from bot.models import ItemResult, ItemState, JobParams, Platform, Verb


def status_overlay(state: ItemState, verb: Verb, result: ItemResult, params: JobParams | None) -> ItemState | None:
    """The state after a mute, unmute, reopen, acknowledge or detach; None for other verbs."""
    caps = rules.CAPABILITIES[state.target.platform]
    if not result.outcome.ok:
        return None
    if verb is Verb.RESOLVE and caps.mute:
        reason = (result.after or "").removeprefix("muted:") or (params.reason if params else None)
        until = params.expire_at if params else None
        return state.model_copy(update={"muted": True, "mute_reason": reason, "mute_until": until})
    if verb is Verb.REOPEN and caps.mute:
        return state.model_copy(update={"muted": False, "mute_reason": None, "mute_until": None})
    if verb in (Verb.REOPEN, Verb.ACK) and result.after:
        return state.model_copy(update={"status": result.after})
    if verb is Verb.DETACH:
        return state.model_copy(update={"case": None})
    return None


def overlay(state: ItemState, verb: Verb, result: Any, params: JobParams | None = None) -> ItemState:
    """The state a confirmed write left behind, where a lagging read may not show it yet."""
    if not result.outcome.ok:
        return state
    laid = status_overlay(state, verb, result, params)
    if laid is not None:
        return laid
    if verb in (Verb.ASSIGN, Verb.HANDOFF) and result.after:
        return state.model_copy(update={"assignees": [result.after], "assignee_name": None})
    if verb is Verb.UNASSIGN:
        return state.model_copy(update={"assignees": [], "assignee_name": None})
    if verb is Verb.RESOLVE and state.is_open:
        closed = "closed" if state.target.platform is Platform.KIBANA else "resolved"
        return state.model_copy(update={"status": closed})
    if verb is Verb.ATTACH and result.after:
        return state.model_copy(update={"case": result.after})
    return state
