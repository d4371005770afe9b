"""IdentityResolver against the real store, the fake Slack Web API and the platform fakes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.identity import IdentityResolver, SingleFlight
from bot.errors import NotConfiguredError, NotMappedError, UsageError
from bot.models import Platform
from bot.platforms.base import PlatformClient
from bot.platforms.datadog import DatadogClient
from bot.platforms.kibana import KibanaClient
from bot.platforms.xpanse import XpanseClient
from bot.slack_web import SlackApiError as BotSlackApiError
from bot.slack_web import SlackWeb
from bot.store.db import Store
from bot.store.mappings import MappingStore, Source
from tests.fakes.datadog import DatadogFake
from tests.fakes.kibana import ElasticsearchFake, KibanaFake, make_kibana_config
from tests.fakes.slack import SlackFake

# The tests of the fake itself talk to it through Slack's own SDK client.
from tests.fakes.xpanse import XpanseFake

T = "T111"
DD = "3f1b6c2e-7a5d-4e8b-9c0a-1d2e3f4a5b6c"
DD_OTHER = "0c9a8b7d-6e5f-4a3b-9c2d-1e0f9a8b7c6d"
KB = "u_79HkWkwmnBH5gqFKwoxggWPjEBOur1zLPXQPEl1VBW0_0"
ALICE = "alice@example.com"


@pytest_asyncio.fixture
async def mappings(tmp_path: Path, db_url: str) -> AsyncIterator[MappingStore]:
    store = await Store.open(db_url)
    try:
        yield MappingStore(store)
    finally:
        await store.close()


@pytest.fixture
def clients(
    datadog_client: DatadogClient, kibana_client: KibanaClient, xpanse_client: XpanseClient
) -> dict[Platform, PlatformClient]:
    return {
        Platform.DATADOG: datadog_client,
        Platform.KIBANA: kibana_client,
        Platform.XPANSE: xpanse_client,
    }


def make_resolver(
    mappings: MappingStore,
    clients: Mapping[Platform, PlatformClient],
    slack: SlackWeb,
) -> IdentityResolver:
    return IdentityResolver(mappings=mappings, clients=clients, slack=slack)


def platform_calls(clients: Mapping[Platform, PlatformClient]) -> int:
    return sum(sum(c.call_counts().values()) for c in clients.values())


# ---- explicit mappings ------------------------------------------------------------------


async def test_explicit_mapping_wins_without_any_call(
    mappings: MappingStore,
    clients: dict[Platform, PlatformClient],
    slack_fake: SlackFake,
    slack_client: SlackWeb,
) -> None:
    """A stored mapping is returned for every platform with no Slack and no platform call."""
    slack_fake.add_user("U1", email=ALICE)
    await mappings.set_many(
        T,
        "U1",
        {Platform.DATADOG: DD, Platform.KIBANA: KB, Platform.XPANSE: "al@corp.example"},
        source="admin",
        set_by="U9",
    )
    resolver = make_resolver(mappings, clients, slack_client)
    assert await resolver.resolve(T, "U1", Platform.DATADOG) == DD
    assert await resolver.resolve(T, "U1", Platform.KIBANA) == KB
    assert await resolver.resolve(T, "U1", Platform.XPANSE) == "al@corp.example"
    assert slack_fake.calls == []
    assert platform_calls(clients) == 0


# ---- automatic resolution from the Slack email ------------------------------------------


async def test_auto_resolves_datadog_from_email_and_stores_it(
    mappings: MappingStore,
    clients: dict[Platform, PlatformClient],
    datadog_fake: DatadogFake,
    slack_fake: SlackFake,
    slack_client: SlackWeb,
) -> None:
    """The Slack email finds the Datadog user; it is stored as 'auto' and reused with no call."""
    slack_fake.add_user("U1", email="Alice@Example.com", real_name="Alice Liddell")
    datadog_fake.add_user(DD_OTHER, "alice@example.com.evil.io")  # substring decoy
    datadog_fake.add_user(DD, ALICE, name="Alice Liddell")
    resolver = make_resolver(mappings, clients, slack_client)
    assert await resolver.resolve(T, "U1", Platform.DATADOG) == DD
    stored = await mappings.get_one(T, "U1", Platform.DATADOG)
    assert stored is not None and stored.source is Source.AUTO and stored.verified_at is not None
    slack_before, platform_before = len(slack_fake.calls), platform_calls(clients)
    assert len(slack_fake.calls_to("users.info")) == 1
    # A new resolver has an empty profile cache: only the store can answer without calls.
    fresh = make_resolver(mappings, clients, slack_client)
    assert await fresh.resolve(T, "U1", Platform.DATADOG) == DD
    assert (len(slack_fake.calls), platform_calls(clients)) == (slack_before, platform_before)


async def test_auto_resolves_kibana_profile_via_elasticsearch(
    mappings: MappingStore,
    clients: dict[Platform, PlatformClient],
    elasticsearch_fake: ElasticsearchFake,
    slack_fake: SlackFake,
    slack_client: SlackWeb,
) -> None:
    """The email finds the Kibana profile uid through ES profile suggest; stored as 'auto'."""
    slack_fake.add_user("U1", email=ALICE)
    elasticsearch_fake.add_profile(KB, email=ALICE, username="alice", full_name="Alice")
    resolver = make_resolver(mappings, clients, slack_client)
    assert await resolver.resolve(T, "U1", Platform.KIBANA) == KB
    stored = await mappings.get_one(T, "U1", Platform.KIBANA)
    assert stored is not None and stored.source is Source.AUTO
    before = platform_calls(clients)
    assert await resolver.resolve(T, "U1", Platform.KIBANA) == KB
    assert platform_calls(clients) == before
    assert len(slack_fake.calls_to("users.info")) == 1


async def test_auto_resolves_xpanse_email_confirmed_in_tenant(
    mappings: MappingStore,
    clients: dict[Platform, PlatformClient],
    xpanse_fake: XpanseFake,
    slack_fake: SlackFake,
    slack_client: SlackWeb,
) -> None:
    """Xpanse uses the email itself, confirmed against the tenant's users, stored as 'auto'."""
    slack_fake.add_user("U1", email=ALICE)
    xpanse_fake.add_user("Alice@Example.com", "Alice", "Liddell")
    resolver = make_resolver(mappings, clients, slack_client)
    assert await resolver.resolve(T, "U1", Platform.XPANSE) == ALICE
    stored = await mappings.get_one(T, "U1", Platform.XPANSE)
    assert stored is not None and stored.source is Source.AUTO and stored.verified_at is not None
    assert xpanse_fake.calls("get_users")


