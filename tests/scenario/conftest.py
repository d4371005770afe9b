"""The running bot, wired to every fake, for scenario tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

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
async def bot(
    tmp_path, slack_fake: SlackFake, datadog_fake: DatadogFake, kibana_fake: KibanaFake,
    elasticsearch_fake: ElasticsearchFake, xpanse_fake: XpanseFake,
) -> AsyncIterator[BotHarness]:
    """The bot serving HTTP on 127.0.0.1 with all three platforms configured."""
    seed_people(slack_fake, datadog_fake, elasticsearch_fake, xpanse_fake)
    settings = fake_settings(
        db=str(tmp_path / "triage.db"), slack=slack_fake, datadog=datadog_fake, kibana=kibana_fake,
        es=elasticsearch_fake, xpanse=xpanse_fake,
    )
    harness = await BotHarness(settings, slack_fake).start()
    try:
        yield harness
    finally:
        await harness.stop()
