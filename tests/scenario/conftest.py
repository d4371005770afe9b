"""The running bot, wired to every fake, for scenario tests.

Every harness built here checks, at teardown, that each message and view the bot
sent Slack (Web API calls, response_url bodies and acks) is valid Block Kit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from tests.fakes.datadog import DatadogFake
from tests.fakes.kibana import ElasticsearchFake, KibanaFake
from tests.fakes.slack import SlackFake
from tests.fakes.xpanse import XpanseFake
from tests.scenario.harness import BotHarness, fake_settings

ALICE, BOB, CAROL = "U0ALICE", "U0BOB", "U0CAROL"
DD_ALICE = "11111111-1111-4111-8111-111111111111"
DD_BOB = "22222222-2222-4222-8222-222222222222"
KB_ALICE = "u_alice0000000000000000000000000000000000000_0"
KB_BOB = "u_bob000000000000000000000000000000000000000_0"

MakeBot = Callable[..., Awaitable[BotHarness]]


def seed_people(slack: SlackFake, dd: DatadogFake, es: ElasticsearchFake, xp: XpanseFake) -> None:
    """Alice and Bob exist everywhere with the same email; Carol only in Slack."""
    slack.add_user(ALICE, email="alice@example.com", real_name="Alice Analyst")
    slack.add_user(BOB, email="bob@example.com", real_name="Bob Builder")
    slack.add_user(CAROL, email="carol@example.com", real_name="Carol Contractor")
    dd.add_user(DD_ALICE, "alice@example.com", name="Alice Analyst")
    dd.add_user(DD_BOB, "bob@example.com", name="Bob Builder")
    es.add_profile(KB_ALICE, email="alice@example.com", username="alice")
    es.add_profile(KB_BOB, email="bob@example.com", username="bob")
    xp.add_user("alice@example.com", "Alice", "Analyst")
    xp.add_user("bob@example.com", "Bob", "Builder")


@pytest_asyncio.fixture
async def make_bot(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    slack_fake: SlackFake,
    datadog_fake: DatadogFake,
    kibana_fake: KibanaFake,
    elasticsearch_fake: ElasticsearchFake,
    xpanse_fake: XpanseFake,
) -> AsyncIterator[MakeBot]:
    """A factory of running bots: ``await make_bot(kibana=False, triage_alert_routes={...})``.

    ``datadog``/``kibana``/``xpanse`` = False leaves that platform unconfigured; other
    keyword arguments are settings. At teardown every harness is stopped and its
    Slack output checked against Block Kit.
    """
    seed_people(slack_fake, datadog_fake, elasticsearch_fake, xpanse_fake)
    started: list[BotHarness] = []

    async def make(*, datadog: bool = True, kibana: bool = True, xpanse: bool = True, **extra: Any) -> BotHarness:
        settings = fake_settings(
            db=str(tmp_path / f"triage{len(started)}.db"),
            slack=slack_fake,
            datadog=datadog_fake if datadog else None,
            kibana=kibana_fake if kibana else None,
            es=elasticsearch_fake if kibana else None,
            xpanse=xpanse_fake if xpanse else None,
            **extra,
        )
        harness = await BotHarness(settings, slack_fake).start()
        started.append(harness)
        return harness

    try:
        yield make
    finally:
        for harness in started:
            await harness.stop()
    # Only when the test itself passed: a failing test's own error is the one to read.
    rep = getattr(request.node, "rep_call", None)
    if rep is None or rep.passed:
        for harness in started:
            harness.assert_block_kit()


@pytest_asyncio.fixture
async def bot(make_bot: MakeBot) -> BotHarness:
    """The bot serving HTTP on 127.0.0.1 with all three platforms configured."""
    return await make_bot()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keep each phase's report on the test item so fixtures can see whether the test passed."""
    rep = yield
    setattr(item, f"rep_{rep.when}", rep)
    return rep