async def test_xpanse_email_used_unconfirmed_when_key_cannot_list_users(
    mappings: MappingStore,
    clients: dict[Platform, PlatformClient],
    xpanse_fake: XpanseFake,
    slack_fake: SlackFake,
    slack_client: SlackWeb,
) -> None:
    """A 403 on rbac/get_users falls back to the Slack email, stored without verification."""
    slack_fake.add_user("U1", email=ALICE)
    xpanse_fake.fail(
        "get_users",
        status=403,
        body={"reply": {"err_code": "403", "err_msg": "Forbidden", "err_extra": ""}},
    )
    resolver = make_resolver(mappings, clients, slack_client)
    assert await resolver.resolve(T, "U1", Platform.XPANSE) == ALICE
    stored = await mappings.get_one(T, "U1", Platform.XPANSE)
    assert stored is not None and stored.source is Source.AUTO and stored.verified_at is None


# ---- not mapped: one actionable sentence per reason ---------------------------------------


@pytest.mark.parametrize("platform", list(Platform))
async def test_no_email_on_slack_profile_says_how_to_map(
    platform: Platform,
    mappings: MappingStore,
    clients: dict[Platform, PlatformClient],
    slack_fake: SlackFake,
    slack_client: SlackWeb,
) -> None:
    """A Slack profile without email gives NotMappedError naming the user, scope and command."""
    slack_fake.add_user("U1", email=None)
    resolver = make_resolver(mappings, clients, slack_client)
    with pytest.raises(NotMappedError) as info:
        await resolver.resolve(T, "U1", platform)
    message = str(info.value)
    assert "<@U1> has no email on their Slack profile" in message
    assert "users:read.email" in message
    assert f"`/triage map <@U1> {platform.value}=" in message
    assert platform_calls(clients) == 0
    assert (await mappings.get(T, "U1")).empty


