"""``triage-bot serve``: the roles and the process model.

* ``web`` serves Slack (HTTP or Socket Mode), the webhooks and health; it authorises,
  stores each job and acknowledges. It runs no job: a worker finds them in the store.
* ``worker`` runs and reports jobs: it claims queued jobs from the store (polling every
  ``TRIAGE_WORKER_POLL`` s, and woken at once by its web process), never serves Slack.
* ``split`` (the default) is ``web`` in this process plus one ``worker`` child process,
  so the jobs' CPU never sits on the acknowledgement path. The child is woken through a
  pipe (one byte per stored job); the pipe closing tells it the parent died, and it exits
  at once, as the host dying would. It runs ``TRIAGE_WORKER_NICE`` lower than the web
  process. A child that dies is restarted (backing off up to 30 s) and ``/readyz`` fails
  until it runs again; SIGTERM stops both within the shutdown timeout.
* ``all`` is both in one process (the shell, the tests' harness, a small install).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import os
import signal
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import structlog

from bot.errors import ConfigError, TriageError
from bot.runtime import Services, build_services
from bot.settings import Settings

if TYPE_CHECKING:  # aiohttp is loaded only by a process that serves HTTP
    from aiohttp import web
    from slack_bolt.async_app import AsyncApp

log = structlog.get_logger("bot")

ROLES = ("split", "all", "web", "worker")
RESTART_MAX_S = 30.0


def _problems(settings: Settings, role: str) -> list[str]:
    problems = []
    if settings.slack_bot_token is None:
        problems.append("SLACK_BOT_TOKEN is required to serve")
    if role != "worker" and settings.slack_app_token is None and settings.slack_signing_secret is None:
        problems.append("SLACK_SIGNING_SECRET is required in HTTP mode (or set SLACK_APP_TOKEN for Socket Mode)")
    return problems


def _stop_event() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


class WorkerProcess:
    """The supervised ``serve --role worker`` child of a ``split`` web process."""

    def __init__(self, *, shutdown_timeout: float) -> None:
        self.shutdown_timeout = shutdown_timeout
        self.proc: asyncio.subprocess.Process | None = None
        self.restarts = 0
        self._wake_fd: int | None = None
        self._stopping = False
        self._watch: asyncio.Task[None] | None = None
        self._poke_due = False

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def start(self) -> None:
        """Spawn the child and watch it: restart it whenever it dies, until ``stop``."""
        await self._spawn()
        self._watch = asyncio.create_task(self._supervise(), name="worker-process")

    async def _spawn(self) -> None:
        read_fd, write_fd = os.pipe()
        os.set_blocking(write_fd, False)
        try:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bot",
                "serve",
                "--role",
                "worker",
                "--wake-fd",
                str(read_fd),
                pass_fds=(read_fd,),
            )
        finally:
            os.close(read_fd)
        if self._wake_fd is not None:
            os.close(self._wake_fd)
        self._wake_fd = write_fd
        log.info("worker_process_started", pid=self.proc.pid, restarts=self.restarts)

    async def _supervise(self) -> None:
        backoff = 1.0
        while True:
            assert self.proc is not None
            started = time.monotonic()
            code = await self.proc.wait()
            if self._stopping:
                return
            if time.monotonic() - started > 60:
                backoff = 1.0
            log.error("worker_process_exited", code=code, restart_in_s=backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, RESTART_MAX_S)
            self.restarts += 1
            await self._spawn()

    def poke(self, _job_id: str) -> None:
        """Wake the child: a job is stored. The byte is written once the loop's current turn is
        done, once for all the jobs stored in it (a burst of acks costs one write and one wake-up),
        and never blocks (a full pipe already means "look")."""
        if not self._poke_due:
            self._poke_due = True
            asyncio.get_running_loop().call_soon(self._write_poke)

    def _write_poke(self) -> None:
        self._poke_due = False
        if self._wake_fd is None:
            return
        with contextlib.suppress(BlockingIOError, BrokenPipeError):
            os.write(self._wake_fd, b"\0")

    async def stop(self) -> None:
        """SIGTERM the child and wait for it (its own shutdown timeout, plus a margin), else kill."""
        self._stopping = True
        if self._watch is not None:
            self._watch.cancel()
            await asyncio.gather(self._watch, return_exceptions=True)
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), self.shutdown_timeout + 5)
            except TimeoutError:
                log.error("worker_process_killed", pid=self.proc.pid)
                self.proc.kill()
                await self.proc.wait()
        if self._wake_fd is not None:
            os.close(self._wake_fd)
            self._wake_fd = None


async def serve(settings: Settings, *, host: str, port: int | None, role: str, wake_fd: int | None = None) -> int:
    """Run ``role`` until SIGTERM/SIGINT; ``ConfigError`` when the settings cannot serve it."""
    problems = _problems(settings, role)
    if problems:
        raise ConfigError(problems)
    _limit_malloc_arenas()
    if role == "worker":
        return await _worker(settings, host=host, port=port, wake_fd=wake_fd)
    return await _web(settings, host=host, port=port if port is not None else settings.port, role=role)


async def _authorize(bolt: AsyncApp, services: Services, api_url: str) -> None:
    """Bolt's ``auth.test``, before serving; if Slack refuses the token or cannot be reached, the
    services are closed and the reason is one line (``ConfigError``, ``TriageError``), not a trace."""
    import aiohttp
    from slack_sdk.errors import SlackApiError

    from bot.app import prime_authorization

    try:
        await prime_authorization(bolt)
    except SlackApiError as exc:
        await services.close()
        error = exc.response.get("error") if exc.response is not None else None
        raise ConfigError([f"Slack refused SLACK_BOT_TOKEN at auth.test ({error or exc}); check the token"]) from None
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        await services.close()
        raise TriageError(
            f"cannot reach Slack at {api_url} for auth.test ({type(exc).__name__}: {exc}); "
            "check the network or SLACK_API_URL"
        ) from None


async def _web(settings: Settings, *, host: str, port: int, role: str) -> int:
    from aiohttp import web

    from bot.app import build_app, hot_routes
    from bot.web import build_web_app

    started = time.monotonic()
    services = await build_services(settings, role=role)
    bolt = build_app(settings, services)
    await _authorize(bolt, services, settings.slack_api_url)  # so no ack waits on auth.test
    child: WorkerProcess | None = None
    job_runners: Callable[[], dict[str, bool]] | None = None
    if role == "all":
        await services.workers.start()
        await services.poster.start()  # the alert intake's per-channel posters, beside the workers
        services.reconciler.start()  # keeps live cards true and sends reminders (one replica: a lease)
        services.undo_sweeper.start()  # Undo buttons come off their messages where the jobs run
    elif role == "split":
        child = WorkerProcess(shutdown_timeout=settings.triage_shutdown_timeout)
        await child.start()
        services.actions.dispatch = child.poke
        job_runners = lambda: {"worker_process": child.alive}  # noqa: E731
    else:  # web: workers elsewhere find the jobs in the store
        services.actions.dispatch = lambda _job_id: None
        job_runners = dict
    # The on-call watcher runs beside the web side; its handoffs are stored through the door
    # like any request, and the store's unique key keeps them single across replicas.
    services.oncall.start()
    socket_handler = None
    if settings.slack_app_token is not None:
        from bot.slack.socket_mode import HotSocketModeHandler

        socket_handler = HotSocketModeHandler(
            bolt, hot_routes(bolt), app_token=settings.slack_app_token.get_secret_value(), web_client=bolt.client
        )
        await socket_handler.connect_async()  # type: ignore[no-untyped-call]

    async def socket_connected() -> bool:
        return socket_handler is not None and await socket_handler.client.is_connected()

    web_app = build_web_app(
        services,
        bolt=None if socket_handler else bolt,
        socket_connected=socket_connected if socket_handler else None,
        job_runners=job_runners,
    )
    runner = web.AppRunner(web_app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    _freeze_startup_heap()
    log.info(
        "ready",
        mode="socket" if socket_handler else "http",
        role=role,
        port=port,
        startup_s=round(time.monotonic() - started, 3),
    )
    await _stop_event().wait()
    log.info("stopping", timeout_s=settings.triage_shutdown_timeout)
    # Stop taking new work first, then let running jobs finish or park.
    services.workers.accepting = False
    stopping_child = asyncio.create_task(child.stop()) if child is not None else None
    if socket_handler is not None:
        await socket_handler.close_async()  # type: ignore[no-untyped-call]
    await runner.cleanup()
    await services.close()
    if stopping_child is not None:
        await stopping_child
    log.info("stopped")
    return 0


# glibc's mallopt parameter for the number of malloc arenas.
_M_ARENA_MAX = -8
MALLOC_ARENAS = 2


def _limit_malloc_arenas() -> None:
    """Let every thread of the process share ``MALLOC_ARENAS`` malloc arenas (glibc only).

    Each database driver connection runs in a thread of its own, and glibc gives each thread
    its own arena by default: memory freed in one is not reused by another, and the process's
    resident size grows with the threads. An operator's ``MALLOC_ARENA_MAX`` wins. No effect
    (and no error) on other C libraries.
    """
    if os.environ.get("MALLOC_ARENA_MAX") or not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.mallopt(_M_ARENA_MAX, MALLOC_ARENAS)
    except (OSError, AttributeError):
        return


class HeapTrimmer:
    """Give the C heap's free pages back to the system a moment after the job pool goes idle (glibc).

    A large job (a 1,000-item handoff) leaves megabytes of freed blocks that glibc keeps for
    reuse, so the worker's resident size stays at its peak; ``malloc_trim`` returns them. At most
    once per ``delay`` seconds, and only if the pool is still idle then. No-op on other C libraries.
    """

    def __init__(self, idle: Callable[[], bool], *, delay: float = 1.0) -> None:
        self.idle, self.delay = idle, delay
        self._due = False
        try:
            self._trim: Callable[[int], int] | None = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            self._trim = None

    def soon(self) -> None:
        if self._trim is not None and not self._due:
            self._due = True
            asyncio.get_running_loop().call_later(self.delay, self._run)

    def _run(self) -> None:
        self._due = False
        if self._trim is not None and self.idle():
            self._trim(0)


def _freeze_startup_heap() -> None:
    """Keep what startup built (modules, settings, clients, the Bolt app: it lives as long as the
    process) out of the garbage collector's full collections.

    A full collection scans every tracked object; over the startup heap that took tens of
    milliseconds, a pause every acknowledgement in flight waited out. Frozen, a collection
    scans only what was allocated since. ``triage-bot serve`` starts with the collector off
    (two full collections while importing cost about 70 ms of start-up); it is on from here.
    """
    gc.collect()
    gc.freeze()
    gc.enable()


def _watch_parent(wake_fd: int, wake: Callable[[], None]) -> None:
    """Read wake-up bytes from the parent; EOF means the parent died: exit now, as with the host."""
    try:
        data = os.read(wake_fd, 4096)
    except BlockingIOError:
        return
    if not data:
        log.error("worker_parent_gone")
        os._exit(70)
    wake()


async def _worker(settings: Settings, *, host: str, port: int | None, wake_fd: int | None) -> int:
    started = time.monotonic()
    if wake_fd is not None and settings.triage_worker_nice:
        # The split child: the web process beside it gets the CPU first (acks before jobs).
        os.nice(settings.triage_worker_nice)
    services = await build_services(settings, role="worker")
    loop = asyncio.get_running_loop()
    if wake_fd is not None:
        os.set_blocking(wake_fd, False)
        loop.add_reader(wake_fd, _watch_parent, wake_fd, services.workers.wake)
    services.workers.on_idle = HeapTrimmer(lambda: services.workers.idle).soon
    await services.workers.start()
    await services.poster.start()  # the alert intake's per-channel posters run where the jobs run
    services.reconciler.start()  # live cards kept true, reminders sent, by one replica at a time
    services.undo_sweeper.start()
    runner = await _health(services, host=host, port=port) if port is not None else None
    _freeze_startup_heap()
    log.info("ready", role="worker", port=port, startup_s=round(time.monotonic() - started, 3))
    await _stop_event().wait()
    log.info("stopping", role="worker", timeout_s=settings.triage_shutdown_timeout)
    if runner is not None:
        await runner.cleanup()
    await services.close()
    if wake_fd is not None:
        loop.remove_reader(wake_fd)
    log.info("stopped", role="worker")
    return 0


async def _health(services: Services, *, host: str, port: int) -> web.AppRunner:
    """``/healthz`` and ``/readyz`` (store, worker pool, alert posters) for a standalone worker."""
    from aiohttp import web

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        checks = {
            "store": await _store_ok(services),
            "workers": services.workers.running,
            "poster": services.poster.running,
        }
        ready = all(checks.values())
        return web.json_response({"ready": ready, "checks": checks}, status=200 if ready else 503)

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


async def _store_ok(services: Services) -> bool:
    return await services.store.ping()


__all__ = ["ROLES", "WorkerProcess", "serve"]
