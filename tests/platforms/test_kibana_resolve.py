"""KibanaClient closing alerts, and its errors and retries, against the contract-checked fakes."""

from __future__ import annotations

import httpx
import pytest

from bot.errors import (
    PlatformAuthError,
    PlatformRejected,
    PlatformUnavailable,
)
from bot.models import Outcome, Platform, Target
from bot.platforms.kibana import CLOSE_REASONS, KibanaClient, parse_error
from tests.fakes.kibana import KibanaFake, make_kibana_config

SEARCH_KEYS = {
    "query", "aggs", "size", "track_total_hits", "_source", "fields",
    "runtime_mappings", "sort", "include_attacks",
}  # fmt: skip
UID = "u_new_analyst_0"


def kt(alert_id: str, space: str | None = None) -> Target:
    return Target(platform=Platform.KIBANA, id=alert_id, space=space)


# ---- resolve -------------------------------------------------------------------------------


async def test_resolve_without_reason_sends_no_reason(kibana_client: KibanaClient, kibana_fake: KibanaFake) -> None:
    """Closing without a reason sends signal_ids and status only."""
    kibana_fake.add_alert("a1", status="acknowledged")
    result = await kibana_client.resolve([kt("a1")])
    (item,) = result.items
    assert item.outcome is Outcome.DONE and (item.before, item.after) == ("acknowledged", "closed")
    (write,) = kibana_fake.writes()
    assert write.path == "/api/detection_engine/signals/status"
    assert write.body == {"signal_ids": ["a1"], "status": "closed"}
    assert kibana_fake.status("a1") == "closed"


async def test_resolve_with_reason_in_secops(kibana_client: KibanaClient, kibana_fake: KibanaFake) -> None:
    """A reason (case and spaces forgiven) is sent as the contract's enum value, in its space."""
    source = kibana_fake.add_alert("s1", space="secops")
    result = await kibana_client.resolve([kt("s1", "secops")], reason="False Positive")
    assert result.all_ok
    (write,) = kibana_fake.writes()
    assert write.path == "/s/secops/api/detection_engine/signals/status"
    assert write.body == {"signal_ids": ["s1"], "status": "closed", "reason": "false_positive"}
    assert source["kibana.alert.workflow_reason"] == "false_positive"


async def test_resolve_unknown_reason_reports_kibanas_400_with_the_defaults(
    kibana_client: KibanaClient, kibana_fake: KibanaFake
) -> None:
    """A reason the space does not know is sent once; Kibana's 400 text and the defaults are reported."""
    kibana_fake.add_alert("a1")
    result = await kibana_client.resolve([kt("a1")], reason="because")
    [item] = result.items
    assert (item.outcome, item.status) == (Outcome.FAILED, 400)
    assert item.detail.startswith("because is an invalid closing reason.")
    for reason in CLOSE_REASONS:
        assert reason in item.detail
    assert len(kibana_fake.writes()) == 1
    assert kibana_fake.status("a1") == "open"


async def test_resolve_with_a_custom_reason_of_the_space(kibana_client: KibanaClient, kibana_fake: KibanaFake) -> None:
    """Closing reasons are free strings: a custom one the space accepts is sent as given."""
    kibana_fake.add_alert("a1")
    kibana_fake.custom_close_reasons.add("Vendor Accepted")
    result = await kibana_client.resolve([kt("a1")], reason="Vendor Accepted")
    assert result.items[0].outcome is Outcome.DONE
    assert kibana_fake.writes()[0].body["reason"] == "Vendor Accepted"


async def test_resolve_with_the_recorded_default_automated_closure(
    kibana_client: KibanaClient, kibana_fake: KibanaFake
) -> None:
    """automated_closure (recorded on 9.5.2, not in the contract's old enum) closes the alert."""
    kibana_fake.add_alert("a1")
    result = await kibana_client.resolve([kt("a1")], reason="Automated Closure")
    assert result.items[0].outcome is Outcome.DONE
    assert kibana_fake.alerts["default"]["a1"]["kibana.alert.workflow_reason"] == "automated_closure"


