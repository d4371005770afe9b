"""Workers that find queued jobs, claim them, run them and report them; resume and graceful stop.

Jobs reach a pool two ways: ``ActionService.enqueue`` in the same process (the ``all``
role: tests, the shell, one-process deployments) and, with ``claims``, by polling the
store every ``poll_interval`` seconds or at once on ``wake`` (the ``worker`` role, woken
by the web process's signal). Either way a job runs only after its claim in the store
succeeded, so two pools (two processes, two replicas) never run one job.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable

import structlog

from bot.core.runner import JobRunner
from bot.core.service import ActionService
from bot.metrics import JOB_OLDEST_AGE, JOB_QUEUE_DEPTH
from bot.models import IDEMPOTENT_VERBS, Job, JobState
from bot.store.claims import JobClaims

log = structlog.get_logger(__name__)

Reporter = Callable[[Job], Awaitable[bool]]

# An idle pool woken by a stored job waits at most this many settle windows before it claims.
SETTLE_ROUNDS = 10


class Workers:
    """A fixed pool of asyncio tasks draining ``service.queue``.

    Each job is executed, then reported; a job is marked reported only after
    the reporter returned, so a crash between the two re-reports on restart
    instead of losing the message.
    """

    def __init__(
        self,
        service: ActionService,
        runner: JobRunner,
        *,
        report: Reporter,
        count: int = 4,
        runners: dict[str, Callable[[Job], Awaitable[Job | None]]] | None = None,
        claims: JobClaims | None = None,
        poll_interval: float = 0.05,
        settle: float = 0.0,
    ) -> None:
        self.service = service
        self.runner = runner
        self.report = report
        self.count = count
        # Verbs with their own runner (e.g. handoff); the rest go through service.run.
        self.runners = runners or {}
        self.claims = claims
        self.poll_interval = poll_interval
        self.settle = settle  # see _settle
        self._tasks: list[asyncio.Task[None]] = []
        self._pending: set[str] = set()  # in service.queue, not yet taken
        self._busy: set[str] = set()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        # Called each time the last running job of the pool finishes (the worker process gives
        # memory back to the system then).
        self.on_idle: Callable[[], None] | None = None
        self.accepting = True
        service.dispatch = self.enqueue

    def enqueue(self, job_id: str) -> None:
        """Queue ``job_id`` for this pool (once: a job already waiting is not queued again)."""
        if job_id not in self._pending:
            self._pending.add(job_id)
            self.service.queue.put_nowait(job_id)

    def wake(self) -> None:
        """Look in the store now instead of at the next poll (the web process stored a job)."""
        self._wake.set()

    @property
    def running(self) -> bool:
        return bool(self._tasks) and all(not t.done() for t in self._tasks)

    @property
    def idle(self) -> bool:
        """No job is running in this pool right now."""
        return not self._busy

    async def start(self) -> None:
        """Re-queue unfinished jobs from the store, then start the pool (and its store poller)."""
        if self.claims is not None:
            freed = await self.claims.free_orphans()
            if freed:
                log.info("claims_freed", count=freed)
        resumed = 0
        for job in await self.service.jobs.unfinished():
            self.enqueue(job.id)
            resumed += 1
        if resumed:
            log.info("jobs_resumed", count=resumed)
        self.accepting = True
        self._tasks = [asyncio.create_task(self._loop(n), name=f"worker-{n}") for n in range(self.count)]
        if self.claims is not None:
            self._tasks.append(asyncio.create_task(self._poll(self.claims), name="worker-poll"))
            self._tasks.append(asyncio.create_task(self._renew(self.claims), name="worker-lease"))

    async def _poll(self, claims: JobClaims) -> None:
        """Queue the store's claimable jobs, every ``poll_interval`` s or at once when woken."""
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), self.poll_interval)
            except TimeoutError:
                pass
            woken = self._wake.is_set()
            self._wake.clear()
            free = self.count - len(self._busy) - len(self._pending)
            if not self.accepting or free <= 0:
                continue
            if woken and not self._busy:
                await self._settle()
            try:
                found = await claims.claim_next(limit=free + len(self._pending))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("job_poll_failed")
                continue
            for job_id in found:
                if job_id not in self._busy:
                    self.enqueue(job_id)

    async def _settle(self) -> None:
        """Wait until the web process has stored nothing new for ``settle`` s, or ``SETTLE_ROUNDS``
        times that has passed.

        A burst of requests (a channel working through a wave of alerts) is acknowledged while
        the pool waits, so the jobs' own work (platform calls, thread replies, card updates, and
        the store writes that contend for the same database) does not compete with the
        acknowledgements for the machine. Only an idle pool waits: one that is already running
        jobs takes the next as soon as a slot is free, so a steady stream keeps its throughput.
        """
        if self.settle <= 0:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settle * SETTLE_ROUNDS
        while (left := deadline - loop.time()) > 0:
            try:
                await asyncio.wait_for(self._wake.wait(), min(self.settle, left))
            except TimeoutError:
                return
            self._wake.clear()

    async def _renew(self, claims: JobClaims) -> None:
        """Keep this pool's leases alive while it holds any (a third of the lease per renewal)."""
        while True:
            await asyncio.sleep(claims.lease_s / 3)
            try:
                await claims.renew()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("job_lease_renew_failed")

    async def _loop(self, n: int) -> None:
        queue = self.service.queue
        while True:
            job_id = await queue.get()
            self._pending.discard(job_id)
            if not self.accepting or job_id in self._busy:
                # Stopping: leave it queued in the store; the next start resumes it. Already
                # running on another worker (queued twice, e.g. resumed and confirmed): that
                # worker finishes it, a second run would only race it.
                queue.task_done()
                continue
            self._busy.add(job_id)
            self._idle.clear()
            try:
                # Another pool holds it: that pool runs and reports it.
                if self.claims is None or await self.claims.claim(job_id):
                    await self.process(job_id)
                    if self.claims is not None:
                        await self.claims.release(job_id)
            except asyncio.CancelledError:
                raise
            except Exception:
                ref = uuid.uuid4().hex[:8]
                # The claim stays with this pool, whose next poll takes the job up again (and
                # resumes it as after a restart); without a poller, at the pool's next start.
                log.exception("job_crashed", job_id=job_id, ref=ref)
            finally:
                self._busy.discard(job_id)
                queue.task_done()
                if not self._busy:
                    self._idle.set()
                    if self.on_idle is not None:
                        self.on_idle()

    async def process(self, job_id: str) -> Job | None:
        """Run one job to a terminal state (unless it was already) and report it once."""
        job = await self.service.jobs.get(job_id)
        if job is None:
            return None
        if job.state in (JobState.QUEUED, JobState.RUNNING):
            runner = self.runners.get(job.verb)
            job = await runner(job) if runner else await self.runner.run(job.id, read=job)
            if job is not None:
                # The one line per job at INFO is written here, where the job ran, and not on the
                # acknowledgement path: a formatted, redacted line costs the web process ~0.1 ms.
                log.info(
                    "job_finished",
                    job_id=job.id,
                    verb=job.verb.value,
                    state=job.state.value,
                    source=job.source,
                    since_stored_s=round(time.time() - job.created_at, 3),
                )
        if job is not None and job.reported_at is None and job.state.reportable:
            # Only one worker posts a report, even if two both finished the job.
            if self.claims is None or await self.claims.claim_report(job.id):
                if await self.report(job):
                    await self.service.jobs.mark_reported(job.id, job.state)
        return job

    async def update_metrics(self) -> None:
        """The queue gauges, read from the store when ``/metrics`` is scraped (not after each job:
        that was a read per job, and a worker process exports no metrics)."""
        depth, oldest = await self.service.jobs.queue_stats()
        JOB_QUEUE_DEPTH.set(depth)
        JOB_OLDEST_AGE.set(time.time() - oldest if oldest else 0)

    async def drain(self, timeout: float = 10.0) -> bool:
        """Wait until the queue is empty and no job runs; False on timeout (for tests and shell)."""
        try:
            await asyncio.wait_for(self.service.queue.join(), timeout)
            return True
        except TimeoutError:
            return False

    async def stop(self, timeout: float = 20.0) -> None:
        """Stop taking work, let running jobs finish for up to ``timeout`` s, then park the rest.

        Parked items stay ``running``/``pending`` in the store and resume on the next start.
        """
        self.accepting = False
        parked: list[str] = []
        if self._busy:
            try:
                await asyncio.wait_for(self._idle.wait(), timeout)
            except TimeoutError:
                parked = sorted(self._busy)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        for job_id in parked:
            await self._park(job_id)
        if self.claims is not None:
            await self.claims.release_all()
            self.claims.retire()

    async def _park(self, job_id: str) -> None:
        """Leave an interrupted job resumable: idempotent items in flight go back to pending.

        A comment that was on the wire stays RUNNING: on the next start it is reported as
        uncertain rather than sent again.
        """
        job = await self.service.jobs.get(job_id)
        if job is None:
            return
        count = 0
        if job.verb in IDEMPOTENT_VERBS:
            count = await self.service.jobs.park(job_id, detail="parked at shutdown; resumes on restart")
        log.warning("shutdown_parked_job", job_id=job_id, verb=job.verb, items=count)