@pytest.mark.parametrize(
    ("platform", "expected"),
    [
        (Platform.DATADOG, "<@U1> has no active Datadog user with the email alice@example.com"),
        (
            Platform.KIBANA,
            "<@U1> has no Kibana profile mapped — Kibana creates one when they first log in",
        ),
        (
            Platform.XPANSE,
            "<@U1> is not a user of the Xpanse tenant with the email alice@example.com",
        ),
    ],
)
async def test_no_match_on_platform_says_why_and_how_to_map(
    platform: Platform,
    expected: str,
    mappings: MappingStore,
    clients: dict[Platform, PlatformClient],
    datadog_fake: DatadogFake,
    slack_fake: SlackFake,
    slack_client: SlackWeb,
) -> None:
    """No platform user with the email gives a per-platform sentence and the map command."""
    slack_fake.add_user("U1", email=ALICE)
    datadog_fake.add_user(DD, ALICE, disabled=True, status="Disabled")  # disabled: no match
    resolver = make_resolver(mappings, clients, slack_client)
    with pytest.raises(NotMappedError) as info:
        await resolver.resolve(T, "U1", platform)
    assert expected in str(info.value)
    assert f"`/triage map <@U1> {platform.value}=" in str(info.value)
    assert (await mappings.get(T, "U1")).empty


async def test_kibana_without_elasticsearch_is_not_mapped(
    mappings: MappingStore,
    kibana_fake: KibanaFake,
    slack_fake: SlackFake,
    slack_client: SlackWeb,
) -> None:
    """Without ES the Kibana look-up finds nothing and the message offers the map command."""
    slack_fake.add_user("U1", email=ALICE)
    client = KibanaClient(make_kibana_config(kibana_fake, None))
    try:
        resolver = make_resolver(mappings, {Platform.KIBANA: client}, slack_client)
        with pytest.raises(NotMappedError, match=r"/triage map <@U1> kibana=u_…"):
            await resolver.resolve(T, "U1", Platform.KIBANA)
    finally:
        await client.aclose()


async def test_platform_not_configured(
    mappings: MappingStore,
    datadog_client: DatadogClient,
    slack_fake: SlackFake,
    slack_client: SlackWeb,
) -> None:
    """A platform absent from clients raises NotConfiguredError before any Slack call."""
    slack_fake.add_user("U1", email=ALICE)
    resolver = make_resolver(mappings, {Platform.DATADOG: datadog_client}, slack_client)
    with pytest.raises(NotConfiguredError, match="Kibana is not configured"):
        await resolver.resolve(T, "U1", Platform.KIBANA)
    assert slack_fake.calls == []


async def test_unknown_slack_user_is_not_mapped(
    mappings: MappingStore,
    clients: dict[Platform, PlatformClient],
    slack_client: SlackWeb,
) -> None:
    """users.info user_not_found gives NotMappedError, not a Slack exception."""
    resolver = make_resolver(mappings, clients, slack_client)
    with pytest.raises(NotMappedError, match="<@U404> is not a Slack user the bot can find"):
        await resolver.resolve(T, "U404", Platform.DATADOG)


async def test_match_already_mapped_to_someone_else_is_refused(
    mappings: MappingStore,
    clients: dict[Platform, PlatformClient],
    datadog_fake: DatadogFake,
    slack_fake: SlackFake,
    slack_client: SlackWeb,
) -> None:
    """An email match that is another Slack user's mapping is not taken over."""
    slack_fake.add_user("U1", email=ALICE)
    datadog_fake.add_user(DD, ALICE)
    await mappings.set(T, "U2", Platform.DATADOG, DD, source="admin", set_by="U9")
    resolver = make_resolver(mappings, clients, slack_client)
    with pytest.raises(NotMappedError, match=r"already mapped to <@U2>"):
        await resolver.resolve(T, "U1", Platform.DATADOG)
    assert await mappings.find_by_value(Platform.DATADOG, DD) == (T, "U2")


# ---- caching and coalescing ---------------------------------------------------------------


