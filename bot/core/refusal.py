"""Refusing a whole job before any platform write, when its assignee cannot take work.

The worker asks ``check`` (``IdentityResolver.assignee_problem``: a deactivated Slack
account, a bot or app user, a user Slack does not know) about the job's assignee before
the first write. A refusal settles every item with the one reason, keeps it in the job
(``params.refused``, which the reporter shows instead of per-item results) and adds a
``refused`` line to the ledger; nothing is sent to any platform.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import structlog

from bot.models import ItemResult, Job, JobItem, Outcome, Verb
from bot.store.jobs import JobStore

log = structlog.get_logger(__name__)

# (team id, Slack user id) -> why that user cannot be given work (a sentence naming them), or None.
AssigneeCheck = Callable[[str, str], Awaitable[str | None]]

# What a refused job's message starts with, per verb that names an assignee.
REFUSAL_HEAD = {Verb.ASSIGN: "Not assigned", Verb.HANDOFF: "Not handed off"}


async def refusal(check: AssigneeCheck | None, job: Job) -> str | None:
    """Why the job's assignee cannot be given its items ("Not assigned: <@U1>'s Slack account
    is deactivated"), or None (also for verbs that name no assignee, or no ``check``)."""
    head = REFUSAL_HEAD.get(job.verb)
    if head is None or check is None or not job.params.assignee:
        return None
    problem = await check(job.team_id, job.params.assignee)
    return f"{head}: {problem}" if problem else None


async def refuse(jobs: JobStore, job: Job, items: Sequence[JobItem], reason: str) -> None:
    """Settle every item with the one refusal, keep it in the job and record it in the ledger."""
    job.params.refused = reason
    await jobs.update_params(job.id, job.params)
    await jobs.record_results(
        job, [(i.seq, ItemResult(target=i.target, outcome=Outcome.FAILED, detail=reason)) for i in items]
    )
    await jobs.record(
        team_id=job.team_id, actor_id=job.actor_id, verb=job.verb.value, outcome="refused", job_id=job.id, detail=reason
    )
    log.warning("job_refused", job_id=job.id, verb=job.verb.value, assignee=job.params.assignee, reason=reason)
