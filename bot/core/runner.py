"""The worker side of a job: identities resolved, platforms called per item, every outcome recorded.

``JobRunner.run`` executes a stored job's unfinished items; an item left in flight by a
crash is re-applied when its verb is idempotent and reported uncertain otherwise (a
comment is never resent). ``fetch`` and ``holdings`` are the platform reads the
reporter and the read verbs share.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence

import structlog

from bot.core import verbs
from bot.core.refusal import AssigneeCheck, refusal, refuse
from bot.core.service import IdentityLookup
from bot.core.undo import undo_items
from bot.errors import NotConfiguredError, PlatformError, UsageError, UserError
from bot.metrics import ACTIONS
from bot.models import (
    IDEMPOTENT_VERBS,
    BatchResult,
    HandoffPhase,
    HandoffPlan,
    ItemResult,
    ItemState,
    Job,
    JobItem,
    JobState,
    Outcome,
    Platform,
    Target,
    Verb,
    job_outcome,
)
from bot.models import ItemStatus as IS
from bot.platforms.base import PlatformClient
from bot.store.jobs import JobStore

log = structlog.get_logger(__name__)


class JobRunner:
    """Runs stored jobs against the platform clients."""

    def __init__(
        self,
        *,
        clients: Mapping[Platform, PlatformClient],
        jobs: JobStore,
        resolve_identity: IdentityLookup,
        check_assignee: AssigneeCheck | None = None,
    ) -> None:
        self.clients = dict(clients)
        self.jobs = jobs
        self.resolve_identity = resolve_identity
        # None: assignees are not checked (unit tests that wire a runner by hand).
        self.check_assignee = check_assignee

    def client(self, platform: Platform) -> PlatformClient:
        """The client for ``platform``; ``NotConfiguredError`` when it has no credentials."""
        client = self.clients.get(platform)
        if client is None:
            raise NotConfiguredError(platform.label)
        return client

    async def run(self, job_id: str, *, read: Job | None = None) -> Job | None:
        """Execute a queued job's unfinished items and record each outcome; returns the job.

        ``read``: the job as the caller just read it from the store (saves reading it again)."""
        job = read if read is not None and read.id == job_id else await self.jobs.get(job_id)
        if job is None or job.state not in (JobState.QUEUED, JobState.RUNNING):
            return job
        structlog.contextvars.bind_contextvars(job_id=job.id)
        try:
            if not await self.jobs.move(job.id, JobState.RUNNING):
                return await self.jobs.get(job.id)  # someone else moved it meanwhile
            items = await self.jobs.items(job.id)
            if await self._settle_interrupted(job, items):
                items = await self.jobs.items(job.id)
            pending = [i for i in items if not i.state.terminal]
            refused = await self.refusal(job) if pending else None
            if refused is not None:
                await refuse(self.jobs, job, pending, refused)
            elif pending:
                await self._execute(job, pending)
            items = await self.jobs.items(job.id)
            await self.jobs.move(job.id, job_outcome(items))
            for item in items:
                ACTIONS.labels(item.target.platform.value, job.verb, item.state.value).inc()
            return await self.jobs.get(job.id)
        finally:
            structlog.contextvars.unbind_contextvars("job_id")

    async def refusal(self, job: Job) -> str | None:
        """Why the job's assignee cannot take its items, or None (``bot.core.refusal``)."""
        return await refusal(self.check_assignee, job)

    async def _settle_interrupted(self, job: Job, items: Sequence[JobItem]) -> bool:
        """Items left RUNNING by a crash: re-apply idempotent ones, never resend a comment.

        True when there were any (their states changed)."""
        running = [i for i in items if i.state is IS.RUNNING]
        if not running:
            return False
        if job.verb in IDEMPOTENT_VERBS:
            await self.jobs.mark_items(job.id, [i.seq for i in running], IS.PENDING, "resumed after a restart")
            return True
        uncertain = (
            "uncertain: the bot stopped while sending this; it may or may not have been applied. "
            "Check the item before trying again"
        )
        await self.jobs.record_results(
            job, [(i.seq, ItemResult(target=i.target, outcome=Outcome.FAILED, detail=uncertain)) for i in running]
        )
        return True

    async def _execute(self, job: Job, pending: Sequence[JobItem]) -> None:
        by_platform: dict[Platform, list[JobItem]] = defaultdict(list)
        for item in pending:
            by_platform[item.target.platform].append(item)
        await asyncio.gather(*(self._run_platform(job, p, its) for p, its in by_platform.items()))

    async def _run_platform(self, job: Job, platform: Platform, items: list[JobItem]) -> None:
        verb = job.verb
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
            if verb is Verb.UNDO:  # reads, compares with what the write left, then writes back
                await record(await undo_items(self.jobs, job, platform, client, items), items)
                return
            skipped, todo, states = await self._preread(job, verb, platform, client, items)
            if skipped:
                await record(skipped, [by_key[r.target.key] for r in skipped])
            if not todo:
                return
            known = await self._last_known([i.target for i in todo]) if verb in _ASSIGNMENT else {}
            taken = set(await self.jobs.mark_items(job.id, [i.seq for i in todo], IS.RUNNING))
            if len(taken) < len(todo):  # another worker runs this job too and took the rest
                settled.update(i.target.key for i in todo if i.seq not in taken)
                todo = [i for i in todo if i.seq in taken]
                if not todo:
                    return
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
            if not await self.jobs.mark_items(job.id, [item.seq], IS.RUNNING):
                settled.add(item.target.key)  # another worker took it: it sends it, once
                continue
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
            detail: str | None = None  # why the item is left alone (None: write it)
            if wanted is not None and current == [wanted.lower()]:
                detail = f"already assigned to {wanted}"
            elif verb is Verb.UNASSIGN and not current:
                detail = "already unassigned"
            elif verb is Verb.HANDOFF and holder is not None and holder.lower() not in current:
                detail = f"no longer held by {holder} (now {now or 'unassigned'}); left as it is"
            elif verb is Verb.HANDOFF and not state.is_open:
                detail = f"{state.status} since the preview; left as it is"
            if detail is None:
                todo.append(item)
            else:
                skipped.append(
                    ItemResult(target=item.target, outcome=Outcome.SKIPPED, detail=detail, before=now, after=now)
                )
        return skipped, todo, states

    async def _from_identity(self, job: Job, platform: Platform) -> str | None:
        """The outgoing person's identity on ``platform`` (kept in the job), None if unmapped."""
        if job.params.handoff is None:
            job.params.handoff = HandoffPlan(phase=HandoffPhase.APPLY)
        known = job.params.handoff.from_identities
        if platform in known:
            return known[platform]
        try:
            value = await self.resolve_identity(job.team_id, job.params.from_user or "", platform)
        except (UserError, PlatformError):
            return None
        known[platform] = value
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
            result = await client.assign(targets, user_id, user_name=p.assignee_name)
        else:
            result = await verbs.call(job, verb, platform, client, targets)
        return await verbs.attribute(job, verb, platform, client, result)

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
