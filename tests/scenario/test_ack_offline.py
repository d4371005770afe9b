"""The acknowledgement path waits on no network: no fake sees a request before the ack is sent."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx
from aiohttp import web

from bot.web import build_web_app
from tests.fakes.datadog import DatadogFake
from tests.fakes.kibana import ElasticsearchFake, KibanaFake
from tests.fakes.slack import SlackFake
from tests.fakes.xpanse import XpanseFake
from tests.scenario.harness import CHANNEL, BotHarness

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
