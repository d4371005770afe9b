"""Built-in SANDBOX tenants: Datadog, Kibana (two spaces) + Elasticsearch, Xpanse and Slack.

These are the ONE implementation of each vendor's behaviour: ``triage-bot shell`` runs
them, the benchmark runs them with latency (``bench``), and the tests wrap them with a
contract check (``tests/fakes``). ``bot.sandbox.payloads`` is the one builder of the
payloads Slack sends. ``Sandbox.start()`` runs one small in-memory server per vendor on
127.0.0.1, seeds them with findings, alerts, incidents and three people (alice, bob,
carol) and returns the settings that point the real platform clients at them, so
``triage-bot shell`` works on a fresh machine with no credentials and the pipeline is
the production one end to end. Keys are random per run: the real clients authenticate
exactly as against a vendor.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bot.sandbox.elasticsearch import ElasticsearchSandbox
from bot.sandbox.kibana import KibanaSandbox
from bot.sandbox.oncall import DatadogWithOnCall
from bot.sandbox.server import SandboxServer
from bot.sandbox.slack import SlackSandbox
from bot.sandbox.xpanse import XpanseSandbox

__all__ = ["PEOPLE", "SEED", "Sandbox", "SlackSandbox"]

TEAM = "T0SANDBOX"
CHANNEL = "C0SANDBOX"
XPANSE_KEY_ID = "7"


@dataclass(frozen=True)
class Person:
    slack_id: str
    name: str
    real_name: str
    datadog: str | None
    kibana: str | None
    xpanse: bool

    @property
    def email(self) -> str:
        return f"{self.name}@sandbox.example"


# Carol's Kibana profile has no e-mail, so the sandbox also shows how an unmapped person is
# reported and how ``map`` fixes it.
PEOPLE: tuple[Person, ...] = (
    Person("U0ALICE", "alice", "Alice Analyst", "11111111-1111-4111-8111-111111111111", "u_alice_sandbox_0", True),
    Person("U0BOB", "bob", "Bob Builder", "22222222-2222-4222-8222-222222222222", "u_bob_sandbox_0", True),
    Person("U0CAROL", "carol", "Carol Contractor", "33333333-3333-4333-8333-333333333333", "u_carol_sandbox_0", True),
)
ALICE, BOB, CAROL = PEOPLE


@dataclass(frozen=True)
class Seed:
    """The seeded item ids, for the banner's tour and for tests."""

    findings: tuple[str, ...] = ("ZGVtby1zMy0x", "ZGVtby1pYW0tMg==", "ZGVtby1zc2gtMw==")
    # The real id form: URL-safe base64 of "<rule id>~<resource id>".
    auto_closed_finding: str = "ZGVmLTAwMC1zM3B-YWNtZS1vbGQtbG9ncw=="
    case_key: str = "SEC-1"
    case_uuid: str = "4b1c9d2e-5a6f-4c3b-9d2e-00000000c001"
    alerts_default: tuple[str, ...] = ("kb-brute-1", "kb-pwsh-2")
    alerts_secops: tuple[str, ...] = ("kb-malware-3", "kb-egress-4")
    incidents: tuple[str, ...] = ("5471", "5472", "5473")
    # A Datadog On-Call schedule: alice on call now, bob next (the shell's `rotate` hands over).
    schedule: str = "secops-primary"
    schedule_id: str = "5c0f7a8e-2b1d-4e3f-9a6b-0000000000a1"


SEED = Seed()


