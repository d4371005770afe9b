"""On-call handoff: collect everything one person holds, preview it, then reassign it as one job.

Phases, kept in the job's typed plan (``params.handoff.phase``, a ``HandoffPhase``):

1. ``collect`` — the worker resolves the outgoing person on each configured
   platform, lists what they hold (Datadog findings search, Kibana search
   per space, Xpanse scan), merges the ledger, stores the items and parks the
   job in ``awaiting_confirm``; the reporter posts a preview with Confirm / Cancel.
2. ``apply`` — Confirm moves the job back to ``queued`` (atomically, so a
   double click confirms once) and the worker reassigns every item with the
   batch operations; the reporter posts the outcome per platform and DMs the
   incoming person. Before each write the worker re-reads the items: one that the
   outgoing person no longer holds (reassigned or closed since the preview) is left
   alone and reported as skipped.

The incoming person is checked in both phases, before anything is listed or written: a
deactivated Slack account, a bot or app user, or a user Slack does not know ends the job
as refused (``params.refused``), and the reporter says who and why instead of a preview or
a result.

Kibana: an alert can have several assignees, and the reassignment makes the incoming
person its *only* assignee (co-assignees are removed too), the same as ``assign``.
That is deliberate — a handoff moves responsibility, not a share of it — and the
per-item outcome shows what each alert had before.

Writes are batched: Datadog 100 findings per call, Kibana one call per space and
batch, Xpanse one ``update_incident`` per incident within the client's rate limit.
"""

from __future__ import annotations

import asyncio

import structlog

from bot.core.runner import JobRunner
from bot.core.service import ActionRequest, ActionService, AlreadyDone, Source, Submitted
from bot.errors import ForbiddenError, NotMappedError, PlatformError, UserError
from bot.models import HandoffPhase, HandoffPlan, Job, JobParams, JobState, Platform, Target, Verb
from bot.store.oncall import CANCELLED, OnCallStore

log = structlog.get_logger(__name__)

MAX_ITEMS = 5000


