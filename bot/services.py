"""ActionService: an action request becomes a durable job, then platform calls, then results.

``submit`` runs on Slack's acknowledgement path: it validates, authorises,
de-duplicates and persists the job, touching only SQLite. ``run`` is the
worker side: it resolves identities, calls the platforms per item and
records every outcome before the reporter tells Slack.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from enum import StrEnum

import structlog
from pydantic import BaseModel, Field

from bot.errors import (
    ForbiddenError,
    NotConfiguredError,
    PlatformError,
    UsageError,
    UserError,
)
from bot.metrics import ACTIONS
from bot.models import BatchResult, ItemResult, ItemState, Outcome, Platform, Target, Verb
from bot.platforms.base import PlatformClient
from bot.store.jobs import ItemStatus as IS
from bot.store.jobs import Job, JobItem, JobParams, JobState, JobStore

log = structlog.get_logger(__name__)

# Verbs that change platform state and run as jobs.
WRITE_VERBS = {Verb.ASSIGN, Verb.UNASSIGN, Verb.ATTACH, Verb.RESOLVE, Verb.COMMENT, Verb.SEVERITY}
# Re-sending these cannot change the outcome, so an interrupted item is simply re-applied.
IDEMPOTENT_VERBS = (WRITE_VERBS - {Verb.COMMENT}) | {Verb.HANDOFF}
# A second identical request inside this window is answered "already …" instead of run.
DUPLICATE_WINDOW_S = 60.0


class Source(StrEnum):
    SLASH = "slash"
    BUTTON = "button"
    MODAL = "modal"
    SHORTCUT = "shortcut"
    HANDOFF = "handoff"
    WEBHOOK = "webhook"
    SHELL = "shell"


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


class AlreadyDone(UserError):
    """The same change is queued, running, or was just made; nothing new is queued."""


class Submitted(BaseModel):
    job_id: str | None
    duplicate: bool = False


Authorizer = Callable[[ActionRequest, str], Awaitable[None]]
IdentityLookup = Callable[[str, str, Platform], Awaitable[str]]


def dedupe_targets(targets: Sequence[Target]) -> list[Target]:
    seen: set[str] = set()
    out: list[Target] = []
    for t in targets:
        if t.key not in seen:
            seen.add(t.key)
            out.append(t)
    return out


def job_outcome(items: Sequence[JobItem]) -> JobState:
    """DONE when every item is ok or skipped as already in state, FAILED when none is, else PARTIAL."""
    ok = [i for i in items if i.state in (IS.DONE, IS.WARNING, IS.SKIPPED)]
    if len(ok) == len(items):
        return JobState.DONE
    if not ok:
        return JobState.FAILED
    return JobState.PARTIAL


class ActionService:
    """Turns requests into jobs and jobs into platform calls."""

    def __init__(
        self,
        *,
        clients: Mapping[Platform, PlatformClient],
        jobs: JobStore,
        resolve_identity: IdentityLookup,
        authorize: Authorizer,
        default_space: str = "default",
    ) -> None:
        self.clients = dict(clients)
        self.jobs = jobs
        self.resolve_identity = resolve_identity
        self.authorize = authorize
        self.default_space = default_space
        self.queue: asyncio.Queue[str] = asyncio.Queue()

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
        """Raise ``AlreadyDone`` when this exact change is in flight or was just made."""
        if request.verb not in IDEMPOTENT_VERBS or len(request.targets) != 1:
            return
        target = request.targets[0]
        wanted = request.params.assignee if request.verb is Verb.ASSIGN else None
        flight = await self.jobs.in_flight(target, verb=request.verb.value)
        if flight is not None:
            job, _ = flight
            if job.params.assignee == wanted or request.verb is not Verb.ASSIGN:
                ago = time.time() - job.created_at
                raise AlreadyDone(
                    f"{target.key} is already being handled: <@{job.actor_id}> asked to "
                    f"{_describe(job.verb, job.params)} {ago:.0f} s ago"
                )
        recent = await self.jobs.recent_change(
            target, verb=request.verb.value, assignee=wanted, within=DUPLICATE_WINDOW_S
        )
        if recent is not None:
            ago = time.time() - recent.at
            to = f" to <@{wanted}>" if wanted else ""
            raise AlreadyDone(
                f"{target.key} was already {_past(request.verb)}{to} by <@{recent.actor_id}> {ago:.0f} s ago"
            )

    async def submit(self, request: ActionRequest, *, state: JobState = JobState.QUEUED) -> Submitted:
        """Validate, authorise, de-duplicate and persist; the job then runs on a worker.

        Raises ``UserError`` subclasses (usage, forbidden, not configured, already
        done); a refusal is written to the ledger before it is raised.
        """
        request = self.validate(request)
        try:
            await self.authorize(request, request.verb.value)
        except ForbiddenError as exc:
            await self.jobs.record(
                team_id=request.team_id, actor_id=request.actor_id, verb=request.verb.value,
                outcome="refused", detail=exc.message,
                target=request.targets[0] if len(request.targets) == 1 else None,
            )
            raise
        await self.check_duplicate(request)
        job = await self.jobs.create(
            verb=request.verb.value, team_id=request.team_id, actor_id=request.actor_id,
            targets=request.targets, params=request.params, source=request.source.value,
            channel_id=request.channel_id, card_ts=request.card_ts, thread_ts=request.thread_ts,
            response_url=request.response_url, interaction_key=request.interaction_key, state=state,
        )
        if job is None:
            log.info("duplicate_delivery", interaction_key=request.interaction_key)
            return Submitted(job_id=None, duplicate=True)
        if state is JobState.QUEUED:
            self.queue.put_nowait(job.id)
        log.info("job_queued", job_id=job.id, verb=job.verb, items=len(request.targets), source=job.source)
        return Submitted(job_id=job.id)

    # ---- the worker side -----------------------------------------------------------------

    async def run(self, job_id: str) -> Job | None:
        """Execute a queued job's unfinished items and record each outcome; returns the job."""
        job = await self.jobs.get(job_id)
        if job is None or job.state not in (JobState.QUEUED, JobState.RUNNING):
            return job
        structlog.contextvars.bind_contextvars(job_id=job.id)
        try:
            await self.jobs.set_state(job.id, JobState.RUNNING)
            items = await self.jobs.items(job.id)
            await self._settle_interrupted(job, items)
            items = await self.jobs.items(job.id)
            pending = [i for i in items if not i.state.terminal]
            if pending:
                await self._execute(job, pending)
            items = await self.jobs.items(job.id)
            state = job_outcome(items)
            await self.jobs.set_state(job.id, state)
            for item in items:
                ACTIONS.labels(item.target.platform.value, job.verb, item.state.value).inc()
            return await self.jobs.get(job.id)
        finally:
            structlog.contextvars.unbind_contextvars("job_id")

    async def _settle_interrupted(self, job: Job, items: Sequence[JobItem]) -> None:
        """Items left RUNNING by a crash: re-apply idempotent ones, never resend a comment."""
        running = [i for i in items if i.state is IS.RUNNING]
        if not running:
            return
        if Verb(job.verb) in IDEMPOTENT_VERBS:
            await self.jobs.mark_items(job.id, [i.seq for i in running], IS.PENDING, "resumed after a restart")
            return
        uncertain = (
            "uncertain: the bot stopped while sending this; it may or may not have been applied. "
            "Check the item before trying again"
        )
        await self.jobs.record_results(
            job, [(i.seq, ItemResult(target=i.target, outcome=Outcome.FAILED, detail=uncertain)) for i in running]
        )

    async def _execute(self, job: Job, pending: Sequence[JobItem]) -> None:
        by_platform: dict[Platform, list[JobItem]] = defaultdict(list)
        for item in pending:
            by_platform[item.target.platform].append(item)
        await asyncio.gather(*(self._run_platform(job, p, its) for p, its in by_platform.items()))

    async def _run_platform(self, job: Job, platform: Platform, items: list[JobItem]) -> None:
        verb = Verb(job.verb)
        by_key = {i.target.key: i for i in items}

        async def record(results: Sequence[ItemResult]) -> None:
            pairs = [(by_key[r.target.key].seq, r) for r in results if r.target.key in by_key]
            seen = {r.target.key for r in results}
            # A client that forgot an item must not make it vanish: report it failed.
            pairs += [
                (i.seq, ItemResult(target=i.target, outcome=Outcome.FAILED, detail="no result from the platform"))
                for k, i in by_key.items() if k not in seen
            ]
            await self.jobs.record_results(job, pairs)

        def all_items(outcome: Outcome, detail: str, status: int | None = None) -> list[ItemResult]:
            return [ItemResult(target=i.target, outcome=outcome, detail=detail, status=status) for i in items]

        try:
            client = self.client(platform)
            targets = [i.target for i in items]
            await self.jobs.mark_items(job.id, [i.seq for i in items], IS.RUNNING)
            result = await self._call(job, verb, platform, client, targets)
            await record(result.items)
        except NotConfiguredError as exc:
            await record(all_items(Outcome.SKIPPED, exc.message))
        except UserError as exc:
            await record(all_items(Outcome.SKIPPED if not isinstance(exc, UsageError) else Outcome.FAILED,
                                   exc.message))
        except PlatformError as exc:
            await record(all_items(Outcome.FAILED, exc.reason, exc.status))
        except asyncio.CancelledError:
            raise
        except Exception:  # one platform's bug must not lose the other platforms' items
            ref = uuid.uuid4().hex[:8]
            log.exception("platform_step_crashed", ref=ref, platform=platform.value)
            await record(all_items(Outcome.FAILED, f"internal error (reference {ref})"))

    async def identity_for(self, job: Job, platform: Platform) -> str:
        """The platform identity of the job's assignee, resolved once and kept in the job."""
        key = platform.value
        if key in job.params.identities:
            return job.params.identities[key]
        assert job.params.assignee is not None
        value = await self.resolve_identity(job.team_id, job.params.assignee, platform)
        job.params.identities[key] = value
        await self.jobs.update_params(job.id, job.params)
        return value

    async def _call(
        self, job: Job, verb: Verb, platform: Platform, client: PlatformClient, targets: list[Target]
    ) -> BatchResult:
        p = job.params
        if verb in (Verb.ASSIGN, Verb.HANDOFF):
            user_id = await self.identity_for(job, platform)
            return await client.assign(targets, user_id, user_name=p.extra.get("assignee_name"))
        if verb is Verb.UNASSIGN:
            return await client.unassign(targets)
        if verb is Verb.ATTACH:
            return await client.attach_case(targets, p.case or "")
        if verb is Verb.RESOLVE:
            return await client.resolve(targets, reason=p.reason, comment=p.comment)
        if verb is Verb.SEVERITY:
            return await client.set_severity(targets, p.severity or "")
        if verb is Verb.COMMENT:
            results = [await client.comment(t, p.text or "") for t in targets]
            return BatchResult.of(results)
        if verb in (Verb.SHOW, Verb.REFRESH):
            # Reads only: the reporter fetches the current state when it draws the cards.
            return BatchResult.of(ItemResult(target=t, outcome=Outcome.DONE, detail="read") for t in targets)
        raise UsageError(f"`{verb}` is not an action on items", verb=verb.value)

    # ---- reads -------------------------------------------------------------------------

    async def fetch(self, targets: Sequence[Target]) -> tuple[dict[str, ItemState], dict[str, str]]:
        """Current state per target key, and a reason per key that could not be read."""
        states: dict[str, ItemState] = {}
        problems: dict[str, str] = {}
        by_platform: dict[Platform, list[Target]] = defaultdict(list)
        for t in targets:
            by_platform[t.platform].append(t)

        async def one(platform: Platform, ts: list[Target]) -> None:
            try:
                found = await self.client(platform).fetch(ts)
            except (UserError, PlatformError) as exc:
                problems.update({t.key: exc.message for t in ts})
                return
            by_key = {t.key: s for t, s in found.items()}
            for t in ts:
                if t.key in by_key:
                    states[t.key] = by_key[t.key]
                else:
                    problems[t.key] = f"{platform.label} does not hold {t.key}"

        await asyncio.gather(*(one(p, ts) for p, ts in by_platform.items()))
        return states, problems


def _describe(verb: str, params: JobParams) -> str:
    if verb == Verb.ASSIGN and params.assignee:
        return f"assign it to <@{params.assignee}>"
    return {"unassign": "unassign it", "resolve": "resolve it", "attach": "attach it to a case",
            "severity": "set its severity"}.get(verb, verb)


def _past(verb: Verb) -> str:
    return {Verb.ASSIGN: "assigned", Verb.UNASSIGN: "unassigned", Verb.RESOLVE: "resolved",
            Verb.ATTACH: "attached", Verb.SEVERITY: "updated"}.get(verb, "handled")
