"""The benchmark's world: its settings, the sandbox tenants it runs, and Slack-shaped requests.

The tenants are ``bot.sandbox``'s (Datadog, Kibana, Elasticsearch, Xpanse, the Slack
Web API), the same ones ``triage-bot shell`` runs; they have no contract check (the
tests keep theirs), so that checking does not eat the CPU being measured, and they
take a configurable latency. The requests are built by ``bot.sandbox.payloads``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.sandbox import payloads
from bot.sandbox.datadog import DatadogSandbox
from bot.sandbox.elasticsearch import ElasticsearchSandbox
from bot.sandbox.kibana import KibanaSandbox
from bot.sandbox.server import SandboxServer
from bot.sandbox.slack import SlackSandbox
from bot.sandbox.xpanse import XpanseSandbox

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results.json"
SIGNING_SECRET = "bench-signing-secret-8f742231b10e8888"
TEAM, CHANNEL = "T111", "C111"
ALICE, BOB, LOADER = "U0ALICE", "U0BOB", "U0LOAD"
DD_IDS = {
    ALICE: "11111111-1111-4111-8111-111111111111",
    BOB: "22222222-2222-4222-8222-222222222222",
    LOADER: "33333333-3333-4333-8333-333333333333",
}
KB_IDS = {
    ALICE: "u_alice0000000000000000000000000000000000000_0",
    BOB: "u_bob000000000000000000000000000000000000000_0",
    LOADER: "u_load00000000000000000000000000000000000000_0",
}
EMAILS = {ALICE: "alice@example.com", BOB: "bob@example.com", LOADER: "load@example.com"}
NAMES = {ALICE: ("Alice", "Analyst"), BOB: ("Bob", "Builder"), LOADER: ("Lou", "Load")}
SPACES = ("default", "secops")
DATADOG_CHUNK = 100  # findings per assignment request (the API's limit)
XPANSE_PAGE = 100  # incidents per get_incidents answer (the API's limit)
CLK_TCK = os.sysconf("SC_CLK_TCK")

# The benchmark targets.
ACK_RATIO_MAX = 1.0  # bot p99 / the bare app's (Bolt defaults) p99, per row
ACK_P50_X1_RATIO_MAX = 0.3  # bot p50 / bare p50 at one sender
MODAL_OPEN_MAX_MS = 3000.0  # views.open must use the trigger within Slack's 3 s
ACK_P99_MAX_MS = 100.0
HANDOFF_RATIO_MAX = 1.2
# Section 5: time until every storm alert is in Slack, over what Slack's pace allows for the messages needed.
STORM_RATIO_MAX = 1.25
RSS_MAX_MB = 100.0
STARTUP_MAX_S = 1.5
# Sections 6-8 (bench.replicas): jobs/s with 3 worker replicas over 1, at least this.
REPLICA_SPEEDUP_MIN = 2.0


@dataclass
class Config:
    """How much to run; the defaults are the full benchmark, ``quick()`` the smoke run."""

    ack_requests: int = 300  # measured requests per app and kind at 1 sender
    # ... and at 10 or more: a p99 of 300 is the 3rd-worst request, decided by one stall of the
    # shared host; of 1200 it is the 12th-worst.
    ack_requests_loaded: int = 1200
    ack_levels: tuple[int, ...] = (1, 10, 50)
    ack_rounds: int = 4  # bot and bare alternate this many times per level
    call_sizes: tuple[int, ...] = (1, 100, 101, 250)
    handoff: tuple[int, int, int] = (400, 400, 200)  # Datadog, Kibana, Xpanse items
    latency_s: float = 0.05
    xpanse_rate: float = 5.0
    startup_runs: int = 3
    job_timeout_s: float = 180.0
    storm_alerts: int = 1000  # section 5: webhook alerts at once for one channel
    replica_jobs: int = 300  # section 7: single-item jobs per row
    replica_workers: tuple[int, ...] = (1, 3)  # section 7: worker replicas per row
    postgres_ack_kinds: tuple[str, ...] = ("command", "button")  # section 6 (a modal click stores nothing)

    def ack_count(self, level: int) -> int:
        """Measured ack requests per app and kind at ``level`` concurrent senders."""
        return self.ack_requests if level <= 1 else self.ack_requests_loaded

    @classmethod
    def quick(cls) -> Config:
        return cls(
            ack_requests=12,
            ack_requests_loaded=12,
            ack_levels=(4,),
            ack_rounds=2,
            call_sizes=(1, 3),
            handoff=(4, 4, 3),
            latency_s=0.01,
            xpanse_rate=20.0,
            startup_runs=1,
            job_timeout_s=30.0,
            storm_alerts=120,
            replica_jobs=16,
            replica_workers=(1, 2),
            postgres_ack_kinds=("command",),
        )


SLACK_TOKEN = "xoxb-bench-token"
DD_API_KEY, DD_APP_KEY = "dd-api-key-for-bench", "dd-app-key-for-bench"
KIBANA_KEY, ES_KEY = "a2liYW5hLWJlbmNoLWtleQ==", "ZXMtYmVuY2gta2V5"
XPANSE_KEY_ID, XPANSE_KEY = "17", "xpanse-standard-key-for-bench"


# ---- the tenants -------------------------------------------------------------------------------


@dataclass
class Tenants:
    """Every sandbox tenant plus the sandbox Slack Web API, running in this process."""

    slack: SlackSandbox = field(default_factory=lambda: SlackSandbox(token=SLACK_TOKEN))
    dd: DatadogSandbox = field(default_factory=lambda: DatadogSandbox(api_key=DD_API_KEY, app_key=DD_APP_KEY))
    kibana: KibanaSandbox = field(default_factory=lambda: KibanaSandbox(api_key=KIBANA_KEY))
    es: ElasticsearchSandbox = field(default_factory=lambda: ElasticsearchSandbox(api_key=ES_KEY))
    xpanse: XpanseSandbox = field(default_factory=lambda: XpanseSandbox(keys={XPANSE_KEY_ID: ("standard", XPANSE_KEY)}))

    @property
    def servers(self) -> tuple[SandboxServer, ...]:
        return (self.slack, self.dd, self.kibana, self.es, self.xpanse)

    async def start(self) -> Tenants:
        for server in self.servers:
            await server.start()
        for user in (ALICE, BOB, LOADER):
            first, last = NAMES[user]
            self.slack.add_user(user, email=EMAILS[user], real_name=f"{first} {last}")
            self.dd.add_user(DD_IDS[user], EMAILS[user], name=f"{first} {last}")
            self.es.add_profile(KB_IDS[user], email=EMAILS[user], username=first.lower())
            self.xpanse.add_user(EMAILS[user], first, last)
        return self

    async def stop(self) -> None:
        for server in self.servers:
            await server.stop()

    def set_latency(self, seconds: float) -> None:
        for server in (self.dd, self.kibana, self.xpanse):
            server.latency = seconds

    def violations(self) -> list[str]:
        """Requests a vendor would refuse as malformed (the tenants note what they can tell)."""
        return [v for server in self.servers for v in server.violations]

    def bot_env(self, *, db: Path | str, xpanse_rate: float) -> dict[str, str]:
        """The bot's whole configuration, as environment variables aimed at the tenants."""
        base = {k: v for k in ("PATH", "HOME", "LANG", "LC_ALL", "TZ") if (v := os.environ.get(k))}
        return base | {
            "PYTHONPATH": str(REPO),
            "SLACK_BOT_TOKEN": self.slack.token,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": self.slack.api_url,
            "DD_API_URL": self.dd.url,
            "DD_API_KEY": self.dd.api_key,
            "DD_APP_KEY": self.dd.app_key,
            "KIBANA_URL": self.kibana.url,
            "KIBANA_API_KEY": self.kibana.api_key,
            "KIBANA_SPACES": ",".join(SPACES),
            "ELASTICSEARCH_URL": self.es.url,
            "ELASTICSEARCH_API_KEY": self.es.api_key,
            "XPANSE_API_URL": self.xpanse.url,
            "XPANSE_API_KEY": XPANSE_KEY,
            "XPANSE_API_KEY_ID": XPANSE_KEY_ID,
            "XPANSE_RATE_LIMIT": str(xpanse_rate),
            "TRIAGE_DB": str(db),
            "TRIAGE_SHUTDOWN_TIMEOUT": "5",
            # The card reconciler's pass re-reads every live card from the tenants, which answer in
            # this (the timing) process: its pass over section 1's ~2,000 cards came due 300 s after
            # the start, in the middle of the Socket Mode rows, and timed the tenants, not the bot.
            "TRIAGE_RECONCILE_INTERVAL": "3600",
            "LOG_FORMAT": "json",
        }


