"""The read verbs: what the door answers from the store and the platforms without a job.

``history`` reads only the ledger, so it is answered in the acknowledgement;
``whoami`` and ``mine`` ask the platforms and are answered after it.
"""

from __future__ import annotations

from bot.core import answers as a
from bot.core.identity import IdentityResolver
from bot.core.runner import JobRunner
from bot.models import ItemState, Platform, Target
from bot.rules import DEFAULT_KIBANA_SPACE
from bot.store.jobs import JobStore

HISTORY_LIMIT = 25


class Queries:
    """Answers the read verbs."""

    def __init__(self, *, jobs: JobStore, identity: IdentityResolver, runner: JobRunner) -> None:
        self.jobs = jobs
        self.identity = identity
        self.runner = runner

    async def history(self, target: Target) -> a.History:
        """The newest ledger lines about ``target``."""
        return a.History(target, await self.jobs.history(target, limit=HISTORY_LIMIT))

    async def whoami(self, team_id: str, user_id: str) -> a.Identities:
        """The user's platform identities, each checked against its platform."""
        statuses = await self.identity.whoami(team_id, user_id, verify=True)
        return a.Identities(user_id, statuses, list(self.runner.clients))

    async def mine(self, team_id: str, user_id: str) -> a.Holdings:
        """What the user holds on every platform (platform search merged with the ledger)."""
        return a.Holdings(user_id, await self.runner.holdings(team_id, user_id))

    async def home(self, team_id: str, user_id: str) -> a.HomeItems:
        """What ``mine`` answers, read back as item states (open ones only), plus the handoffs
        that wait on ``user_id`` (theirs, from them or to them)."""
        holdings = await self.runner.holdings(team_id, user_id)
        targets = [t for items in holdings.values() if not isinstance(items, str) for t in items]
        states, _ = await self.runner.fetch(targets) if targets else ({}, {})
        held: dict[Platform, list[ItemState] | str] = {}
        for platform, items in holdings.items():
            if isinstance(items, str):
                held[platform] = items
                continue
            seen: set[tuple[str, str]] = set()
            found: list[ItemState] = []
            for t in items:
                state = states.get(t.key)
                # The search names a Kibana alert with its space, the ledger as it was typed: one row.
                same = (t.space or DEFAULT_KIBANA_SPACE, t.id)
                if state is not None and state.is_open and same not in seen:
                    seen.add(same)
                    found.append(state)
            held[platform] = found
        handoffs = [
            job
            for job in await self.jobs.awaiting_confirm()
            if user_id in (job.actor_id, job.params.from_user, job.params.assignee)
        ]
        return a.HomeItems(user_id, held, handoffs)

    async def cards(self, targets: list[Target]) -> a.Cards:
        """The items' current states, for compact cards (a link unfurl)."""
        states, problems = await self.runner.fetch(targets)
        return a.Cards(states, problems)
