"""serve's process model: a web process with a supervised worker child, and separate web and worker roles."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from tests.fakes.slack import SlackFake
from tests.fakes.xpanse import XpanseFake
from tests.scenario.conftest import BOB
from tests.scenario.proc_bot import REPO, BotProcess, bot_env, wait_until


def children(pid: int) -> list[int]:
    """The child processes of ``pid`` (Linux)."""
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(p) for p in text.split()]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat").read_text() if Path(f"/proc/{pid}/stat").exists() else ""
    return " Z " not in stat  # an unreaped zombie has exited


async def test_split_restarts_a_dead_worker_child_and_sigterm_stops_both(
    tmp_path: Path, slack_fake: SlackFake, xpanse_fake: XpanseFake
) -> None:
    """/readyz names the worker process; a killed child fails it until restarted; SIGTERM ends both with 0."""
    env = bot_env(db=str(tmp_path / "triage.db"), slack=slack_fake, xpanse=xpanse_fake)
    bot = await BotProcess(env, slack=slack_fake, log_dir=tmp_path, name="split").start()
    try:
        assert bot.proc is not None
        url = f"http://127.0.0.1:{bot.port}/readyz"
        async with httpx.AsyncClient(timeout=2) as http:
            ready = (await http.get(url)).json()
            assert ready["checks"]["worker_process"] is True, ready
            [child] = children(bot.proc.pid)
            os.kill(child, signal.SIGKILL)
            for _ in range(100):  # the parent notices within moments; the restart waits 1 s
                down = await http.get(url)
                if down.status_code == 503:
                    break
                await asyncio.sleep(0.02)
            assert down.status_code == 503 and down.json()["checks"]["worker_process"] is False
            await wait_until(lambda: children(bot.proc.pid) not in ([], [child]), timeout=10, what="a new child")
            [restarted] = children(bot.proc.pid)
            assert (await http.get(url)).status_code == 200
        bot.terminate()
        assert await bot.wait_exit(15) == 0, bot.log()
        await wait_until(lambda: not alive(restarted), timeout=5, what="the worker child to exit")
        assert "worker_process_exited" in bot.log()
    finally:
        bot.kill()


async def test_web_and_worker_roles_in_separate_processes_run_a_job(
    tmp_path: Path, slack_fake: SlackFake, xpanse_fake: XpanseFake
) -> None:
    """--role web stores and acks; a separate --role worker finds the job in the store, runs and reports it."""
    slack_fake.add_user(BOB, email="bob@example.com", real_name="Bob Builder")
    xpanse_fake.add_user("bob@example.com", "Bob", "Builder")
    xpanse_fake.add_incident("4242")
    env = bot_env(db=str(tmp_path / "triage.db"), slack=slack_fake, xpanse=xpanse_fake, TRIAGE_ROLE="web")
    web = await BotProcess(env, slack=slack_fake, log_dir=tmp_path, name="web").start()
    with (tmp_path / "worker.log").open("wb") as log:
        worker = subprocess.Popen(  # noqa: ASYNC220 - one child, waited on with bounded polls
            [sys.executable, "-m", "bot", "serve", "--role", "worker"],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        async with httpx.AsyncClient(timeout=2) as http:
            ready = (await http.get(f"http://127.0.0.1:{web.port}/readyz")).json()
        assert "workers" not in ready["checks"] and "worker_process" not in ready["checks"], ready
        harness = web.harness()
        resp = await harness.command(f"assign xpanse:4242 to <@{BOB}|bob>")
        assert "On it" in resp.text, resp.text
        await harness.http.aclose()
        await wait_until(
            lambda: xpanse_fake.incidents["4242"].assigned_user_mail == "bob@example.com",
            timeout=20,
            what="the worker to apply the job",
        )
        await slack_fake.wait_for("chat.postMessage", timeout=10)
        worker.send_signal(signal.SIGTERM)
        # Within its own shutdown budget (TRIAGE_SHUTDOWN_TIMEOUT, 20 s) plus start-up slack.
        try:
            code = worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            raise AssertionError("the worker did not stop:\n" + (tmp_path / "worker.log").read_text()) from None
        assert code == 0, (tmp_path / "worker.log").read_text()
        web.terminate()
        assert await web.wait_exit(15) == 0
    finally:
        web.kill()
        if worker.poll() is None:
            worker.kill()
            worker.wait(timeout=10)
