"""The one door into the core: every request, from every surface, is authorised here first.

``Core.handle`` takes a typed ``ActionRequest`` (from a slash command, a button, a
modal, the message shortcut, a webhook, and any surface added later), authorises it
with the one ``Access`` check, then answers it now (help, map, history …), starts a
read that answers after the acknowledgement (whoami, mine), or stores it as a job
(every platform write, show, refresh, handoff). A refusal is written to the ledger
before it is raised, and nothing else happens: no platform is called, nothing is
stored. Surfaces never reach the services behind the door.
"""

from __future__ import annotations

import structlog

from bot.core import answers as a
from bot.core.access import Access, Grant
from bot.core.handoff import HandoffService
from bot.core.identity import IdentityResolver
from bot.core.queries import Queries
from bot.core.runner import JobRunner
from bot.core.service import ActionRequest, ActionService, Source, Step
from bot.core.undo import UndoDesk
from bot.errors import ForbiddenError, UsageError
from bot.models import Verb
from bot.store.jobs import JobStore

log = structlog.get_logger(__name__)


class Core:
    """Authorises, then answers or persists, every request."""

    def __init__(
        self,
        *,
        access: Access,
        actions: ActionService,
        runner: JobRunner,
        handoff: HandoffService,
        identity: IdentityResolver,
        jobs: JobStore,
        oncall: a.OnCallDesk | None = None,
    ) -> None:
        self.access = access
        self.actions = actions
        self.runner = runner
        self.handoff = handoff
        self.identity = identity
        self.jobs = jobs
        self.oncall = oncall  # set by the runtime once the watcher exists (it needs this door)
        self.queries = Queries(jobs=jobs, identity=identity, runner=runner)
        self.undo = UndoDesk(jobs=jobs, actions=actions)

    async def handle(self, request: ActionRequest) -> a.Reply:
        """Authorise ``request``, then answer or persist it.

        Raises ``ForbiddenError`` (already in the ledger) when the policy refuses, and the
        other ``UserError`` kinds for requests that cannot be carried out as given.
        """
        try:
            grant = await self.access.authorise(request)
            return await self._dispatch(request, grant)
        except ForbiddenError as exc:
            await self.jobs.record(
                team_id=request.team_id,
                actor_id=request.actor_id,
                verb=request.verb.value,
                outcome="refused",
                detail=exc.message,
                target=request.target,
            )
            log.info("request_refused", verb=request.verb.value, source=request.source.value, step=request.step.value)
            raise

    async def _dispatch(self, request: ActionRequest, grant: Grant) -> a.Reply:
        verb = request.verb
        if request.step is Step.FORM:
            return a.Reply(a.FormAllowed())
        if request.step is not Step.RUN:
            return await self._handoff_step(request, grant)
        if request.source is Source.WEBHOOK:
            return a.Reply(a.Authorised())
        if verb is Verb.HELP:
            return a.Reply(a.Help(request.help_verb))
        if verb is Verb.MAP:
            mapped = await self.identity.map(request.team_id, request.actor_id, request.about, request.identities)
            return a.Reply(a.Mapped(request.about, mapped))
        if verb is Verb.UNMAP:
            if request.platform is None:
                raise UsageError("say which platform to unmap", verb=verb.value)
            removed = await self.identity.unmap(request.team_id, request.about, request.platform)
            return a.Reply(a.Unmapped(request.about, request.platform, removed))
        if verb is Verb.HISTORY:
            if request.target is None:
                raise UsageError("`history` takes exactly one target", verb=verb.value)
            return a.Reply(await self.queries.history(request.target))
        if verb is Verb.WHOAMI:
            return a.Reply(
                a.LookingUp(verb, request.about), later=lambda: self.queries.whoami(request.team_id, request.about)
            )
        if verb is Verb.MINE and request.source is Source.HOME:
            return a.Reply(a.Authorised(), later=lambda: self.queries.home(request.team_id, request.about))
        if verb is Verb.SHOW and request.source is Source.UNFURL:
            targets = list(request.targets)
            return a.Reply(a.Authorised(), later=lambda: self.queries.cards(targets))
        if verb is Verb.MINE:
            return a.Reply(
                a.LookingUp(verb, request.about), later=lambda: self.queries.mine(request.team_id, request.about)
            )
        if verb is Verb.ONCALL:
            return self._oncall(request)
        if verb is Verb.UNDO:
            submitted = await self.undo.request(request, admin=grant.admin)
            return a.Reply(a.Accepted(verb, 1, submitted.job_id, submitted.duplicate))
        if verb is Verb.HANDOFF and not request.targets:
            await self.handoff.request(
                team_id=request.team_id,
                actor_id=request.actor_id,
                from_user=request.params.from_user or request.actor_id,
                to_user=request.params.assignee or "",
                channel_id=request.channel_id,
                response_url=request.response_url,
                interaction_key=request.interaction_key,
                plan=request.params.handoff if request.source is Source.SCHEDULE else None,
                source=request.source if request.source is Source.SCHEDULE else Source.HANDOFF,
            )
            return a.Reply(a.HandoffQueued(request.params.from_user or request.actor_id))
        submitted = await self.actions.submit(request)
        return a.Reply(a.Accepted(verb, len(request.targets), submitted.job_id, submitted.duplicate))

    def _oncall(self, request: ActionRequest) -> a.Reply:
        desk, name = self.oncall, request.params.text
        if desk is None or not desk.schedule_names():
            raise UsageError("No on-call schedules are configured (TRIAGE_ONCALL).", verb=Verb.ONCALL.value)
        if name is not None and name not in desk.schedule_names():
            known = ", ".join(f"`{n}`" for n in desk.schedule_names())
            raise UsageError(f"There is no schedule `{name}`; configured: {known}.", verb=Verb.ONCALL.value)
        return a.Reply(a.LookingUp(Verb.ONCALL, request.actor_id), later=lambda: desk.overview(name))

    async def _handoff_step(self, request: ActionRequest, grant: Grant) -> a.Reply:
        if request.verb is not Verb.HANDOFF or not request.job_ref:
            raise UsageError(f"`{request.step.value}` applies to a handoff only")
        if request.step is Step.RETRY:
            submitted = await self.handoff.retry_failed(
                request.job_ref, actor_id=request.actor_id, interaction_key=request.interaction_key
            )
            return a.Reply(a.RetryQueued(submitted.job_id))
        if request.step is Step.CONFIRM:
            job = await self.handoff.confirm(request.job_ref, actor_id=request.actor_id, admin=grant.admin)
        else:
            job = await self.handoff.cancel(request.job_ref, actor_id=request.actor_id, admin=grant.admin)
        return a.Reply(a.HandoffDecided(job, confirmed=request.step is Step.CONFIRM, actor_id=request.actor_id))