async def test_resolve_already_closed_is_skipped(kibana_client: KibanaClient, kibana_fake: KibanaFake) -> None:
    """A closed alert is SKIPPED "already closed" and not written; missing ones are NOT_FOUND."""
    kibana_fake.add_alert("a1", status="closed")
    result = await kibana_client.resolve([kt("a1"), kt("gone")])
    assert [(i.outcome, i.detail) for i in result.items] == [
        (Outcome.SKIPPED, "already closed"),
        (Outcome.NOT_FOUND, "no such alert in space 'default'"),
    ]
    assert kibana_fake.writes() == []


async def test_resolve_comment_is_kept_in_slack_only(kibana_client: KibanaClient, kibana_fake: KibanaFake) -> None:
    """A comment is never sent to Kibana and every result says it was kept in Slack only."""
    kibana_fake.add_alert("a1")
    kibana_fake.add_alert("a2", status="closed")
    result = await kibana_client.resolve([kt("a1"), kt("a2")], comment="benign admin script")
    assert all("comment kept in Slack only" in i.detail for i in result.items)
    assert "benign" not in str(kibana_fake.writes()[0].body)


async def test_resolve_partial_update_rereads(kibana_client: KibanaClient, kibana_fake: KibanaFake) -> None:
    """A status write that updates fewer than sent is checked alert by alert."""
    kibana_fake.add_alert("a1")
    kibana_fake.add_alert("a2")
    # The 409 aborts the update at a2 (a1 before it stays closed), on the retry too.
    kibana_fake.conflict("a2", times=2)
    result = await kibana_client.resolve([kt("a1"), kt("a2")])
    assert [i.outcome for i in result.items] == [Outcome.DONE, Outcome.FAILED]
    assert result.items[1].after == "open"
    assert "version conflict (409) twice" in result.items[1].detail
    assert len(kibana_fake.writes()) == 2


async def test_resolve_conflict_once_is_retried(kibana_client: KibanaClient, kibana_fake: KibanaFake) -> None:
    """One 409 (a concurrent write) is retried once and then both alerts close."""
    kibana_fake.add_alert("a1")
    kibana_fake.add_alert("a2")
    kibana_fake.conflict("a1")
    result = await kibana_client.resolve([kt("a1"), kt("a2")])
    assert [i.outcome for i in result.items] == [Outcome.DONE, Outcome.DONE]
    assert len(kibana_fake.writes()) == 2


# ---- errors, retries -----------------------------------------------------------------------


async def test_400_array_message_on_write_is_a_failed_item(
    kibana_client: KibanaClient, kibana_fake: KibanaFake
) -> None:
    """A SIEM-style 400 with an array message fails the items with the joined vendor message."""
    kibana_fake.add_alert("a1", assignees=["u_old"])
    body = {"message": ["first problem", "second problem"], "status_code": 400}
    kibana_fake.fail("/signals/assignees", 400, body=body)
    (item,) = (await kibana_client.assign([kt("a1")], UID)).items
    assert item.outcome is Outcome.FAILED and item.status == 400
    assert item.detail == "first problem; second problem"
    assert kibana_fake.assignees("a1") == ["u_old"]


async def test_401_on_read_raises_auth_error_with_message(kibana_fake: KibanaFake) -> None:
    """A wrong API key gets Kibana's 401, raised as PlatformAuthError with its message."""
    config = make_kibana_config(kibana_fake)
    config.api_key = type(config.api_key)("wrong-key")
    client = KibanaClient(config)
    try:
        with pytest.raises(PlatformAuthError, match="unable to authenticate") as caught:
            await client.fetch([kt("a1")])
    finally:
        await client.aclose()
    assert caught.value.status == 401
    assert "wrong-key" not in str(caught.value)
    assert len(kibana_fake.requests) == 1  # 4xx is never retried


