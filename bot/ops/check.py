"""``triage-bot check``: one line per configured platform and Slack, never a secret.

Each configured platform's cheapest authenticated endpoint is called through its real
client (``PlatformClient.check``), Elasticsearch too when the Kibana profile look-up is
configured, and Slack's ``auth.test`` (whose granted scopes are compared with what the
bot uses). The probes only read, so each line also states what the platform's writes need
(``bot.permissions.WRITES``); a refused probe names the permission it lacked. Every line
passes through the log redactor before it is returned, so a vendor that echoes a
credential in an error body cannot make ``check`` print it.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from bot import permissions
from bot.core.oncall_config import load_oncall
from bot.errors import PlatformAuthError, PlatformError, StoreError
from bot.logging import Redactor, secret_values
from bot.models import Platform
from bot.platforms import build_clients, build_sources
from bot.platforms.base import PlatformClient
from bot.runtime import slack_web_client
from bot.settings import Settings
from bot.slack_web import SlackApiError
from bot.store.db import SchemaBehind, Store, redacted
from bot.store.migrate import HEAD

# What each platform's writes need (the probes only read): stated on every line.
WRITE_HINTS = {
    p: f"writes need {permissions.WRITES[p.value].needs} on the {permissions.WRITES[p.value].credential}"
    for p in Platform
}
ES_HINT = f"profile look-ups need {permissions.ELASTICSEARCH['es.profile_suggest'].needs}"
# Scopes the bot's features need (manifest.yml); usergroups:read only matters for group policies.
REQUIRED_SCOPES = ("commands", "chat:write", "im:write", "users:read", "users:read.email")
# An address no directory holds: the profile look-up runs without finding anyone.
_PROBE_EMAIL = "triage-bot-check@invalid.example"
# A check should answer in seconds: a down platform must not take the full retry budget.
CHECK_RETRY_ATTEMPTS = 2
CHECK_RETRY_TIMEOUT = 10.0


def _failing(label: str, exc: Exception, hint: str) -> str:
    if isinstance(exc, PlatformAuthError):
        # The reason already says who refused, the status and what the key lacks.
        return f"{label}: failing — {exc.reason}; {hint}"
    if isinstance(exc, PlatformError):
        status = f"{exc.status} " if exc.status else ""
        return f"{label}: failing — {status}{exc.reason}"
    # An unexpected error (a malformed URL …) is a failing check, not a crash; its message
    # may quote a request, so only the type is shown.
    return f"{label}: failing — {type(exc).__name__}"


async def _check_platform(platform: Platform, client: PlatformClient, settings: Settings) -> tuple[list[str], bool]:
    try:
        lines = [f"{platform.label}: ok — {await client.check()}; {WRITE_HINTS[platform]}"]
    except Exception as exc:
        return [_failing(platform.label, exc, WRITE_HINTS[platform])], False
    if platform is Platform.KIBANA and settings.elasticsearch_url:
        try:
            await client.find_user_by_email(_PROBE_EMAIL)
            lines.append(f"Elasticsearch: ok — profile look-up by e-mail works ({settings.elasticsearch_url})")
        except Exception as exc:
            return [*lines, _failing("Elasticsearch", exc, ES_HINT)], False
    return lines, True


async def _check_slack(settings: Settings) -> tuple[str, bool]:
    if settings.slack_bot_token is None:
        return "Slack: not configured (SLACK_BOT_TOKEN is not set)", True
    try:
        async with slack_web_client(settings) as slack:
            auth = await slack.auth_test()
    except SlackApiError as exc:
        return f"Slack: failing — {exc.response.get('error')}", False
    except Exception as exc:  # a connection failure is a failing check, not a crash
        return f"Slack: failing — {type(exc).__name__} talking to {settings.slack.api_url}", False
    who = f"bot {auth.get('user')} in team {auth.get('team')}"
    header = next((v for k, v in (auth.headers or {}).items() if k.lower() == "x-oauth-scopes"), None)
    if header is None:
        return f"Slack: ok — {who}", True
    granted = {s.strip() for s in str(header).split(",") if s.strip()}
    missing = [s for s in REQUIRED_SCOPES if s not in granted]
    if missing:
        return (
            f"Slack: failing — {who}, but the token lacks {', '.join(missing)}; add the scopes in the "
            "app's OAuth settings and reinstall the app"
        ), False
    note = "" if "usergroups:read" in granted else " (no usergroups:read: policy rules naming groups never match)"
    if "files:write" not in granted:
        note += " (no files:write: big jobs get no CSV of their items, only thread messages)"
    return f"Slack: ok — {who}{note}", True


async def _check_schedules(settings: Settings) -> tuple[list[str], bool]:
    """One line per schedule of TRIAGE_ONCALL: who is on call now, or why the source cannot say."""
    if settings.triage_oncall is None:
        return [], True
    sources = build_sources(settings)
    try:
        config = load_oncall(settings.triage_oncall, sources=list(sources))
        lines, ok = [], True
        for schedule in config.schedules:
            label = f"On-call {schedule.name} ({schedule.source} {schedule.id})"
            source = sources[schedule.source]
            try:
                roster = await source.roster(schedule.id, at=datetime.now(UTC))
            except Exception as exc:
                lines.append(_failing(label, exc, source.missing_permission))
                ok = False
                continue
            who = ", ".join(roster.current_emails) or "nobody"
            lines.append(f"{label}: ok — on call now: {who}")
        return lines, ok
    finally:
        for source in sources.values():
            await source.aclose()


async def _check_store(target: str) -> tuple[str, bool]:
    """Whether the database opens at the schema this version knows (migrating it if behind)."""
    label = f"Database ({redacted(target)})"
    try:
        async with await Store.open(target, migrate_schema=False) as store:
            return f"{label}: ok — {store.dialect}, schema revision {store.schema_revision}", True
    except SchemaBehind:
        return (
            f"{label}: ok — reachable, not yet at revision {HEAD}: `triage-bot db upgrade` or `serve` migrates it",
            True,
        )
    except StoreError as exc:
        return f"{label}: FAILING — {exc}", False


async def run_check(settings: Settings) -> tuple[list[str], bool]:
    """Call each configured platform's cheapest authenticated endpoint and Slack's auth.test.

    Returns the report lines (configured platforms, then the unconfigured ones, then
    Slack) and whether everything configured works. Raises ``ConfigError`` only when a
    client cannot be built from the settings.
    """
    quick = settings.model_copy(
        update={
            "triage_retry_attempts": CHECK_RETRY_ATTEMPTS,
            "triage_retry_timeout": min(settings.triage_retry_timeout, CHECK_RETRY_TIMEOUT),
        }
    )
    clients = build_clients(quick)
    try:
        results = await asyncio.gather(*(_check_platform(p, c, quick) for p, c in clients.items()))
    finally:
        for client in clients.values():
            await client.aclose()
    lines = [line for platform_lines, _ in results for line in platform_lines]
    ok = all(good for _, good in results)
    lines += [f"{p.label}: not configured" for p in Platform if p not in clients]
    schedule_lines, schedules_ok = await _check_schedules(quick)
    lines += schedule_lines
    db_line, db_ok = await _check_store(settings.triage_db)
    lines.append(db_line)
    slack_line, slack_ok = await _check_slack(quick)
    lines.append(slack_line)
    redactor = Redactor(secret_values(settings))
    return [redactor.redact_text(line) for line in lines], ok and slack_ok and schedules_ok and db_ok
