"""In-process workers that run queued jobs and report them, with resume and graceful stop."""

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

log = structlog.get_logger(__name__)

Reporter = Callable[[Job], Awaitable[bool]]


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
    ) -> None:
        self.service = service
        self.runner = runner
        self.report = report
        self.count = count
        # Verbs with their own runner (e.g. handoff); the rest go through service.run.
        self.runners = runners or {}
        self._tasks: list[asyncio.Task[None]] = []
        self._busy: set[str] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self.accepting = True

    @property
    def running(self) -> bool:
        return bool(self._tasks) and all(not t.done() for t in self._tasks)

    async def start(self) -> None:
        """Re-queue unfinished jobs from the store, then start the pool."""
        resumed = 0
        for job in await self.service.jobs.unfinished():
            self.service.queue.put_nowait(job.id)
            resumed += 1
        if resumed:
            log.info("jobs_resumed", count=resumed)
        self._tasks = [asyncio.create_task(self._loop(n), name=f"worker-{n}") for n in range(self.count)]

    async def _loop(self, n: int) -> None:
        queue = self.service.queue
        while True:
            job_id = await queue.get()
            if not self.accepting or job_id in self._busy:
                # Stopping: leave it queued in the store; the next start resumes it. Already
                # running on another worker (queued twice, e.g. resumed and confirmed): that
                # worker finishes it, a second run would only race it.
                queue.task_done()
                continue
            self._busy.add(job_id)
            self._idle.clear()
            try:
                await self.process(job_id)
            except asyncio.CancelledError:
                raise
            except Exception:
                ref = uuid.uuid4().hex[:8]
                log.exception("job_crashed", job_id=job_id, ref=ref)
            finally:
                self._busy.discard(job_id)
                queue.task_done()
                if not self._busy:
                    self._idle.set()

    async def process(self, job_id: str) -> Job | None:
        """Run one job to a terminal state (unless it was already) and report it once."""
        job = await self.service.jobs.get(job_id)
        if job is None:
            return None
        if job.state in (JobState.QUEUED, JobState.RUNNING):
            runner = self.runners.get(job.verb)
            job = await runner(job) if runner else await self.runner.run(job.id)
        if job is not None and job.reported_at is None and job.state is not JobState.QUEUED:
            if await self.report(job):
                await self.service.jobs.mark_reported(job.id)
        await self.update_metrics()
        return job

    async def update_metrics(self) -> None:
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
