"""The acknowledgement path waits on no network: no fake sees a request before the ack is sent."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
from aiohttp import web

from bot.app import build_app, hot_routes, prime_authorization
from bot.runtime import build_services
from bot.sandbox import payloads
from bot.slack.socket_mode import HotSocketModeHandler
from bot.web import build_web_app
from tests.fakes.datadog import DatadogFake
from tests.fakes.kibana import ElasticsearchFake, KibanaFake
from tests.fakes.slack import SlackFake
from tests.fakes.xpanse import XpanseFake
from tests.scenario.harness import CHANNEL, BotHarness, fake_settings

FINDING = "YWNrLW9mZmxpbmUtZmluZGluZw=="


async def test_commands_and_clicks_are_acked_before_any_slack_or_platform_request(
    bot: BotHarness,
    slack_fake: SlackFake,
    datadog_fake: DatadogFake,
    kibana_fake: KibanaFake,
    elasticsearch_fake: ElasticsearchFake,
    xpanse_fake: XpanseFake,
) -> None:
    """Slash commands and card buttons: the Slack and platform fakes receive nothing until the HTTP response goes."""

    def seen() -> int:
        platform = sum(len(f.requests) for f in (datadog_fake, kibana_fake, elasticsearch_fake, xpanse_fake))
        return len(slack_fake.calls) + len(slack_fake.responses) + platform

    at_ack: list[int] = []

    async def snapshot(_: web.Request, __: web.StreamResponse) -> None:
        at_ack.append(seen())

    # The bot's own services and Bolt app behind a second web app that notes, as each
    # response is about to be written, how many requests the fakes had received by then.
    app = build_web_app(bot.svc, bolt=bot.bolt)
    app.on_response_prepare.append(snapshot)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    assert site._server is not None
    bot.port = site._server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    try:
        datadog_fake.add_finding(FINDING, title="Key in repo")
        await bot.command(f"show dd:{FINDING}")
        await bot.settle()
        ts = slack_fake.messages_in(CHANNEL)[-1]["ts"]
        sends: list[Callable[[], Awaitable[httpx.Response]]] = [
            lambda: bot.command(f"assign dd:{FINDING} to me"),
            lambda: bot.click_on_card("assign_me", channel=CHANNEL, ts=ts),
            lambda: bot.command(f"severity dd:{FINDING} high"),
            lambda: bot.click_on_card("refresh", channel=CHANNEL, ts=ts),
        ]
        for send in sends:
            await bot.settle()
            before, at_ack[:] = seen(), []
            resp = await send()
            assert resp.status_code == 200
            assert at_ack == [before], f"requests made before the ack: {at_ack[0] - before}"
        await bot.settle()
        assert seen() > before, "the work after the ack did reach the fakes"
    finally:
        await runner.cleanup()


async def test_socket_mode_envelope_is_acked_without_any_request_to_slack_or_a_platform(
    tmp_path: Path, slack_fake: SlackFake, datadog_fake: DatadogFake
) -> None:
    """Over the Socket Mode fake, a command's envelope is acked (job stored) with no Web API or platform request."""
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
    await prime_authorization(app)  # as serve does before it serves
    # No workers: whatever reaches a fake after this point came from the ack path itself.
    handler = HotSocketModeHandler(app, hot_routes(app), app_token=slack_fake.app_token, web_client=app.client)
    try:
        await handler.connect_async()  # type: ignore[no-untyped-call]
        before = (len(slack_fake.calls), len(slack_fake.responses), len(datadog_fake.requests))
        command = payloads.slash_command(
            text=f"assign dd:{FINDING} to me",
            user_id="U0ALICE",
            team_id="T111",
            channel_id=CHANNEL,
            response_url=slack_fake.webhook_url("socket"),
            trigger_id="trigger.socket.1",
        )
        envelope_id = await slack_fake.push_envelope("slash_commands", command)
        ack = await slack_fake.wait_for_ack(envelope_id)
        assert "On it" in json.dumps(ack.get("payload", {}))
        assert (len(slack_fake.calls), len(slack_fake.responses), len(datadog_fake.requests)) == before
        assert [j.verb for j in await services.jobs.unfinished()] == ["assign"]
    finally:
        await handler.close_async()  # type: ignore[no-untyped-call]
        await services.close()
