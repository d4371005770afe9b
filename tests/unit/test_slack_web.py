"""``bot.slack_web.SlackWeb`` against the fake Slack Web API on loopback: how each call goes
out, which failures are sent again and which never are, and what reaches the caller."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from bot.slack_web import SlackApiError, SlackRequestError, SlackWeb
from tests.fakes.slack import SlackFake


@pytest_asyncio.fixture
async def silent_port() -> AsyncIterator[tuple[int, list[int]]]:
    """A loopback port that accepts connections and never answers; counts the connections."""
    seen: list[int] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(1)
        try:
            await reader.read(65536)
            await asyncio.sleep(5)
        finally:
            writer.close()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], seen
    finally:
        server.close()


async def test_writes_go_as_json_reads_as_query_strings_the_rest_as_forms(
    slack_fake: SlackFake, slack_client: SlackWeb
) -> None:
    """chat.postMessage is a JSON post, users.info a GET, conversations.open a form post; the
    token is in the Authorization header and nowhere else."""
    slack_fake.add_user("U7", email="bob@example.com")
    posted = await slack_client.chat_postMessage(channel="C1", text="hi", blocks=[{"type": "divider"}], thread_ts=None)
    assert posted["ok"] and posted.status_code == 200
    await slack_client.users_info(user="U7")
    await slack_client.conversations_open(users="U7")
    post, info, opened = slack_fake.calls[-3:]
    assert post.args == {"channel": "C1", "text": "hi", "blocks": [{"type": "divider"}]}  # no None sent
    assert post.headers["content-type"].startswith("application/json")
    assert info.method == "users.info" and info.args == {"user": "U7"}
    assert opened.headers["content-type"].startswith("application/x-www-form-urlencoded")
    for call in (post, info, opened):
        assert call.headers["authorization"] == f"Bearer {slack_fake.token}"
        assert slack_fake.token not in json.dumps(call.args)


async def test_a_refusal_carries_slacks_error_status_and_headers(slack_fake: SlackFake, slack_client: SlackWeb) -> None:
    """ok: false is a SlackApiError with the answer; nothing is sent twice."""
    slack_fake.fail("chat.update", error="message_not_found")
    with pytest.raises(SlackApiError) as info:
        await slack_client.chat_update(channel="C1", ts="1.000000", text="x")
    assert info.value.response["error"] == "message_not_found"
    assert info.value.response.get("ok") is False and info.value.response.status_code == 200
    assert len(slack_fake.calls_to("chat.update")) == 1


async def test_a_429_is_sent_again_after_retry_after_unless_the_caller_honours_it(
    slack_fake: SlackFake, slack_client: SlackWeb
) -> None:
    """The general client waits out a 429 and tries again; the intake poster's client (no 429
    retries) gets the 429 back at once with its Retry-After, to honour per channel."""
    slack_fake.rate_limit("chat.postMessage", times=1, retry_after=0)
    assert (await slack_client.chat_postMessage(channel="C1", text="a"))["ok"]
    assert len(slack_fake.calls_to("chat.postMessage")) == 2
    poster = slack_client.with_options(timeout=3, rate_limit_retries=0, server_error_retries=0)
    slack_fake.rate_limit("chat.postMessage", times=1, retry_after=7)
    with pytest.raises(SlackApiError) as info:
        await poster.chat_postMessage(channel="C1", text="b")
    assert info.value.response.status_code == 429 and info.value.response.headers["retry-after"] == "7"
    assert len(slack_fake.calls_to("chat.postMessage")) == 3
    await poster.aclose()  # shares the pool: closing it leaves the general client working
    assert (await slack_client.auth_test())["ok"]


async def test_a_5xx_is_sent_twice_more_then_given_back(slack_fake: SlackFake, slack_client: SlackWeb) -> None:
    """Two 503s then an answer: the answer; three 503s: a SlackApiError with status 503."""
    slack_fake.server_error("users.info", times=2)
    slack_fake.add_user("U7", email="bob@example.com")
    assert (await slack_client.users_info(user="U7"))["user"]["id"] == "U7"
    assert len(slack_fake.calls_to("users.info")) == 3
    slack_fake.server_error("users.info", times=3)
    with pytest.raises(SlackApiError) as info:
        await slack_client.users_info(user="U7")
    assert info.value.response.status_code == 503
    assert len(slack_fake.calls_to("users.info")) == 6


async def test_a_refused_connection_is_retried_then_a_request_error(unused_tcp_port: int) -> None:
    """Nothing listening: retried (the request never went out), then a SlackRequestError."""
    async with SlackWeb("xoxb-x", f"http://127.0.0.1:{unused_tcp_port}/api/") as slack:
        with pytest.raises(SlackRequestError, match=r"chat\.postMessage: ConnectError"):
            await slack.chat_postMessage(channel="C1", text="x")


async def test_a_post_that_may_have_landed_is_never_sent_again(silent_port: tuple[int, list[int]]) -> None:
    """Sent, then no answer within the timeout: one attempt only, so a card cannot appear twice."""
    port, seen = silent_port
    async with SlackWeb("xoxb-x", f"http://127.0.0.1:{port}/api/", timeout=0.3) as slack:
        with pytest.raises(SlackRequestError, match=r"no answer from Slack for chat\.postMessage"):
            await slack.chat_postMessage(channel="C1", text="x")
    assert seen == [1]


async def test_respond_posts_to_the_response_url_and_reports_a_refusal(
    slack_fake: SlackFake, slack_client: SlackWeb
) -> None:
    """A response_url post carries no token; an expired URL's 404 comes back as the status."""
    assert await slack_client.respond(slack_fake.webhook_url("r1"), {"text": "done", "blocks": None}) == 200
    assert await slack_fake.wait_for_responses(1) == [{"text": "done"}]
    assert await slack_client.respond(f"http://127.0.0.1:{slack_fake.port}/gone", {"text": "x"}) == 404