async def test_403_on_write_fails_items_with_platform_message(
    kibana_client: KibanaClient, kibana_fake: KibanaFake
) -> None:
    """A 403 PlatformErrorResponse on the status write fails each item naming the privilege, then Kibana's message."""
    kibana_fake.add_alert("a1")
    message = "API [POST /api/detection_engine/signals/status] is unauthorized for the current user"
    kibana_fake.fail("/signals/status", 403, body={"statusCode": 403, "error": "Forbidden", "message": message})
    (item,) = (await kibana_client.resolve([kt("a1")])).items
    lacks = "Kibana refused (403): the API key lacks the Security › Alerts: All privilege (`ALERTS_API_ALL`)"
    assert (item.outcome, item.status, item.detail) == (Outcome.FAILED, 403, f"{lacks} — Kibana said: {message}")
    assert kibana_fake.status("a1") == "open"


async def test_400_on_search_raises_rejected(kibana_client: KibanaClient, kibana_fake: KibanaFake) -> None:
    """A 400 on a read is raised as PlatformRejected carrying the message."""
    kibana_fake.fail("/signals/search", 400, body={"statusCode": 400, "error": "Bad Request", "message": "bad q"})
    with pytest.raises(PlatformRejected, match="bad q"):
        await kibana_client.fetch([kt("a1")])


async def test_500_string_message_retried_then_unavailable(
    kibana_client: KibanaClient, kibana_fake: KibanaFake
) -> None:
    """Repeated 500s are retried up to the budget, then raised as PlatformUnavailable."""
    kibana_fake.fail(
        "/signals/search",
        500,
        body={"message": "Internal Server Error", "status_code": 500},
        times=10,
    )
    with pytest.raises(PlatformUnavailable, match="Internal Server Error") as caught:
        await kibana_client.fetch([kt("a1")])
    assert caught.value.status == 500
    assert kibana_client.call_counts()["search"] == 4


async def test_500_on_write_fails_items_but_other_space_succeeds(
    kibana_client: KibanaClient, kibana_fake: KibanaFake
) -> None:
    """One space's failing write does not hide another space's confirmed success."""
    kibana_fake.add_alert("a1")
    kibana_fake.add_alert("s1", space="secops")
    kibana_fake.fail(
        "/s/secops/api/detection_engine/signals/status",
        500,
        body={"message": "boom", "status_code": 500},
        times=10,
    )
    result = await kibana_client.resolve([kt("a1"), kt("s1", "secops")])
    assert [(i.outcome, i.status) for i in result.items] == [
        (Outcome.DONE, None),
        (Outcome.FAILED, 500),
    ]
    assert "boom" in result.items[1].detail


async def test_429_then_success(kibana_client: KibanaClient, kibana_fake: KibanaFake) -> None:
    """A 429 (Retry-After honoured) is retried and the second attempt succeeds."""
    kibana_fake.add_alert("a1")
    kibana_fake.fail(
        "/signals/search",
        429,
        body={
            "statusCode": 429,
            "error": "Too Many Requests",
            "message": "es_rejected_execution_exception",
        },
        headers={"Retry-After": "0"},
    )
    states = await kibana_client.fetch([kt("a1")])
    assert list(states) == [kt("a1")]
    assert kibana_client.call_counts()["search"] == 2


async def test_dropped_connection_on_write_is_retried(kibana_client: KibanaClient, kibana_fake: KibanaFake) -> None:
    """A connection dropped mid-write is retried (the write is idempotent) and confirmed."""
    kibana_fake.add_alert("a1", assignees=["u_old"])
    kibana_fake.fail("/signals/assignees", drop=True)
    (item,) = (await kibana_client.assign([kt("a1")], UID)).items
    assert item.outcome is Outcome.DONE
    assert len(kibana_fake.writes()) == 2
    assert kibana_fake.assignees("a1") == [UID]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"statusCode": 400, "error": "Bad Request", "message": "plain"}, "plain"),
        ({"status_code": 400, "message": ["one", "two"]}, "one; two"),
        ({"status_code": 500, "message": "Internal Server Error"}, "Internal Server Error"),
        ({"error": {"type": "security_exception", "reason": "nope"}, "status": 403}, "nope"),
        ("<html>gateway</html>", "<html>gateway</html>"),
    ],
)
def test_parse_error_shapes(body: object, expected: str) -> None:
    """Both Kibana error shapes (string or array message), ES errors and text bodies are read."""
    response = httpx.Response(400, json=body) if isinstance(body, dict) else httpx.Response(502, text=str(body))
    assert parse_error(response) == expected
