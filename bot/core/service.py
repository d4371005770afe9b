"""ActionService: an action request becomes a durable job, then platform calls, then results.

``submit`` runs on Slack's acknowledgement path: it validates, authorises,
de-duplicates and persists the job, touching only SQLite. ``run`` is the
worker side: it resolves identities, calls the platforms per item and
records every outcome before the reporter tells Slack.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from enum import StrEnum

import structlog
from pydantic import BaseModel, Field

from bot.core.verbs import check as check_verb_params
from bot.errors import (
    NotConfiguredError,
    UsageError,
    UserError,
)
from bot.models import WRITE_VERBS, JobParams, JobState, Platform, Target, Verb
from bot.platforms.base import PlatformClient
from bot.store.jobs import DuplicateDelivery, JobStore, SameChange

log = structlog.get_logger(__name__)
# Asked before a DEBUG line on the acknowledgement path: structlog builds a bound logger per call.
_stdlib_log = logging.getLogger(__name__)


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
        # Where a stored job goes next: this process's worker pool (``Workers.enqueue``), or a
        # wake-up signal to a worker process (the web role); by default the local queue.
        self.dispatch: Callable[[str], None] = self.queue.put_nowait

    def client(self, platform: Platform) -> PlatformClient:
        """The client for ``platform``; ``NotConfiguredError`` when it has no credentials."""
        client = self.clients.get(platform)
        if client is None:
            raise NotConfiguredError(platform.label)
        return client

    def enqueue(self, job_id: str) -> None:
        """Hand a stored, queued job to whoever runs jobs (never waits: it is on the ack path)."""
        self.dispatch(job_id)

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
            if client is not None and (item_id := client.validate_id(t.id)) != t.id:
                t = t.model_copy(update={"id": item_id})
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
        check_verb_params(request.verb, request.params, normalised)
        if normalised == request.targets:  # already normal (as the edges' parsers give them)
            return request
        return request.model_copy(update={"targets": normalised})

    async def submit(self, request: ActionRequest, *, state: JobState = JobState.QUEUED) -> Submitted:
        """Validate, de-duplicate and persist; the job then runs on a worker.

        Callers reach this only through the door (``bot.core.door.Core.handle``), which has
        authorised the request. Raises ``UserError`` subclasses (usage, not configured,
        already done).
        """
        request = self.validate(request)
        # The redelivery check, the same-change check and the insert are one store
        # transaction, so two clicks (or two replicas) cannot both pass and both write.
        answer = await self.jobs.submit(
            verb=request.verb,
            team_id=request.team_id,
            actor_id=request.actor_id,
            targets=request.targets,
            params=request.params,
            source=request.source.value,
            from_card=request.source is Source.BUTTON,
            channel_id=request.channel_id,
            card_ts=request.card_ts,
            thread_ts=request.thread_ts,
            response_url=request.response_url,
            interaction_key=request.interaction_key,
            state=state,
        )
        if isinstance(answer, DuplicateDelivery):
            # Slack delivered the same interaction again (a retry): it is already handled.
            log.info("duplicate_delivery", interaction_key=request.interaction_key)
            return Submitted(job_id=None, duplicate=True)
        if isinstance(answer, SameChange):
            raise AlreadyDone(answer.message)
        job = answer
        if state is JobState.QUEUED:
            self.enqueue(job.id)
        # DEBUG: this runs before the ack, and the worker logs each job at INFO when it finishes.
        if _stdlib_log.isEnabledFor(logging.DEBUG):
            log.debug("job_queued", job_id=job.id, verb=job.verb, items=len(request.targets), source=job.source)
        return Submitted(job_id=job.id)