async def test_burst_of_resolutions_makes_one_users_info_call(
    mappings: MappingStore,
    clients: dict[Platform, PlatformClient],
    datadog_client: DatadogClient,
    datadog_fake: DatadogFake,
    slack_fake: SlackFake,
    slack_client: SlackWeb,
) -> None:
    """50 concurrent resolutions (and names) for one user share one users.info and one look-up."""
    slack_fake.add_user("U1", email=ALICE, real_name="Alice Liddell")
    datadog_fake.add_user(DD, ALICE)
    resolver = make_resolver(mappings, clients, slack_client)
    results = await asyncio.gather(
        *(resolver.resolve(T, "U1", Platform.DATADOG) for _ in range(50)),
        *(resolver.display_name(T, "U1") for _ in range(10)),
    )
    assert results[:50] == [DD] * 50
    assert set(results[50:]) == {"Alice Liddell"}
    assert len(slack_fake.calls_to("users.info")) == 1
    assert datadog_client.call_counts()["list_users"] == 1


async def test_profile_cache_expires_after_ttl(
    mappings: MappingStore, slack_fake: SlackFake, slack_client: SlackWeb
) -> None:
    """Profiles are served from cache within profile_ttl and fetched again after it."""
    now = [1000.0]
    slack_fake.add_user("U1", email=ALICE, real_name="Alice")
    resolver = IdentityResolver(mappings=mappings, clients={}, slack=slack_client, profile_ttl=60, clock=lambda: now[0])
    assert await resolver.email(T, "U1") == ALICE
    now[0] += 59
    assert await resolver.display_name(T, "U1") == "Alice"
    assert len(slack_fake.calls_to("users.info")) == 1
    now[0] += 2
    slack_fake.users["U1"].email = "alice@new.example.com"
    assert await resolver.email(T, "U1") == "alice@new.example.com"
    assert len(slack_fake.calls_to("users.info")) == 2
    resolver.forget(T, "U1")
    await resolver.email(T, "U1")
    assert len(slack_fake.calls_to("users.info")) == 3


async def test_display_name_falls_back_to_mention(
    mappings: MappingStore, slack_fake: SlackFake, slack_client: SlackWeb
) -> None:
    """Unknown users and Slack failures render as a mention; email is None without one."""
    resolver = make_resolver(mappings, {}, slack_client)
    assert await resolver.display_name(T, "U404") == "<@U404>"
    assert await resolver.email(T, "U404") is None
    slack_fake.add_user("U2", email=None, real_name="")
    slack_fake.users["U2"].real_name = ""
    assert await resolver.display_name(T, "U2") == "<@U2>"
    slack_fake.fail("users.info", "missing_scope")
    assert await resolver.display_name(T, "U3") == "<@U3>"
    slack_fake.fail("users.info", "missing_scope")
    with pytest.raises(BotSlackApiError):
        await resolver.email(T, "U5")


async def test_single_flight_shares_failures_and_survives_a_cancelled_caller() -> None:
    """Concurrent callers share one run and its exception; a cancelled waiter cancels nothing."""
    flight: SingleFlight[str, int] = SingleFlight()
    runs = 0
    gate = asyncio.Event()

    async def work() -> int:
        nonlocal runs
        runs += 1
        await gate.wait()
        return 7

    first = asyncio.ensure_future(flight.run("k", work))
    second = asyncio.ensure_future(flight.run("k", work))
    await asyncio.sleep(0)
    first.cancel()
    gate.set()
    assert await second == 7 and runs == 1

    async def boom() -> int:
        raise ValueError("nope")

    results = await asyncio.gather(flight.run("x", boom), flight.run("x", boom), return_exceptions=True)
    assert all(isinstance(r, ValueError) for r in results)


# ---- reverse look-up and commands ---------------------------------------------------------


async def test_slack_user_for_renders_assignees(
    mappings: MappingStore, slack_fake: SlackFake, slack_client: SlackWeb
) -> None:
    """A platform identity maps back to the Slack user who owns it, with no network call."""
    resolver = make_resolver(mappings, {}, slack_client)
    await resolver.map(T, "U9", "U1", {Platform.KIBANA: KB})
    assert await resolver.slack_user_for(Platform.KIBANA, KB) == "U1"
    assert await resolver.slack_user_for(Platform.DATADOG, DD) is None
    assert slack_fake.calls == []


