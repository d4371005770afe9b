"""What a confirmed write of the status verbs leaves on a card, where a lagging read may not
show it yet (Datadog queues mutes: a search straight after a 202 can still show the old state)."""

from __future__ import annotations

from bot import rules
from bot.models import ItemResult, ItemState, JobParams, Verb


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
