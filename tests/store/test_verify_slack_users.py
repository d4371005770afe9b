"""`mappings verify` also reports mappings that point at Slack users who cannot take work."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from bot.core.identity import IdentityResolver, Unworkable
from bot.models import Platform
from bot.ops.mappings_io import verify_mappings
from bot.platforms.datadog import DatadogClient
from bot.slack_web import SlackWeb
from bot.store.db import Store
from bot.store.mappings import MappingStore
from tests.fakes.datadog import DatadogFake
from tests.fakes.slack import SlackFake

T = "T111"
DD = {
    "U0ANN": "3f1b6c2e-7a5d-4e8b-9c0a-1d2e3f4a5b6c",
    "U0DAVE": "0c9a8b7d-6e5f-4a3b-9c2d-1e0f9a8b7c6d",
    "U0ROBOT": "5a4b3c2d-1e0f-4a9b-8c7d-6e5f4a3b2c1d",
    "U0GHOST": "6b5c4d3e-2f10-4b0c-9d8e-7f6a5b4c3d2e",
}


@pytest_asyncio.fixture
async def store(tmp_path: Path, db_url: str) -> AsyncIterator[Store]:
    opened = await Store.open(db_url)
    try:
        yield opened
    finally:
        await opened.close()


async def _seed(store: Store, slack_fake: SlackFake, datadog_fake: DatadogFake) -> MappingStore:
    slack_fake.add_user("U0ANN", email="ann@example.com")
    slack_fake.add_user("U0DAVE", email="dave@example.com", deleted=True)
    slack_fake.add_user("U0ROBOT", email="robot@example.com", is_bot=True)
    mappings = MappingStore(store)
    for user, value in DD.items():
        datadog_fake.add_user(value, f"{user.lower()}@example.com")
        await mappings.set(T, user, Platform.DATADOG, value, source="admin", set_by="U0ADMIN")
    return mappings


async def test_verify_reports_deactivated_bot_and_unknown_slack_users_as_drift(
    store: Store,
    slack_fake: SlackFake,
    slack_client: SlackWeb,
    datadog_fake: DatadogFake,
    datadog_client: DatadogClient,
) -> None:
    """Each mapping of a deactivated, bot or unknown Slack user is a drift naming the person and why."""
    mappings = await _seed(store, slack_fake, datadog_fake)
    resolver = IdentityResolver(mappings=mappings, clients={}, slack=slack_client)
    report = await verify_mappings(mappings, {Platform.DATADOG: datadog_client}, slack_users=resolver.unworkable)
    lines = report.lines()
    assert lines[0] == "checked 4 identities: 1 ok, 3 drifted, 0 unverified"
    assert f"<@U0DAVE> (T111) datadog={DD['U0DAVE']}: drift: <@U0DAVE>'s Slack account is deactivated" in lines
    assert f"<@U0ROBOT> (T111) datadog={DD['U0ROBOT']}: drift: <@U0ROBOT> is a bot or app user, not a person" in lines
    assert f"<@U0GHOST> (T111) datadog={DD['U0GHOST']}: drift: Slack does not know user U0GHOST" in lines
    assert len(slack_fake.calls_to("users.info")) == 4  # one look-up per Slack user
    dave = await mappings.get(T, "U0DAVE")
    assert all(i.verified_at is None for i in dave.identities)


async def test_verify_leaves_mappings_unverified_when_slack_cannot_answer(
    store: Store, slack_fake: SlackFake, datadog_fake: DatadogFake, datadog_client: DatadogClient
) -> None:
    """A Slack failure is no verdict: the mapping is 'unverified', not drift and not ok."""
    mappings = await _seed(store, slack_fake, datadog_fake)

    async def down(team_id: str, user_id: str) -> Unworkable:
        return Unworkable(reason=f"the bot could not check <@{user_id}> with Slack (fatal_error)", checked=False)

    report = await verify_mappings(mappings, {Platform.DATADOG: datadog_client}, slack_users=down)
    assert (report.ok, len(report.drifts), len(report.unverified)) == (0, 0, 4)
    assert "could not check <@U0ANN> with Slack" in "\n".join(report.lines())
