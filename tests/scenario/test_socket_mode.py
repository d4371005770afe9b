"""Socket Mode: the same app served over Slack's WebSocket, acked by envelope id."""

from __future__ import annotations

import json
from pathlib import Path

from aiohttp import web

from bot.app import build_app, hot_routes
from bot.runtime import build_services
from bot.slack.socket_mode import HotSocketModeHandler
from bot.web import build_web_app
from tests.fakes.datadog import DatadogFake
from tests.fakes.slack import SlackFake
from tests.scenario.harness import fake_settings, payload

FINDING = "ZmluZGluZy1zb2NrZXQtbW9kZQ=="
BOB_DD = "22222222-2222-4222-8222-222222222222"


async def test_slash_command_over_socket_mode(tmp_path: Path, slack_fake: SlackFake, datadog_fake: DatadogFake) -> None:
    """An envelope is acked over the socket and its action runs; /readyz reports the socket connected."""
    slack_fake.add_user("U0BOB", email="bob@example.com")
    datadog_fake.add_user(BOB_DD, "bob@example.com")
    datadog_fake.add_finding(FINDING, title="Open port")
    settings = fake_settings(
        db=str(tmp_path / "t.db"),
        slack=slack_fake,
        datadog=datadog_fake,
        kibana=None,
        es=None,
        xpanse=None,
        slack_app_token=slack_fake.app_token,
        slack_signing_secret=None,
    )
    services = await build_services(settings)
    app = build_app(settings, services)
    await services.workers.start()
    await services.poster.start()  # as `serve` does, beside the workers
    handler = HotSocketModeHandler(
        app,
        hot_routes(app),
        app_token=settings.slack_app_token.get_secret_value(),  # type: ignore[union-attr]
        web_client=app.client,
    )

    async def connected() -> bool:
        return bool(await handler.client.is_connected())

    runner = web.AppRunner(build_web_app(services, bolt=None, socket_connected=connected))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        await handler.connect_async()  # type: ignore[no-untyped-call]
        command = payload("slash_command.json")
        command.update(
            {
                "command": "/triage",
                "text": f"assign dd:{FINDING} to <@U0BOB|bob>",
                "user_id": "U0BOB",
                "team_id": "T111",
                "is_enterprise_install": "false",
                "enterprise_id": "",
                "response_url": slack_fake.webhook_url("socket"),
            }
        )
        envelope_id = await slack_fake.push_envelope("slash_commands", command)
        ack = await slack_fake.wait_for_ack(envelope_id)
        assert "On it" in json.dumps(ack.get("payload", {}))
        await slack_fake.wait_for("chat.postMessage", count=2)
        assert datadog_fake.findings[FINDING]["assignee_id"] == BOB_DD
        import httpx

        async with httpx.AsyncClient() as http:
            ready = await http.get(f"http://127.0.0.1:{port}/readyz")
        assert ready.status_code == 200 and ready.json()["checks"]["slack_socket"] is True
        # No HTTP Slack endpoint is mounted in Socket Mode.
        async with httpx.AsyncClient() as http:
            assert (await http.post(f"http://127.0.0.1:{port}/slack/events", content="x")).status_code in (404, 405)
    finally:
        await handler.close_async()  # type: ignore[no-untyped-call]
        await runner.cleanup()
        await services.close()
