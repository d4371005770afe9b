"""The composition root: settings in, every long-lived service out (and closed again)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import structlog

from bot.core.access import Access, GroupDirectory
from bot.core.door import Core
from bot.core.handoff import HandoffService
from bot.core.identity import IdentityResolver
from bot.core.intake import Poster
from bot.core.oncall import OnCallWatcher
from bot.core.oncall_config import OnCallConfig, load_oncall
from bot.core.policy import Policy, load_policy
from bot.core.reconcile import Reconciler, oncall_lookup
from bot.core.runner import JobRunner
from bot.core.service import ActionService
from bot.core.workers import Workers
from bot.models import Platform, Verb
from bot.platforms import build_clients, build_sources
from bot.platforms.base import PlatformClient
from bot.platforms.http import Limiter
from bot.platforms.oncall import ScheduleSource
from bot.settings import Settings
from bot.slack.intake_cards import IntakeCards
from bot.slack.replies import post_notice
from bot.slack.reporter import Reporter
from bot.slack.truth import TrueCards
from bot.slack.undo_offers import UndoSweeper
from bot.slack_web import SlackWeb
from bot.store.budgets import SharedBudget
from bot.store.cards import CardStore
from bot.store.claims import JobClaims, new_owner
from bot.store.db import Store
from bot.store.intake import IntakeStore
from bot.store.jobs import JobStore
from bot.store.mappings import MappingStore
from bot.store.oncall import OnCallStore

log = structlog.get_logger(__name__)

# A worker process pauses this long after each commit: the web process's job inserts (urgent,
# retried finely) then find the database free instead of racing an unbroken run of writes.
WORKER_COMMIT_PAUSE_S = 0.0005


def slack_web_client(settings: Settings) -> SlackWeb:
    """The Web API client: honours SLACK_API_URL, keeps its connections alive, retries 429s,
    5xx and connection errors (``bot.slack_web``)."""
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    return SlackWeb(token, settings.slack.api_url)


@dataclass
class Services:
    """Everything the Slack app, the web server and the CLI act through."""

    settings: Settings
    store: Store
    mappings: MappingStore
    jobs: JobStore
    clients: dict[Platform, PlatformClient]
    slack: SlackWeb
    identity: IdentityResolver
    policy: Policy
    access: Access
    core: Core
    actions: ActionService
    runner: JobRunner
    reporter: Reporter
    handoff: HandoffService
    workers: Workers
    oncall: OnCallWatcher
    intake: IntakeStore
    poster: Poster
    reconciler: Reconciler
    undo_sweeper: UndoSweeper
    started_at: float = field(default_factory=time.monotonic)
    # Closed last: the Slack client when this process made it, and what the app added (Bolt's pool).
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    async def close(self) -> None:
        await self.access.groups.stop()
        await self.oncall.stop()
        await self.poster.stop()
        await self.reconciler.stop()
        await self.undo_sweeper.stop()
        await self.workers.stop(self.settings.triage_shutdown_timeout)
        for client in self.clients.values():
            await client.aclose()
        await self.store.close()
        for close in reversed(self.closers):
            await close()


async def build_services(
    settings: Settings,
    *,
    slack: SlackWeb | None = None,
    clients: Mapping[Platform, PlatformClient] | None = None,
    policy: Policy | None = None,
    schedule_sources: Mapping[str, ScheduleSource] | None = None,
    oncall: OnCallConfig | None = None,
    role: str = "all",
) -> Services:
    """Open the store, build the clients and services; the workers are created but not started.

    ``role="worker"`` (a process that only runs and reports jobs) skips loading the policy's
    user groups: it authorises nothing.
    """
    from bot.store import open_store

    policy = policy or load_policy(settings.triage_policy)
    sources = dict(schedule_sources) if schedule_sources is not None else build_sources(settings)
    oncall = oncall or load_oncall(settings.triage_oncall, sources=list(sources))
    store = await open_store(settings.triage_db)
    if role == "worker":
        store.yield_after_commit = WORKER_COMMIT_PAUSE_S
    mappings = MappingStore(store)
    jobs = JobStore(store)
    # The tenant's Xpanse rate limit is for every replica and process together: kept by the store.
    limiters: dict[Platform, Limiter] = {}
    if settings.xpanse is not None:
        limiters[Platform.XPANSE] = SharedBudget(store, "xpanse", rate=settings.xpanse.rate_limit)
    platform_clients = dict(clients) if clients is not None else build_clients(settings, limiters=limiters)
    closers: list[Callable[[], Awaitable[None]]] = []
    if slack is None:
        # One pool of keep-alive connections for every Web API call of this process.
        slack = slack_web_client(settings)
        closers.append(slack.aclose)
    identity = IdentityResolver(mappings=mappings, clients=platform_clients, slack=slack)
    groups = GroupDirectory(slack, policy)
    if role != "worker":
        try:
            await groups.load()  # before serving, so no request waits on Slack to be authorised
        except BaseException:
            for close in closers:
                await close()
            await store.close()
            raise
        groups.start()
    access = Access(policy, groups)

    actions = ActionService(
        clients=platform_clients,
        jobs=jobs,
        resolve_identity=identity.resolve,
        default_space=settings.kibana_space,
    )
    runner = JobRunner(
        clients=platform_clients,
        jobs=jobs,
        resolve_identity=identity.resolve,
        check_assignee=identity.assignee_problem,
    )
    oncall_store = OnCallStore(store)
    handoff = HandoffService(actions, runner, oncall_store)
    cards = CardStore(store)
    reporter = Reporter(slack=slack, runner=runner, identity=identity, jobs=jobs, cards=cards)
    reporter.undo_seconds = settings.triage_undo_seconds
    workers = Workers(
        actions,
        runner,
        report=reporter.report,
        count=settings.triage_workers,
        runners={Verb.HANDOFF.value: handoff.run},
        claims=JobClaims(store, owner=new_owner(), lease_s=settings.triage_worker_lease),
        poll_interval=settings.triage_worker_poll,
        settle=settings.triage_worker_settle,
    )
    intake = IntakeStore(store)
    poster = Poster(
        intake,
        slack,
        IntakeCards(reporter),
        digest_after=settings.triage_digest_after,
        interval=settings.triage_post_interval,
        cards=cards,
    )
    core = Core(access=access, actions=actions, runner=runner, handoff=handoff, identity=identity, jobs=jobs)
    watcher = OnCallWatcher(
        config=oncall,
        sources=sources,
        core=core,
        store=oncall_store,
        jobs=jobs,
        identity=identity,
        notify=lambda notice: post_notice(slack, notice),
    )
    core.oncall = watcher
    reconciler = Reconciler(
        cards,
        runner.fetch,
        slack,
        TrueCards(reporter),
        window_s=settings.triage_reconcile_window,
        interval_s=settings.triage_reconcile_interval,
        remind_after_s=settings.triage_remind_after,
        remind_severity=settings.triage_remind_severity,
        oncall=oncall_lookup(watcher),
    )
    log.info(
        "services_ready",
        platforms=[p.value for p in platform_clients],
        store=settings.triage_db,
        policy=policy.describe(),
    )
    return Services(
        settings=settings,
        store=store,
        mappings=mappings,
        jobs=jobs,
        clients=platform_clients,
        slack=slack,
        identity=identity,
        policy=policy,
        access=access,
        core=core,
        actions=actions,
        runner=runner,
        reporter=reporter,
        handoff=handoff,
        workers=workers,
        oncall=watcher,
        intake=intake,
        poster=poster,
        reconciler=reconciler,
        undo_sweeper=UndoSweeper(reporter, jobs),
        closers=closers,
    )
