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
import uuid
import weakref
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
        """Validate, authorise, de-duplicate and persist; the job then runs on a worker.

        Raises ``UserError`` subclasses (usage, forbidden, not configured, already
        done); a refusal is written to the ledger before it is raised.
        """
        request = self.validate(request)
        try:
            await self.authorize(request, request.verb.value)
        except ForbiddenError as exc:
            await self.jobs.record(
                team_id=request.team_id,
                actor_id=request.actor_id,
                verb=request.verb.value,
                outcome="refused",
                detail=exc.message,
                target=request.targets[0] if len(request.targets) == 1 else None,
            )
            raise
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
        settled: set[str] = set()

        async def record(results: Sequence[ItemResult], among: Sequence[JobItem]) -> None:
            wanted = {i.target.key for i in among}
            pairs = [(by_key[r.target.key].seq, r) for r in results if r.target.key in wanted]
            seen = {r.target.key for r in results}
            # A client that forgot an item must not make it vanish: report it failed.
            pairs += [
                (i.seq, ItemResult(target=i.target, outcome=Outcome.FAILED, detail="no result from the platform"))
                for i in among
                if i.target.key not in seen
            ]
            await self.jobs.record_results(job, pairs)
            settled.update(wanted)

        def remaining() -> list[JobItem]:
            return [i for i in items if i.target.key not in settled]

        def all_items(outcome: Outcome, detail: str, status: int | None = None) -> list[ItemResult]:
            return [ItemResult(target=i.target, outcome=outcome, detail=detail, status=status) for i in remaining()]

        try:
            client = self.client(platform)
            if verb is Verb.COMMENT:
                await self._run_comments(job, client, items, settled)
                return
            skipped, todo, states = await self._preread(job, verb, platform, client, items)
            if skipped:
                await record(skipped, [by_key[r.target.key] for r in skipped])
            if not todo:
                return
            known = await self._last_known([i.target for i in todo]) if verb in _ASSIGNMENT else {}
            await self.jobs.mark_items(job.id, [i.seq for i in todo], IS.RUNNING)
            result = await self._call(job, verb, platform, client, [i.target for i in todo])
            await record(
                [_annotate(r, states.get(r.target.key), known.get(r.target.key), platform) for r in result.items], todo
            )
        except NotConfiguredError as exc:
            await record(all_items(Outcome.SKIPPED, exc.message), remaining())
        except UserError as exc:
            await record(
                all_items(Outcome.SKIPPED if not isinstance(exc, UsageError) else Outcome.FAILED, exc.message),
                remaining(),
            )
        except PlatformError as exc:
            await record(all_items(Outcome.FAILED, exc.reason, exc.status), remaining())
        except asyncio.CancelledError:
            raise
        except Exception:  # one platform's bug must not lose the other platforms' items
            ref = uuid.uuid4().hex[:8]
            log.exception("platform_step_crashed", ref=ref, platform=platform.value)
            await record(all_items(Outcome.FAILED, f"internal error (reference {ref})"), remaining())

    async def _run_comments(
        self, job: Job, client: PlatformClient, items: Sequence[JobItem], settled: set[str]
    ) -> None:
        """Send comments one at a time, each marked RUNNING only while it is being sent.

        A comment is not idempotent: after a crash only the one that was on the wire is
        uncertain; the ones not yet started are still PENDING and are sent on resume.
        """
        for item in items:
            await self.jobs.mark_items(job.id, [item.seq], IS.RUNNING)
            try:
                result = await client.comment(item.target, job.params.text or "")
            except UserError as exc:
                result = ItemResult(target=item.target, outcome=Outcome.FAILED, detail=exc.message)
            except PlatformError as exc:
                result = ItemResult(target=item.target, outcome=Outcome.FAILED, detail=exc.reason, status=exc.status)
            await self.jobs.record_results(job, [(item.seq, result)])
            settled.add(item.target.key)

    async def _preread(
        self, job: Job, verb: Verb, platform: Platform, client: PlatformClient, items: Sequence[JobItem]
    ) -> tuple[list[ItemResult], list[JobItem], dict[str, ItemState]]:
        """Read items before writing where the client does not: (settled, still to write, states).

        Datadog's assignment endpoint writes blindly, so its items are read first and those
        already in the requested state are SKIPPED without a write. A handoff reads every
        item: one that the outgoing person no longer holds (reassigned or closed since the
        preview) is left alone. A failed read is not fatal: the writes are idempotent.
        """
        reads_itself = platform is not Platform.DATADOG
        if verb is not Verb.HANDOFF and (reads_itself or verb not in (Verb.ASSIGN, Verb.UNASSIGN)):
            return [], list(items), {}
        wanted: str | None = None
        if verb in (Verb.ASSIGN, Verb.HANDOFF):
            wanted = await self.identity_for(job, platform)
        holder: str | None = None
        if verb is Verb.HANDOFF and job.params.from_user:
            holder = await self._from_identity(job, platform)
        try:
            found = await client.fetch([i.target for i in items])
        except PlatformError as exc:
            log.warning("preread_failed", platform=platform.value, reason=exc.reason)
            return [], list(items), {}
        states = {t.key: st for t, st in found.items()}
        skipped: list[ItemResult] = []
        todo: list[JobItem] = []
        for item in items:
            state = states.get(item.target.key)
            if state is None:
                todo.append(item)  # the write itself reports a missing item per item
                continue
            current = [a.lower() for a in state.assignees]
            now = ",".join(state.assignees) or None
            if wanted is not None and current == [wanted.lower()]:
                skipped.append(
                    ItemResult(
                        target=item.target,
                        outcome=Outcome.SKIPPED,
                        detail=f"already assigned to {wanted}",
                        before=now,
                        after=now,
                    )
                )
            elif verb is Verb.UNASSIGN and not current:
                skipped.append(
                    ItemResult(
                        target=item.target,
                        outcome=Outcome.SKIPPED,
                        detail="already unassigned",
                        before=None,
                        after=None,
                    )
                )
            elif verb is Verb.HANDOFF and holder is not None and holder.lower() not in current:
                skipped.append(
                    ItemResult(
                        target=item.target,
                        outcome=Outcome.SKIPPED,
                        before=now,
                        after=now,
                        detail=f"no longer held by {holder} (now {now or 'unassigned'}); left as it is",
                    )
                )
            elif verb is Verb.HANDOFF and not state.is_open:
                skipped.append(
                    ItemResult(
                        target=item.target,
                        outcome=Outcome.SKIPPED,
                        before=now,
                        after=now,
                        detail=f"{state.status} since the preview; left as it is",
                    )
                )
            else:
                todo.append(item)
        return skipped, todo, states

    async def _from_identity(self, job: Job, platform: Platform) -> str | None:
        """The outgoing person's identity on ``platform`` (kept in the job), None if unmapped."""
        known: dict[str, str] = job.params.extra.setdefault("from_identities", {})
        if platform.value in known:
            return known[platform.value]
        try:
            value = await self.resolve_identity(job.team_id, job.params.from_user or "", platform)
        except (UserError, PlatformError):
            return None
        known[platform.value] = value
        await self.jobs.update_params(job.id, job.params)
        return value

    async def _last_known(self, targets: Sequence[Target]) -> dict[str, tuple[str | None]]:
        """What the bot's last change left on each item (from the ledger), for "changed since" notes."""
        out: dict[str, tuple[str | None]] = {}
        for t in targets:
            entry = await self.jobs.last_known(t)
            if entry is not None:
                out[t.key] = (entry.after,)
        return out

    async def holdings(self, team_id: str, user_id: str, *, limit: int = 200) -> dict[Platform, list[Target] | str]:
        """What ``user_id`` holds per platform: the platform's search merged with the ledger.

        The ledger adds items the bot assigned to them that a lagging search index does not
        show yet; a platform that cannot answer maps to the reason (a sentence) instead.
        """
        out: dict[Platform, list[Target] | str] = {}

        async def one(platform: Platform, client: PlatformClient) -> None:
            try:
                identity = await self.resolve_identity(team_id, user_id, platform)
                held = await client.list_assigned(identity, limit=limit)
            except (UserError, PlatformError) as exc:
                out[platform] = exc.message
                return
            found: dict[str, Target] = {s.target.key: s.target for s in held}
            for target in await self.jobs.held_by(platform=platform, identity=identity):
                found.setdefault(target.key, target)
            out[platform] = list(found.values())

        await asyncio.gather(*(one(p, c) for p, c in self.clients.items()))
        return {p: out[p] for p in Platform if p in out}

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


_ASSIGNMENT = {Verb.ASSIGN, Verb.UNASSIGN, Verb.HANDOFF}


def _same(a: str | None, b: str | None) -> bool:
    return (a or "").lower() == (b or "").lower()


def _annotate(
    result: ItemResult, state: ItemState | None, known: tuple[str | None] | None, platform: Platform
) -> ItemResult:
    """Fill a write's ``before`` from the pre-read and say when the item changed outside the bot.

    ``known`` holds what the bot's last change left on the item (from the ledger), or is None
    when the bot never changed it; a different ``before`` means someone changed it in the
    platform's own UI since then, which is what the card the actor clicked was showing.
    """
    update: dict[str, object] = {}
    before = result.before
    if before is None and state is not None:
        before = ",".join(state.assignees) or None
        update["before"] = before
    if known is not None and before is not None and not _same(before, known[0]):
        had = known[0] or "nobody"
        update["detail"] = (f"{result.detail}; " if result.detail else "") + (
            f"note: changed in {platform.label} since the bot last set it (it had left {had}, "
            f"found {before or 'nobody'})"
        )
    return result.model_copy(update=update) if update else result


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
