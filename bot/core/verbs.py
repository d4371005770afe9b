"""Each verb's platform call, the checks its parameters pass before a job is stored, and
the attribution notes written after a write.

``call`` maps a verb to its ``PlatformClient`` operation (assignment stays in the runner,
which resolves the assignee's identity first). ``check`` refuses, before anything is
stored, what no platform would accept: a verb on a platform without it, a Datadog mute
without a valid reason, a description over 280 characters, an expiry in the past, a bad
tag. ``attribute`` writes, where a platform cannot say who acted (Kibana: an API key
writes as nobody), a note on each changed item naming the Slack actor and the job; a
note that fails turns the item into a warning, never a failure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import structlog

from bot import rules
from bot.errors import PlatformError, UsageError, UserError
from bot.models import (
    WRITE_VERBS,
    BatchResult,
    ItemResult,
    ItemState,
    Job,
    JobParams,
    Outcome,
    Platform,
    Target,
    Verb,
)
from bot.platforms.base import PlatformClient

log = structlog.get_logger(__name__)

# Verbs whose platforms are named in ``rules.CAPABILITIES``.
_PLATFORM_VERBS = (Verb.DETACH, Verb.RESOLVE, Verb.REOPEN, Verb.ACK, Verb.TAG)
_KEPT_IN_SLACK = "; comment kept in Slack only"


async def call(job: Job, verb: Verb, platform: Platform, client: PlatformClient, targets: list[Target]) -> BatchResult:
    """The platform write (or read) of every verb but assignment; ``UsageError`` for others."""
    p = job.params
    if verb is Verb.UNASSIGN:
        return await client.unassign(targets)
    if verb is Verb.ATTACH:
        return await client.attach_case(targets, p.case or "")
    if verb is Verb.DETACH:
        return await client.detach_case(targets)
    if verb is Verb.RESOLVE and rules.CAPABILITIES[platform].mute:
        return await client.mute(targets, reason=p.reason or "", description=p.comment, expire_at=p.expire_at)
    if verb is Verb.RESOLVE:
        return await client.resolve(targets, reason=p.reason, comment=p.comment)
    if verb is Verb.REOPEN:
        return await client.reopen(targets, reason=p.reason, comment=p.comment)
    if verb is Verb.ACK:
        return await client.acknowledge(targets)
    if verb is Verb.TAG:
        return await client.tag(targets, add=p.tags_add, remove=p.tags_remove)
    if verb is Verb.SEVERITY:
        return await client.set_severity(targets, p.severity or "")
    if verb is Verb.COMMENT:
        return BatchResult.of([await client.comment(t, p.text or "") for t in targets])
    if verb in (Verb.SHOW, Verb.REFRESH):
        # Reads only: the reporter fetches the current state when it draws the cards.
        return BatchResult.of(ItemResult(target=t, outcome=Outcome.DONE, detail="read") for t in targets)
    raise UsageError(f"`{verb}` is not an action on items", verb=verb.value)


def check(verb: Verb, p: JobParams, targets: Sequence[Target]) -> None:
    """Refuse parameters no platform would take, with the valid forms; before any call."""
    if verb in _PLATFORM_VERBS:
        others = sorted({t.platform.label for t in targets if not rules.supports(t.platform, verb)})
        if others:
            where = " and ".join(x.label for x in rules.platforms_for(verb))
            raise UsageError(f"`{verb}` works on {where} items only, not on {' and '.join(others)} items", verb=verb)
    datadog = any(t.platform is Platform.DATADOG for t in targets)
    if verb is Verb.RESOLVE and datadog:
        rules.normalise_mute_reason(p.reason, mute=True)
        rules.check_description(p.comment, verb=verb)
        rules.check_expiry(p.expire_at)
    if verb is Verb.REOPEN and datadog:
        rules.normalise_mute_reason(p.reason, mute=False)
        rules.check_description(p.comment, verb=verb)
    if verb is Verb.RESOLVE and p.expire_at is not None and not datadog:
        raise UsageError("an expiry is for Datadog mutes only", verb=verb)
    if verb is Verb.TAG:
        rules.check_tags(p.tags_add, p.tags_remove)


def note_text(job: Job, verb: Verb, item: ItemResult) -> str:
    """The attribution note of one changed item: what was done, by whom, from which job."""
    p = job.params
    done = item.detail.removesuffix(_KEPT_IN_SLACK) or verb.past
    if verb is Verb.HANDOFF:
        done = f"handed off to {p.assignee_name or p.assignee or 'someone'}"
    who = p.actor_name or f"Slack user {job.actor_id}"
    text = f"{done} by {who} from Slack, job {job.id}"
    if p.comment and verb in (Verb.RESOLVE, Verb.REOPEN):
        text += f": {p.comment}"
    return text


async def attribute(
    job: Job, verb: Verb, platform: Platform, client: PlatformClient, result: BatchResult
) -> BatchResult:
    """Note on each item a write changed who asked; a failed note makes that item a warning."""
    if not rules.CAPABILITIES[platform].notes or verb not in WRITE_VERBS | {Verb.HANDOFF}:
        return result
    done = [i for i in result.items if i.outcome is Outcome.DONE]
    if not done:
        return result
    texts = {i.target: note_text(job, verb, i) for i in done}
    try:
        written = await client.add_notes(texts)
    except (PlatformError, UserError) as exc:  # a note is attribution, never the action
        written = {t: exc.message for t in texts}
    problems = {t: why for t, why in written.items() if why is not None}
    if problems:
        log.warning("attribution_notes_failed", platform=platform.value, failed=len(problems))
    items: list[ItemResult] = []
    for item in result.items:
        if item.target in problems:
            detail = f"{item.detail}; the note saying who asked was not added ({problems[item.target]})"
            item = item.model_copy(update={"outcome": Outcome.WARNING, "detail": detail})
        elif item.target in written and job.params.comment and item.detail.endswith(_KEPT_IN_SLACK):
            # The note carries the comment: it is on the alert after all.
            item = item.model_copy(
                update={"detail": item.detail.removesuffix(_KEPT_IN_SLACK) + "; comment in the note"}
            )
        items.append(item)
    return BatchResult.of(items)


async def with_details(clients: Mapping[Platform, PlatformClient], state: ItemState) -> ItemState:
    """``state`` with what only its card shows (Xpanse's alert count and top assets); a
    platform that cannot say leaves the card as it is."""
    client = clients.get(state.target.platform)
    if client is None:
        return state
    try:
        return await client.with_details(state)
    except (PlatformError, UserError) as exc:
        log.info("card_details_unavailable", target=state.target.key, reason=exc.message)
        return state
