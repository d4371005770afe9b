"""Run the real ``triage-bot serve`` as a child process against the fakes, for crash tests.

The fakes keep running in the test process on 127.0.0.1; the bot is started with
``python -m bot serve`` and an environment an operator would write, so SIGKILL and
SIGTERM hit the same code path as in production. ``BotProcess.harness`` returns a
``BotHarness`` aimed at the child's port, to send it signed Slack payloads.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.fakes.datadog import DatadogFake, make_datadog_config
from tests.fakes.kibana import ElasticsearchFake, KibanaFake, make_kibana_config
from tests.fakes.slack import SlackFake
from tests.fakes.xpanse import XpanseFake, make_xpanse_config
from tests.scenario.harness import SIGNING_SECRET, BotHarness, fake_settings

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A port nothing listens on right now (the child binds it moments later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bot_env(
    *,
    db: str,
    slack: SlackFake,
    datadog: DatadogFake | None = None,
    kibana: KibanaFake | None = None,
    es: ElasticsearchFake | None = None,
    xpanse: XpanseFake | None = None,
    **extra: str,
) -> dict[str, str]:
    """The environment variables that point a bot process at the fakes (names as in the README)."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
        "SLACK_BOT_TOKEN": slack.token,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.api_url,
        "TRIAGE_DB": db,
        "TRIAGE_RETRY_TIMEOUT": "3",
        "TRIAGE_RETRY_ATTEMPTS": "3",
        "TRIAGE_HTTP_TIMEOUT": "10",
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "info",
        "PYTHONUNBUFFERED": "1",
    }
    if datadog is not None:
        cfg = make_datadog_config(datadog)
        env |= {
            "DD_API_URL": datadog.url,
            "DD_API_KEY": cfg.api_key.get_secret_value(),
            "DD_APP_KEY": cfg.app_key.get_secret_value(),
        }
    if kibana is not None:
        kcfg = make_kibana_config(kibana, es)
        env |= {
            "KIBANA_URL": kibana.url,
            "KIBANA_API_KEY": kcfg.api_key.get_secret_value(),
            "KIBANA_SPACES": "default,secops",
        }
        if es is not None and kcfg.es_api_key is not None:
            env |= {"ELASTICSEARCH_URL": es.url, "ELASTICSEARCH_API_KEY": kcfg.es_api_key.get_secret_value()}
    if xpanse is not None:
        xcfg = make_xpanse_config(xpanse)
        env |= {
            "XPANSE_API_URL": xpanse.url,
            "XPANSE_API_KEY": xcfg.api_key.get_secret_value(),
            "XPANSE_API_KEY_ID": xcfg.api_key_id,
        }
    env |= extra
    return env


class BotProcess:
    """One ``python -m bot serve`` child; ``start`` waits (bounded) until /healthz answers."""

    def __init__(self, env: dict[str, str], *, slack: SlackFake, log_dir: Path, name: str) -> None:
        self.env = env
        self.slack = slack
        self.port = free_port()
        self.log_path = log_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self, timeout: float = 30.0) -> BotProcess:
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(  # noqa: ASYNC220 - started once, waited on with bounded polls
            [sys.executable, "-m", "bot", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=REPO,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=1) as http:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise AssertionError(f"the bot exited with {self.proc.returncode}:\n{self.log()}")
                try:
                    if (await http.get(f"http://127.0.0.1:{self.port}/healthz")).status_code == 200:
                        return self
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
        self.kill()
        raise AssertionError(f"the bot did not answer /healthz within {timeout} s:\n{self.log()}")

    def harness(self, **settings: Any) -> BotHarness:
        """A harness (not started: no in-process bot) that sends signed payloads to the child."""
        base = fake_settings(
            db=self.env["TRIAGE_DB"], slack=self.slack, datadog=None, kibana=None, es=None, xpanse=None, **settings
        )
        harness = BotHarness(base, self.slack)
        harness.port = self.port
        return harness

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:] if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL: no cleanup at all, as when the host dies."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def terminate(self) -> None:
        """SIGTERM: the graceful stop an orchestrator asks for."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)

    async def wait_exit(self, timeout: float) -> int | None:
        """The exit status once the child ended, or None if it still runs after ``timeout`` s."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return self.proc.returncode
            await asyncio.sleep(0.05)
        return None


async def wait_until(check: Any, *, timeout: float, what: str) -> None:
    """Poll ``check()`` (bounded) until it is true; fail with ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