async def test_map_sets_source_by_actor_and_validates_first(mappings: MappingStore, slack_client: SlackWeb) -> None:
    """map is 'self' for oneself and 'admin' for others, and writes nothing if any value is bad."""
    resolver = make_resolver(mappings, {}, slack_client)
    mine = await resolver.map(T, "U1", "U1", {Platform.XPANSE: "Alice@Example.com"})
    assert mine.xpanse is not None and mine.xpanse.source is Source.SELF
    assert mine.xpanse.value == ALICE and mine.xpanse.set_by == "U1"
    theirs = await resolver.map(T, "U9", "U2", {Platform.DATADOG: DD})
    assert theirs.datadog is not None and theirs.datadog.source is Source.ADMIN
    with pytest.raises(UsageError, match="not a Kibana profile uid"):
        await resolver.map(T, "U9", "U3", {Platform.DATADOG: DD_OTHER, Platform.KIBANA: "bob"})
    assert (await mappings.get(T, "U3")).empty
    with pytest.raises(UsageError, match="at least one platform=value"):
        await resolver.map(T, "U9", "U3", {})
    assert await resolver.unmap(T, "U2", Platform.DATADOG) is True
    assert await resolver.unmap(T, "U2", Platform.DATADOG) is False


async def test_whoami_reports_ok_drift_and_not_configured(
    mappings: MappingStore,
    datadog_client: DatadogClient,
    xpanse_client: XpanseClient,
    datadog_fake: DatadogFake,
    xpanse_fake: XpanseFake,
    slack_client: SlackWeb,
) -> None:
    """whoami verifies each identity: ok (and recorded), drift with the reason, not configured."""
    datadog_fake.add_user(DD, ALICE)
    await mappings.set_many(
        T,
        "U1",
        {Platform.DATADOG: DD, Platform.KIBANA: KB, Platform.XPANSE: "gone@example.com"},
        source="self",
        set_by="U1",
    )
    clients: dict[Platform, PlatformClient] = {
        Platform.DATADOG: datadog_client,
        Platform.XPANSE: xpanse_client,
    }
    resolver = make_resolver(mappings, clients, slack_client)
    statuses = {s.platform: s for s in await resolver.whoami(T, "U1")}
    assert statuses[Platform.DATADOG].status == "ok"
    assert statuses[Platform.DATADOG].source is Source.SELF
    age = statuses[Platform.DATADOG].age
    assert age is not None and age.total_seconds() >= 0
    assert statuses[Platform.KIBANA].status == "unverified (platform not configured)"
    assert statuses[Platform.XPANSE].status == "drift: gone@example.com is not a user in the Xpanse tenant"
    verified = await mappings.get(T, "U1")
    assert verified.datadog is not None and verified.datadog.verified_at is not None
    assert verified.xpanse is not None and verified.xpanse.verified_at is None

    quick = await resolver.whoami(T, "U1", verify=False)
    assert [s.status for s in quick] == [None, None, None]
    assert [s.value for s in quick] == [DD, KB, "gone@example.com"]
    nobody = await resolver.whoami(T, "U7")
    assert [(s.value, s.status) for s in nobody] == [(None, None)] * 3


# ---- the Slack fake the resolver (and every Slack-side test) talks to --------------------


async def test_slack_fake_checks_the_token_and_records_calls(slack_fake: SlackFake, sdk_client: AsyncWebClient) -> None:
    """A wrong bearer token gets invalid_auth; every call is recorded with args and headers."""
    assert (await sdk_client.auth_test())["user_id"] == slack_fake.bot_user_id
    bad = AsyncWebClient(token="xoxb-wrong", base_url=slack_fake.api_url)
    with pytest.raises(SlackApiError) as info:
        await bad.auth_test()
    assert info.value.response["error"] == "invalid_auth"
    slack_fake.add_user("U1", email=ALICE)
    await sdk_client.users_info(user="U1")
    method, args, headers = slack_fake.calls_to("users.info")[0]
    assert (method, args) == ("users.info", {"user": "U1"})
    assert headers["authorization"] == "Bearer xoxb-test-token"


async def test_slack_fake_messages_threads_and_updates(slack_fake: SlackFake, sdk_client: AsyncWebClient) -> None:
    """postMessage stores messages with increasing ts and thread_ts; update edits or 404s."""
    first = await sdk_client.chat_postMessage(channel="C1", text="card", blocks=[{"type": "divider"}])
    reply = await sdk_client.chat_postMessage(channel="C1", text="done", thread_ts=first["ts"])
    assert float(reply["ts"]) > float(first["ts"])
    assert reply["message"]["thread_ts"] == first["ts"]
    await sdk_client.chat_update(channel="C1", ts=first["ts"], text="card v2")
    assert [m["text"] for m in slack_fake.messages_in("C1")] == ["card v2", "done"]
    with pytest.raises(SlackApiError) as info:
        await sdk_client.chat_update(channel="C1", ts="1.000000", text="x")
    assert info.value.response["error"] == "message_not_found"
    eph = await sdk_client.chat_postEphemeral(channel="C1", user="U1", text="only you")
    assert eph["message_ts"] and slack_fake.ephemerals[0]["user"] == "U1"


