"""The read verbs: what the door answers from the store and the platforms without a job.

``history`` reads only the ledger, so it is answered in the acknowledgement;
``whoami`` and ``mine`` ask the platforms and are answered after it.
"""

from __future__ import annotations

from bot.core import answers as a
from bot.core.identity import IdentityResolver
from bot.core.runner import JobRunner
from bot.models import Target
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