class Sandbox:
    """The running sandbox tenants; ``settings_overrides()`` aims the bot at them."""

    def __init__(self) -> None:
        self.dd_api_key, self.dd_app_key = secrets.token_hex(16), secrets.token_hex(20)
        self.kibana_key, self.es_key = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        self.xpanse_key = secrets.token_hex(24)
        self.slack_token = f"xoxb-sandbox-{secrets.token_hex(12)}"
        self.datadog = DatadogWithOnCall(api_key=self.dd_api_key, app_key=self.dd_app_key)
        self.kibana = KibanaSandbox(api_key=self.kibana_key)
        self.elasticsearch = ElasticsearchSandbox(api_key=self.es_key)
        self.xpanse = XpanseSandbox(
            keys={XPANSE_KEY_ID: ("standard", self.xpanse_key)}, host="https://sandbox.xpanse.invalid"
        )
        self.slack = SlackSandbox(token=self.slack_token, team_id=TEAM, bot_user_id="U0TRIAGEBOT", bot_id="B0TRIAGEBOT")
        self.servers: list[SandboxServer] = [self.datadog, self.kibana, self.elasticsearch, self.xpanse, self.slack]

    async def start(self) -> Sandbox:
        """Start every server and seed it; stops the ones started if one fails."""
        try:
            for server in self.servers:
                await server.start()
        except BaseException:
            await self.stop()
            raise
        self.seed()
        return self

    async def stop(self) -> None:
        for server in self.servers:
            await server.stop()

    def seed(self) -> None:
        """People everywhere (Carol not in Kibana) and a handful of items per platform."""
        for p in PEOPLE:
            self.slack.add_user(p.slack_id, name=p.name, email=p.email, real_name=p.real_name)
            if p.datadog:
                self.datadog.add_user(p.datadog, p.email, name=p.real_name)
            if p.kibana:
                email = None if p is CAROL else p.email
                self.elasticsearch.add_profile(p.kibana, email=email, username=p.name, full_name=p.real_name)
            if p.xpanse:
                first, last = p.real_name.split(" ", 1)
                self.xpanse.add_user(p.email, first, last)
        f = SEED.findings
        self.datadog.add_finding(f[0], title="Public S3 bucket acme-logs", severity="high")
        self.datadog.add_finding(
            f[1], title="IAM access key older than 90 days", severity="medium", assignee_id=BOB.datadog
        )
        self.datadog.add_finding(f[2], title="Security group allows SSH from 0.0.0.0/0", severity="critical")
        # Most real findings are auto_closed (their cause went away): `mine` (@status:open) skips them.
        self.datadog.add_finding(
            SEED.auto_closed_finding,
            title="Public S3 bucket acme-old-logs",
            severity="low",
            status="auto_closed",
            assignee_id=BOB.datadog,
        )
        self.datadog.add_case(SEED.case_uuid, SEED.case_key, title="Exposed storage review")
        d, s = SEED.alerts_default, SEED.alerts_secops
        self.kibana.add_alert(d[0], rule_name="Brute force login attempts", severity="high", host="vpn-1")
        self.kibana.add_alert(
            d[1],
            rule_name="Suspicious PowerShell download",
            severity="medium",
            assignees=[BOB.kibana or ""],
            host="ws-042",
        )
        self.kibana.add_alert(
            s[0], space="secops", rule_name="Malware detected on host", severity="critical", host="fin-07"
        )
        self.kibana.add_alert(s[1], space="secops", rule_name="Unusual outbound traffic", severity="low", host="db-2")
        i = SEED.incidents
        self.xpanse.add_incident(i[0], description="Exposed RDP on 203.0.113.10", severity="high")
        self.xpanse.add_incident(
            i[1],
            description="Expired TLS certificate on vpn.example.com",
            severity="medium",
            assigned_user_mail=BOB.email,
            assigned_user_pretty_name=BOB.real_name,
        )
        self.xpanse.add_incident(i[2], description="Open Elasticsearch on 198.51.100.7", severity="critical")
        # The alerts behind each incident, for the cards' alert count and top assets.
        self.xpanse.add_alert(i[0], ip="203.0.113.10", domain="rdp.example.com", severity="high")
        self.xpanse.add_alert(i[0], ip="203.0.113.10", severity="medium")
        self.xpanse.add_alert(i[1], domain="vpn.example.com")
        self.xpanse.add_alert(i[2], ip="198.51.100.7", severity="critical")
        # The on-call schedule, by the people's Datadog user ids: alice's shift now, bob's next.
        book, now = self.datadog.book, datetime.now(UTC).replace(microsecond=0)
        for p in PEOPLE:
            book.add_person(p.datadog or p.name, p.email, p.real_name)
        book.on_call(
            SEED.schedule_id, [ALICE.datadog or ""], start=now - timedelta(hours=8), end=now + timedelta(hours=4)
        )
        book.on_call(SEED.schedule_id, [BOB.datadog or ""], start=now + timedelta(hours=4))

    def write_oncall(self, directory: str) -> str:
        """Write the TRIAGE_ONCALL file watching the seeded schedule (confirm mode, the shell's
        channel) into ``directory``; returns its path."""
        path = Path(directory) / "oncall.yaml"
        path.write_text(
            f"schedules:\n  - name: {SEED.schedule}\n    source: datadog\n    id: {SEED.schedule_id}\n"
            f"    channel: {CHANNEL}\n    mode: confirm\npoll: 60s\n",
            encoding="utf-8",
        )
        return str(path)

    def settings_overrides(self, db: str, *, oncall: str | None = None) -> dict[str, Any]:
        """Keyword arguments for ``load_settings`` that aim every client at the sandbox
        (``oncall``: a TRIAGE_ONCALL file, as ``write_oncall`` writes)."""
        return {
            "_env_file": None,
            "slack_bot_token": self.slack_token,
            "slack_api_url": self.slack.api_url,
            "slack_signing_secret": None,
            "slack_app_token": None,
            "dd_api_key": self.dd_api_key,
            "dd_app_key": self.dd_app_key,
            "dd_api_url": self.datadog.url,
            "dd_site": "datadoghq.com",
            "kibana_url": self.kibana.url,
            "kibana_api_key": self.kibana_key,
            "kibana_space": "default",
            "kibana_spaces": "default,secops",
            "elasticsearch_url": self.elasticsearch.url,
            "elasticsearch_api_key": self.es_key,
            "xpanse_api_url": self.xpanse.url,
            "xpanse_api_key": self.xpanse_key,
            "xpanse_api_key_id": XPANSE_KEY_ID,
            "xpanse_auth": "standard",
            "xpanse_rate_limit": 50.0,
            "triage_db": db,
            "triage_policy": None,
            "triage_oncall": oncall,
            "triage_alert_channel": CHANNEL,
            "triage_alert_routes": {},
            "triage_retry_attempts": 2,
            "triage_retry_timeout": 5.0,
            "triage_http_timeout": 5.0,
        }