class HandoffService:
    """The handoff verbs on top of ``ActionService``."""

    def __init__(self, service: ActionService, runner: JobRunner, oncall: OnCallStore | None = None) -> None:
        self.service = service
        self.runner = runner
        self.oncall = oncall  # a shift change's schedule row: a flip back withdraws its handoff

    async def withdrawn(self, job: Job) -> str | None:
        """Why a shift-change handoff was withdrawn (its schedule row is cancelled), else None."""
        key = job.interaction_key or ""
        if self.oncall is None or job.source != Source.SCHEDULE.value or not key.startswith("oncall:"):
            return None
        row = await self.oncall.get(int(key.removeprefix("oncall:") or 0))
        return (row.detail or "cancelled") if row is not None and row.state == CANCELLED else None

    async def request(
        self,
        *,
        team_id: str,
        actor_id: str,
        from_user: str,
        to_user: str,
        channel_id: str | None,
        response_url: str | None = None,
        interaction_key: str | None = None,
        plan: HandoffPlan | None = None,
        source: Source = Source.HANDOFF,
    ) -> Submitted:
        """Queue the collection of ``from_user``'s items; the preview follows in the channel.
        ``plan`` and ``source``: a shift-change handoff's schedule facts (``bot.core.oncall``)."""
        if from_user == to_user:
            raise UserError(f"<@{from_user}> cannot hand off to themselves")
        plan = (plan or HandoffPlan()).model_copy(update={"phase": HandoffPhase.COLLECT})
        request = ActionRequest(
            verb=Verb.HANDOFF,
            team_id=team_id,
            actor_id=actor_id,
            source=source,
            params=JobParams(assignee=to_user, from_user=from_user, handoff=plan),
            channel_id=channel_id,
            response_url=response_url,
            interaction_key=interaction_key,
        )
        return await self.service.submit(request)

    async def run(self, job: Job) -> Job | None:
        """Worker entry point for handoff jobs (both phases)."""
        if job.params.handoff is not None and job.params.handoff.phase is HandoffPhase.APPLY:
            return await self.runner.run(job.id)
        return await self.collect(job)

    async def collect(self, job: Job) -> Job | None:
        """List what the outgoing person holds on every platform and park the job for confirmation."""
        assert job.params.from_user is not None
        refusal = await self.runner.refusal(job)
        if refusal is not None:
            return await self._refuse(job, refusal)
        found: dict[str, Target] = {}
        problems: dict[Platform, str] = {}

        async def one(platform: Platform) -> None:
            try:
                identity = await self.service.resolve_identity(job.team_id, job.params.from_user or "", platform)
                held = await self.runner.client(platform).list_assigned(identity, limit=MAX_ITEMS)
            except (NotMappedError, UserError, PlatformError) as exc:
                problems[platform] = exc.message
                return
            for state in held:
                found.setdefault(state.target.key, state.target)
            # Items the bot itself assigned to them that a lagging search index may not show yet.
            for target in await self.service.jobs.held_by(platform=platform, identity=identity):
                found.setdefault(target.key, target)

        unmapped: list[Platform] = []

        async def receiver(platform: Platform) -> None:
            try:
                await self.service.resolve_identity(job.team_id, job.params.assignee or "", platform)
            except (UserError, PlatformError):
                unmapped.append(platform)

        # A shift-change handoff collects only from its schedule's platforms.
        wanted = (job.params.handoff.platforms if job.params.handoff else None) or list(self.service.clients)
        platforms = [p for p in self.service.clients if p in wanted]
        await asyncio.gather(*(one(p) for p in platforms), *(receiver(p) for p in platforms))
        targets = list(found.values())
        counts = {p: sum(1 for t in targets if t.platform is p) for p in Platform}
        params = job.params.model_copy(deep=True)
        plan = params.plan()
        plan.counts, plan.problems, plan.unmapped = counts, problems, sorted(unmapped)
        # Items, plan and state in one step: a crash leaves the job queued, to be collected again.
        await self.service.jobs.move(job.id, JobState.AWAITING_CONFIRM, params=params, items=targets)
        log.info("handoff_collected", job_id=job.id, counts=counts, problems=list(problems))
        # A rotation that flipped back while this was queued or collecting: cancel it here, before the
        # preview exists (the watcher marks the row first, so one of the two always sees the other).
        why = await self.withdrawn(job)
        if why is not None and await self.service.jobs.move(job.id, JobState.CANCELLED):
            await self.service.jobs.record(
                team_id=job.team_id,
                actor_id=job.actor_id,
                verb="handoff",
                outcome="cancelled",
                job_id=job.id,
                detail=why,
            )
            log.info("handoff_withdrawn", job_id=job.id, reason=why)
        return await self.service.jobs.get(job.id)

    async def _refuse(self, job: Job, reason: str) -> Job | None:
        """End a handoff whose receiver cannot take work before anything is listed or written;
        the reporter posts the refusal instead of a preview with Confirm."""
        params = job.params.model_copy(deep=True)
        params.refused = reason
        # QUEUED -> RUNNING -> FAILED: a crash in between re-runs the check on resume.
        await self.service.jobs.move(job.id, JobState.RUNNING)
        await self.service.jobs.move(job.id, JobState.FAILED, params=params, items=[])
        await self.service.jobs.record(
            team_id=job.team_id, actor_id=job.actor_id, verb="handoff", outcome="refused", job_id=job.id, detail=reason
        )
        log.warning("handoff_refused", job_id=job.id, to_user=job.params.assignee, reason=reason)
        return await self.service.jobs.get(job.id)

    async def confirm(self, job_id: str, *, actor_id: str, admin: bool) -> Job:
        """Start the reassignment; a second Confirm (or one after Cancel) is refused with what happened."""
        job = await self._waiting(job_id, actor_id=actor_id, admin=admin)
        params = job.params.model_copy(deep=True)
        plan = params.plan()
        plan.phase, plan.confirmed_by = HandoffPhase.APPLY, actor_id
        # Atomic in the store: of two Confirm clicks (on any replica) only one moves the job.
        if not await self.service.jobs.move(job.id, JobState.QUEUED, params=params):
            raise await self._already(job_id)
        self.service.enqueue(job.id)
        await self.service.jobs.record(
            team_id=job.team_id,
            actor_id=actor_id,
            verb="handoff",
            outcome="confirmed",
            job_id=job.id,
            detail=f"<@{job.params.from_user}> to <@{job.params.assignee}>",
        )
        refreshed = await self.service.jobs.get(job.id)
        assert refreshed is not None
        return refreshed

    async def cancel(self, job_id: str, *, actor_id: str, admin: bool) -> Job:
        """Cancel a handoff that has not been confirmed; nothing changes on any platform."""
        job = await self._waiting(job_id, actor_id=actor_id, admin=admin)
        if not await self.service.jobs.move(job.id, JobState.CANCELLED):
            raise await self._already(job_id)
        await self.service.jobs.record(
            team_id=job.team_id,
            actor_id=actor_id,
            verb="handoff",
            outcome="cancelled",
            job_id=job.id,
        )
        refreshed = await self.service.jobs.get(job.id)
        assert refreshed is not None
        return refreshed

    async def retry_failed(self, job_id: str, *, actor_id: str, interaction_key: str | None) -> Submitted:
        """Queue a new apply-phase handoff job holding only the items that failed."""
        job = await self.service.jobs.get(job_id)
        if job is None:
            raise UserError("that handoff is no longer known to the bot")
        failed = [i.target for i in await self.service.jobs.items(job.id) if i.state.value == "failed"]
        if not failed:
            raise AlreadyDone("nothing left to retry: every item of that handoff is done")
        params = job.params.model_copy(deep=True)
        plan = params.plan()
        plan.phase, plan.retry_of = HandoffPhase.APPLY, job.id
        request = ActionRequest(
            verb=Verb.HANDOFF,
            team_id=job.team_id,
            actor_id=actor_id,
            source=Source.HANDOFF,
            targets=failed,
            params=params,
            channel_id=job.channel_id,
            card_ts=job.card_ts,
            thread_ts=job.thread_ts or job.card_ts,
            interaction_key=interaction_key,
        )
        return await self.service.submit(request)

    async def _waiting(self, job_id: str, *, actor_id: str, admin: bool) -> Job:
        job = await self.service.jobs.get(job_id)
        if job is None or job.verb != Verb.HANDOFF:
            raise UserError("that handoff is no longer known to the bot")
        allowed = {job.actor_id, job.params.from_user}
        if job.source == Source.SCHEDULE.value:
            # A shift change: the outgoing or incoming person, an admin, or the watcher itself
            # (its system actor, which no Slack user can be) in auto mode or on a flip back.
            allowed = {job.actor_id, job.params.from_user, job.params.assignee}
            if actor_id not in allowed and not admin:
                raise ForbiddenError(
                    f"only <@{job.params.from_user}>, <@{job.params.assignee}> or an admin can confirm or "
                    "cancel this shift-change handoff"
                )
        if actor_id not in allowed and not admin:
            raise ForbiddenError(
                f"only <@{job.actor_id}>, <@{job.params.from_user}> or an admin can confirm or cancel this handoff"
            )
        if job.state is not JobState.AWAITING_CONFIRM:
            raise await self._already(job_id)
        return job

    async def _already(self, job_id: str) -> AlreadyDone:
        job = await self.service.jobs.get(job_id)
        if job is None:
            return AlreadyDone("that handoff is no longer known to the bot")
        if job.state is JobState.CANCELLED:
            return AlreadyDone("this handoff was cancelled; nothing was changed")
        who = job.params.handoff.confirmed_by if job.params.handoff else None
        by = f" by <@{who}>" if who else ""
        return AlreadyDone(f"this handoff was already confirmed{by} and is {job.state.value}")
