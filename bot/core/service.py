"""ActionService: an action request becomes a durable job, then platform calls, then results.

``submit`` runs on Slack's acknowledgement path: it validates, authorises,
de-duplicates and persists the job, touching only SQLite. ``run`` is the
worker side: it resolves identities, calls the platforms per item and
records every outcome before the reporter tells Slack.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from enum import StrEnum

import structlog
from pydantic import BaseModel, Field

from bot.errors import (
    NotConfiguredError,
    UsageError,
    UserError,
)
from bot.models import Platform, Target, Verb
from bot.platforms.base import PlatformClient
from bot.store.jobs import JobParams, JobState, JobStore

log = structlog.get_logger(__name__)

# Verbs that change platform state and run as jobs.
WRITE_VERBS = {Verb.ASSIGN, Verb.UNASSIGN, Verb.ATTACH, Verb.RESOLVE, Verb.COMMENT, Verb.SEVERITY}
# Re-sending these cannot change the outcome, so an interrupted item is simply re-applied.
IDEMPOTENT_VERBS = (WRITE_VERBS - {Verb.COMMENT}) | {Verb.HANDOFF}
# A second identical request inside this window is answered "already …" instead of run.
DUPLICATE_WINDOW_S = 60.0


class Source(StrEnum):
    """The surface a request came from."""

    SLASH = "slash"
    BUTTON = "button"
    MODAL = "modal"
    SHORTCUT = "shortcut"
    HANDOFF = "handoff"
    WEBHOOK = "webhook"
    SHELL = "shell"
    HOME = "home"
    UNFURL = "unfurl"
    SCHEDULE = "schedule"


class Step(StrEnum):
    """What a request asks of its verb: run it, or one step around it."""

    RUN = "run"
    FORM = "form"  # open the verb's modal: authorised, nothing stored
    CONFIRM = "confirm"  # handoff: start the reassignment
    CANCEL = "cancel"  # handoff: drop it
    RETRY = "retry"  # handoff: queue the failed items again


class ActionRequest(BaseModel):
    """A typed, validated request for one verb over some targets."""

    verb: Verb
    team_id: str
    actor_id: str
    targets: list[Target] = Field(default_factory=list)
    params: JobParams = Field(default_factory=JobParams)
    source: Source
    channel_id: str | None = None
    card_ts: str | None = None
    thread_ts: str | None = None
    response_url: str | None = None
    interaction_key: str | None = None
    step: Step = Step.RUN
    # The person a read or mapping verb is about (whoami, mine, map, unmap); None means the actor.
    subject: str | None = None
    identities: dict[Platform, str] = Field(default_factory=dict)  # map
    platform: Platform | None = None  # unmap
    help_verb: Verb | None = None  # help
    job_ref: str | None = None  # confirm / cancel / retry: the handoff job

    @property
    def about(self) -> str:
        """The Slack user the request is about: its subject, else the actor."""
        return self.subject or self.actor_id

    @property
    def target(self) -> Target | None:
        """The one target of a single-item request, else None."""
        return self.targets[0] if len(self.targets) == 1 else None


class AlreadyDone(UserError):
    """The same change is queued, running, or was just made; nothing new is queued."""


class Submitted(BaseModel):
    job_id: str | None
    duplicate: bool = False


IdentityLookup = Callable[[str, str, Platform], Awaitable[str]]


def dedupe_targets(targets: Sequence[Target]) -> list[Target]:
    seen: set[str] = set()
    out: list[Target] = []
    for t in targets:
        if t.key not in seen:
            seen.add(t.key)
            out.append(t)
    return out


class ActionService:
    """Turns requests into jobs and jobs into platform calls."""

    def __init__(
        self,
        *,
        clients: Mapping[Platform, PlatformClient],
        jobs: JobStore,
        resolve_identity: IdentityLookup,
        default_space: str = "default",
    ) -> None:
        self.clients = dict(clients)
        self.jobs = jobs
        self.resolve_identity = resolve_identity
        self.default_space = default_space
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        # The duplicate check and the insert must be one step, or two clicks that arrive
        # together both pass the check and both write (one process owns the database). Requests
        # for different items need not wait for each other: one lock per target, made on demand.
        self._target_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    def client(self, platform: Platform) -> PlatformClient:
        """The client for ``platform``; ``NotConfiguredError`` when it has no credentials."""
        client = self.clients.get(platform)
        if client is None:
            raise NotConfiguredError(platform.label)
        return client

    # ---- the acknowledgement path --------------------------------------------------------

    def validate(self, request: ActionRequest) -> ActionRequest:
        """Normalise ids and refuse impossible requests before anything is stored."""
        targets = dedupe_targets(request.targets)
        if request.verb in WRITE_VERBS | {Verb.SHOW, Verb.REFRESH} and not targets:
            raise UsageError(f"`{request.verb}` needs at least one target", verb=request.verb.value)
        configured = [t for t in targets if t.platform in self.clients]
        if targets and not configured:
            missing = sorted({t.platform.label for t in targets})
            raise NotConfiguredError(" and ".join(missing))
        normalised: list[Target] = []
        for t in targets:
            client = self.clients.get(t.platform)
            if client is not None:
                t = t.model_copy(update={"id": client.validate_id(t.id)})
            normalised.append(t)
        if request.verb is Verb.ATTACH:
            if any(t.platform is not Platform.DATADOG for t in normalised):
                raise UsageError("only Datadog findings can be attached to a case", verb="attach")
            if len(normalised) > 50:
                raise UsageError(
                    f"a Datadog case takes at most 50 findings per request; you gave {len(normalised)}",
                    verb="attach",
                )
        if request.verb is Verb.COMMENT and not (request.params.text or "").strip():
            raise UsageError("a comment needs some text", verb="comment")
        return request.model_copy(update={"targets": normalised})

    async def check_duplicate(self, request: ActionRequest) -> None:
        """Raise ``AlreadyDone`` when this exact change is in flight or was just made.

        A card button is also refused when someone else changed the same item the same
        way moments ago (two people clicking "Assign me" on one card): the second is told
        who got there first instead of silently taking it over.
        """
        if request.verb not in IDEMPOTENT_VERBS or len(request.targets) != 1:
            return
        target = request.targets[0]
        wanted = request.params.assignee if request.verb is Verb.ASSIGN else None
        from_card = request.source is Source.BUTTON
        flight = await self.jobs.in_flight(target, verb=request.verb.value)
        if flight is not None:
            job, _ = flight
            if job.params.assignee == wanted or request.verb is not Verb.ASSIGN or from_card:
                ago = time.time() - job.created_at
                raise AlreadyDone(
                    f"{target.key} is already being handled: <@{job.actor_id}> asked to "
                    f"{_describe(job.verb, job.params)} {ago:.0f} s ago"
                )
        latest = await self.jobs.latest_change(target, within=DUPLICATE_WINDOW_S)
        if latest is None or latest.entry.verb != request.verb.value:
            return
        if wanted is not None and latest.assignee != wanted and not from_card:
            return
        ago = time.time() - latest.entry.at
        to = f" to <@{latest.assignee}>" if request.verb is Verb.ASSIGN and latest.assignee else ""
        raise AlreadyDone(
            f"{target.key} was already {_past(request.verb)}{to} by <@{latest.entry.actor_id}> {ago:.0f} s ago"
        )

    def _lock_for(self, request: ActionRequest) -> contextlib.AbstractAsyncContextManager[object]:
        """The lock that serialises the duplicate check with the insert for this request's item.

        Only single-target requests are checked for duplicates (``check_duplicate``); the rest
        rely on the store's unique interaction key, so they take no lock at all.
        """
        if len(request.targets) != 1:
            return contextlib.nullcontext()
        key = request.targets[0].key
        lock = self._target_locks.get(key)
        if lock is None:
            lock = asyncio.Lock()
            self._target_locks[key] = lock
        return lock

    async def submit(self, request: ActionRequest, *, state: JobState = JobState.QUEUED) -> Submitted:
        """Validate, de-duplicate and persist; the job then runs on a worker.

        Callers reach this only through the door (``bot.core.door.Core.handle``), which has
        authorised the request. Raises ``UserError`` subclasses (usage, not configured,
        already done).
        """
        request = self.validate(request)
        async with self._lock_for(request):
            if request.interaction_key and await self.jobs.by_interaction_key(request.interaction_key):
                # Slack delivered the same interaction again (a retry): it is already handled.
                log.info("duplicate_delivery", interaction_key=request.interaction_key)
                return Submitted(job_id=None, duplicate=True)
            await self.check_duplicate(request)
            job = await self.jobs.create(
                verb=request.verb.value,
                team_id=request.team_id,
                actor_id=request.actor_id,
                targets=request.targets,
                params=request.params,
                source=request.source.value,
                channel_id=request.channel_id,
                card_ts=request.card_ts,
                thread_ts=request.thread_ts,
                response_url=request.response_url,
                interaction_key=request.interaction_key,
                state=state,
            )
        if job is None:
            log.info("duplicate_delivery", interaction_key=request.interaction_key)
            return Submitted(job_id=None, duplicate=True)
        if state is JobState.QUEUED:
            self.queue.put_nowait(job.id)
        log.info("job_queued", job_id=job.id, verb=job.verb, items=len(request.targets), source=job.source)
        return Submitted(job_id=job.id)


def _describe(verb: str, params: JobParams) -> str:
    if verb == Verb.ASSIGN and params.assignee:
        return f"assign it to <@{params.assignee}>"
    return {
        "unassign": "unassign it",
        "resolve": "resolve it",
        "attach": "attach it to a case",
        "severity": "set its severity",
    }.get(verb, verb)


def _past(verb: Verb) -> str:
    return {
        Verb.ASSIGN: "assigned",
        Verb.UNASSIGN: "unassigned",
        Verb.RESOLVE: "resolved",
        Verb.ATTACH: "attached",
        Verb.SEVERITY: "updated",
    }.get(verb, "handled")