# ---- Slack-shaped requests ---------------------------------------------------------------------


class Requests:
    """Real-shaped, unsigned Slack request bodies (the sender signs them)."""

    def __init__(self, slack: SlackSandbox) -> None:
        self.slack = slack
        self.n = 0

    def trigger(self) -> str:
        self.n += 1
        return f"bench.{self.n}.{time.monotonic_ns()}"

    def command(self, text: str, *, user: str, trigger_id: str | None = None) -> str:
        trigger = trigger_id or self.trigger()
        fields = payloads.slash_command(
            text=text,
            user_id=user,
            team_id=TEAM,
            channel_id=CHANNEL,
            response_url=self.slack.webhook_url(f"cmd{self.n}"),
            trigger_id=trigger,
        )
        return payloads.form_body(fields)

    def click(
        self, action_id: str, value: str, *, user: str, message: dict[str, Any], trigger_id: str | None = None
    ) -> str:
        trigger = trigger_id or self.trigger()
        body = payloads.block_actions(
            action=payloads.button(action_id, value, ts=f"{time.time():.6f}{self.n}"),
            user_id=user,
            team_id=TEAM,
            channel_id=CHANNEL,
            message=message,
            response_url=self.slack.webhook_url(f"btn{self.n}"),
            trigger_id=trigger,
        )
        return payloads.interactive_body(body)


def button_value(message: dict[str, Any], action_id: str) -> str:
    for block in message.get("blocks") or []:
        for element in block.get("elements", []) + ([block["accessory"]] if "accessory" in block else []):
            if element.get("action_id") == action_id:
                return str(element.get("value", ""))
    raise LookupError(f"no {action_id} button on message {message.get('ts')}")