async def test_slack_fake_views_dm_groups_lookup_and_socket_url(
    slack_fake: SlackFake, sdk_client: AsyncWebClient
) -> None:
    """views.*, conversations.open, usergroups, lookupByEmail and apps.connections.open work."""
    view = {"type": "modal", "title": {"type": "plain_text", "text": "Assign"}, "blocks": []}
    opened = await sdk_client.views_open(trigger_id="123.456", view=view)
    view_id = opened["view"]["id"]
    updated = await sdk_client.views_update(view_id=view_id, view={**view, "private_metadata": "m"})
    assert updated["view"]["private_metadata"] == "m" and updated["view"]["id"] == view_id
    assert (await sdk_client.views_push(trigger_id="1", view=view))["view"]["id"] != view_id
    assert (await sdk_client.conversations_open(users="U1"))["channel"]["id"] == "D1"
    slack_fake.add_usergroup("S1", ["U1", "U2"])
    assert (await sdk_client.usergroups_users_list(usergroup="S1"))["users"] == ["U1", "U2"]
    slack_fake.add_user("U7", email="Bob@Example.com")
    assert (await sdk_client.users_lookupByEmail(email="bob@example.com"))["user"]["id"] == "U7"
    with pytest.raises(SlackApiError) as info:
        await sdk_client.users_lookupByEmail(email="nobody@example.com")
    assert info.value.response["error"] == "users_not_found"
    app = AsyncWebClient(token=slack_fake.app_token, base_url=slack_fake.api_url)
    opened_ws = await app.apps_connections_open(app_token=slack_fake.app_token)
    assert opened_ws["url"] == f"ws://127.0.0.1:{slack_fake.port}/link"


async def test_slack_fake_faults_rate_limit_and_response_url(slack_fake: SlackFake, sdk_client: AsyncWebClient) -> None:
    """rate_limit answers 429 + Retry-After (retried by the SDK handler); fail answers an error."""
    slack_fake.rate_limit("chat.postMessage", retry_after=0)
    retrying = AsyncWebClient(
        token=slack_fake.token,
        base_url=slack_fake.api_url,
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=1)],
    )
    assert (await retrying.chat_postMessage(channel="C1", text="x"))["ok"]
    assert len(slack_fake.calls_to("chat.postMessage")) == 2
    slack_fake.rate_limit("chat.postMessage", retry_after=7)
    with pytest.raises(SlackApiError) as info:
        await sdk_client.chat_postMessage(channel="C1", text="x")
    assert info.value.response.status_code == 429
    assert info.value.response.headers["retry-after"] == "7"
    slack_fake.fail("chat.postMessage", error="channel_not_found")
    with pytest.raises(SlackApiError) as info:
        await sdk_client.chat_postMessage(channel="C1", text="x")
    assert info.value.response["error"] == "channel_not_found"
    assert (await sdk_client.chat_postMessage(channel="C1", text="x"))["ok"]

    async with aiohttp.ClientSession() as session:
        async with session.post(slack_fake.webhook_url("abc"), json={"text": "hi"}) as resp:
            assert await resp.text() == "ok"
    assert await slack_fake.wait_for_responses(1) == [{"text": "hi"}]


async def test_slack_fake_wait_for_is_bounded(slack_fake: SlackFake, sdk_client: AsyncWebClient) -> None:
    """wait_for returns once the calls arrive and fails with what it saw after the timeout."""
    task = asyncio.ensure_future(slack_fake.wait_for("chat.postMessage", count=2, timeout=2))
    await sdk_client.chat_postMessage(channel="C1", text="a")
    await sdk_client.chat_postMessage(channel="C1", text="b")
    assert len(await task) == 2
    with pytest.raises(AssertionError, match=r"waited 0\.05s for 1 x views\.open"):
        await slack_fake.wait_for("views.open", timeout=0.05)
