"""``triage-bot check``: one line per configured platform and Slack, never a secret."""

from __future__ import annotations

import asyncio

from slack_sdk.errors import SlackApiError

from bot.errors import PlatformAuthError, PlatformError
from bot.models import Platform
from bot.platforms import build_clients
from bot.runtime import slack_web_client
from bot.settings import Settings

# What each platform's key needs, for a readable hint on 401/403.
PERMISSION_HINTS = {
    Platform.DATADOG: "the application key needs security_monitoring_findings_read/_write, "
    "user_access_read and cases_read",
    Platform.KIBANA: "the API key needs Security > Alerts: All in every configured space",
    Platform.XPANSE: "the API key needs a role that can read and update incidents and read users",
}


async def run_check(settings: Settings) -> tuple[list[str], bool]:
    """Call each configured platform's cheapest authenticated endpoint and Slack's auth.test."""
    clients = build_clients(settings)
    lines: list[str] = []
    ok = True

    async def one(platform: Platform) -> str:
        nonlocal ok
        try:
            detail = await clients[platform].check()
            return f"{platform.label}: ok — {detail}"
        except PlatformAuthError as exc:
            ok = False
            return f"{platform.label}: failing — {exc.status} {exc.reason}; {PERMISSION_HINTS[platform]}"
        except PlatformError as exc:
            ok = False
            return f"{platform.label}: failing — {exc.reason}"

    try:
        results = await asyncio.gather(*(one(p) for p in clients))
    finally:
        for client in clients.values():
            await client.aclose()
    for platform in Platform:
        if platform not in clients:
            lines.append(f"{platform.label}: not configured")
    lines[:0] = list(results)
    if settings.slack_bot_token is None:
        lines.append("Slack: not configured (SLACK_BOT_TOKEN is not set)")
    else:
        try:
            auth = await slack_web_client(settings).auth_test()
            lines.append(f"Slack: ok — bot {auth.get('user')} in team {auth.get('team')}")
        except SlackApiError as exc:
            ok = False
            lines.append(f"Slack: failing — {exc.response.get('error')}")
        except Exception as exc:  # a connection failure is a failing check, not a crash
            ok = False
            lines.append(f"Slack: failing — {type(exc).__name__}")
    return lines, ok
