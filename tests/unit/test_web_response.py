"""The HTTP edge turns Bolt's answers into aiohttp's exactly as Bolt's own aiohttp adapter does."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.response import BoltResponse

from bot.web import _response

ACKS: list[dict[str, Any]] = [
    {},
    {"text": "Queued: assign dd:abc to <@U1> (job 0123456789ab)"},
    {"text": "ümlaut and emoji 🚨", "response_type": "ephemeral"},
    {"response_action": "errors", "errors": {"user": "Pick someone"}},
    {"blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "*x*"}}]},
]


async def _ack(kwargs: dict[str, Any]) -> BoltResponse:
    ack = AsyncAck()  # type: ignore[no-untyped-call]
    await ack(**kwargs)
    assert ack.response is not None
    return ack.response


async def _wire(resp: web.Response) -> tuple[int, str, str, bytes]:
    """What a client receives for ``resp``: served once over loopback."""

    async def handler(_: web.Request) -> web.Response:
        return resp

    app = web.Application()
    app.router.add_post("/", handler)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        got = await client.post("/")
        return got.status, got.headers.get("Content-Type", ""), got.headers.get("Content-Length", ""), await got.read()


@pytest.mark.parametrize("kwargs", ACKS)
async def test_an_ack_is_answered_as_the_adapter_answers_it(kwargs: dict[str, Any]) -> None:
    ours, theirs = await _response(await _ack(kwargs)), await to_aiohttp_response(await _ack(kwargs))
    assert await _wire(ours) == await _wire(theirs)


@pytest.mark.parametrize(
    "response",
    [
        BoltResponse(status=404, body="not found"),
        BoltResponse(status=401, body='{"error":"invalid request"}'),
        BoltResponse(status=200, body="", headers={}),
    ],
)
async def test_other_answers_match_too(response: BoltResponse) -> None:
    again = BoltResponse(status=response.status, body=response.body, headers=dict(response.headers))
    assert await _wire(await _response(response)) == await _wire(await to_aiohttp_response(again))


async def test_an_answer_with_more_headers_or_cookies_goes_through_the_adapter() -> None:
    response = BoltResponse(
        status=302,
        body="",
        headers={"Location": "https://example.com/done", "Set-Cookie": "slack-app-oauth-state=abc; Max-Age=600"},
    )
    ours = await _response(response)
    assert ours.status == 302 and ours.headers["Location"] == "https://example.com/done"
    assert ours.cookies["slack-app-oauth-state"].value == "abc"
