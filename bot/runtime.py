"""The composition root: settings in, every long-lived service out (and closed again)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import structlog
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.handoff import HandoffService
from bot.core.identity import IdentityResolver
from bot.core.policy import Policy, load_policy
from bot.core.runner import JobRunner
from bot.core.service import ActionRequest, ActionService
from bot.core.workers import Workers
from bot.models import Platform, Verb
from bot.platforms import build_clients
from bot.platforms.base import PlatformClient
from bot.settings import Settings
from bot.slack.reporter import Reporter
from bot.store.db import Store
from bot.store.jobs import JobStore
from bot.store.mappings import MappingStore

log = structlog.get_logger(__name__)

GROUPS_TTL_S = 300.0


def slack_web_client(settings: Settings) -> AsyncWebClient:
    """The Web API client: honours SLACK_API_URL and retries 429s, 5xx and connection errors."""
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    return AsyncWebClient(
        token=token,
        base_url=settings.slack.api_url,
        retry_handlers=[
            AsyncConnectionErrorRetryHandler(max_retry_count=2),
            AsyncRateLimitErrorRetryHandler(max_retry_count=5),
            AsyncServerErrorRetryHandler(max_retry_count=2),
        ],
    )


class GroupDirectory:
    """Which of the policy's user groups a Slack user is in (usergroups.users.list, cached)."""

    def __init__(self, slack: AsyncWebClient, policy: Policy) -> None:
        self.slack = slack
        self.groups = sorted(policy.admins.groups | {g for r in policy.verbs.values() for g in r.groups})
        self._members: dict[str, tuple[float, frozenset[str]]] = {}

    async def groups_of(self, user_id: str) -> frozenset[str]:
        found = set()
        for group in self.groups:
            cached = self._members.get(group)
            if cached is None or time.monotonic() - cached[0] > GROUPS_TTL_S:
                try:
                    resp = await self.slack.usergroups_users_list(usergroup=group)
                    members = frozenset(resp.get("users") or [])
                except SlackApiError as exc:
                    log.warning("usergroup_lookup_failed", group=group, error=str(exc.response.get("error")))
                    members = frozenset()
                cached = (time.monotonic(), members)
                self._members[group] = cached
            if user_id in cached[1]:
                found.add(group)
        return frozenset(found)


@dataclass
class Services:
    """Everything the Slack app, the web server and the CLI act through."""

    settings: Settings
    store: Store
    mappings: MappingStore
    jobs: JobStore
    clients: dict[Platform, PlatformClient]
    slack: AsyncWebClient
    identity: IdentityResolver
    policy: Policy
    groups: GroupDirectory
    actions: ActionService
    runner: JobRunner
    reporter: Reporter
    handoff: HandoffService
    workers: Workers
    started_at: float = field(default_factory=time.monotonic)

    async def is_admin(self, user_id: str) -> bool:
        groups = await self.groups.groups_of(user_id) if self.policy.admins.groups else frozenset()
        return self.policy.is_admin(actor_id=user_id, actor_groups=groups)

    async def authorize_verb(self, *, verb: str, actor_id: str, channel_id: str | None) -> None:
        """Apply the policy to one verb (``ForbiddenError`` when refused)."""
        groups = await self.groups.groups_of(actor_id) if self.policy.needs_groups(verb) else frozenset()
        self.policy.authorize(verb=verb, actor_id=actor_id, channel_id=channel_id, actor_groups=groups)

    async def close(self) -> None:
        await self.workers.stop(self.settings.triage_shutdown_timeout)
        for client in self.clients.values():
            await client.aclose()
        await self.store.close()


def policy_verb(request: ActionRequest) -> str:
    """The policy's name for a request: acting for someone else is its own, admin-only verb."""
    if request.verb is Verb.HANDOFF and request.params.from_user not in (None, request.actor_id):
        return "handoff_others"
    return request.verb.value


async def build_services(
    settings: Settings,
    *,
    slack: AsyncWebClient | None = None,
    clients: Mapping[Platform, PlatformClient] | None = None,
    policy: Policy | None = None,
) -> Services:
    """Open the store, build the clients and services; the workers are created but not started."""
    from bot.store import open_store

    policy = policy or load_policy(settings.triage_policy)
    store = await open_store(settings.triage_db)
    mappings = MappingStore(store)
    jobs = JobStore(store)
    platform_clients = dict(clients) if clients is not None else build_clients(settings)
    slack = slack or slack_web_client(settings)
    identity = IdentityResolver(mappings=mappings, clients=platform_clients, slack=slack)
    groups = GroupDirectory(slack, policy)

    async def authorize(request: ActionRequest, _verb: str) -> None:
        groups_of = (
            await groups.groups_of(request.actor_id) if policy.needs_groups(policy_verb(request)) else frozenset()
        )
        policy.authorize(
            verb=policy_verb(request),
            actor_id=request.actor_id,
            channel_id=request.channel_id,
            actor_groups=groups_of,
        )

    actions = ActionService(
        clients=platform_clients,
        jobs=jobs,
        resolve_identity=identity.resolve,
        authorize=authorize,
        default_space=settings.kibana_space,
    )
    runner = JobRunner(clients=platform_clients, jobs=jobs, resolve_identity=identity.resolve)
    handoff = HandoffService(actions, runner)
    reporter = Reporter(slack=slack, runner=runner, identity=identity, jobs=jobs)
    workers = Workers(
        actions,
        runner,
        report=reporter.report,
        count=settings.triage_workers,
        runners={Verb.HANDOFF.value: handoff.run},
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
        groups=groups,
        actions=actions,
        runner=runner,
        reporter=reporter,
        handoff=handoff,
        workers=workers,
    )
