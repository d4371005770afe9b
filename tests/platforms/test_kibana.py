"""KibanaClient against the contract-checked Kibana and Elasticsearch fakes on 127.0.0.1."""

from __future__ import annotations

import httpx
import pytest

from bot.errors import (
    ConfigError,
    PlatformAuthError,
    PlatformRejected,
    PlatformUnavailable,
    UsageError,
)
from bot.models import Outcome, Platform, Target
from bot.platforms.base import PlatformClient
from bot.platforms.kibana import CLOSE_REASONS, KibanaClient, parse_error
from bot.store.mappings import validate_identity
from tests.fakes.kibana import ElasticsearchFake, KibanaFake, make_kibana_config

SEARCH_KEYS = {
    "query", "aggs", "size", "track_total_hits", "_source", "fields",
    "runtime_mappings", "sort", "include_attacks",
}  # fmt: skip
UID = "u_new_analyst_0"


def kt(alert_id: str, space: str | None = None) -> Target:
    return Target(platform=Platform.KIBANA, id=alert_id, space=space)


# ---- construction, validation -----------------------------------------------------------


async def test_client_satisfies_protocol_and_sends_kibana_headers(
    kibana_client: KibanaClient, kibana_fake: KibanaFake
) -> None:
    """The client is a PlatformClient and every request carries ApiKey, kbn-xsrf and the version."""
    assert isinstance(kibana_client, PlatformClient)
    kibana_fake.add_alert("a1")
    await kibana_client.fetch([kt("a1")])
    headers = kibana_fake.requests[0].headers
    assert headers["authorization"] == f"ApiKey {kibana_fake.api_key}"
    assert headers["kbn-xsrf"] == "true"
    assert headers["elastic-api-version"] == "2023-10-31"


@pytest.mark.parametrize("bad", ["", "   ", "abc def", "a/b", "x" * 513, "id;drop"])
async def test_validate_id_refuses_malformed_ids(kibana_client: KibanaClient, bad: str) -> None:
    """Empty ids, whitespace, odd characters and over-long ids are UsageErrors."""
    with pytest.raises(UsageError):
        kibana_client.validate_id(bad)


async def test_validate_id_accepts_real_ids(kibana_client: KibanaClient) -> None:
    """A sha256 alert id and an ES auto id are accepted (stripped)."""
    sha = "681c2a707335aa7df5f349b70013d87254746191712ecf0ced9b3e2d538503a6"
    assert kibana_client.validate_id(f"  {sha} ") == sha
    assert kibana_client.validate_id("Xk3_-aB9QzP0") == "Xk3_-aB9QzP0"


@pytest.mark.parametrize("bad", ["SecOps", "sec ops", "../x", "a/b", ""])
async def test_bad_space_refused_before_any_request(
    kibana_client: KibanaClient, kibana_fake: KibanaFake, bad: str
) -> None:
    """A target whose space is not a Kibana space id is a UsageError with no request sent."""
    with pytest.raises(UsageError):
        kibana_client.validate_space(bad)
    if bad:
        with pytest.raises(UsageError, match="space"):
            await kibana_client.fetch([kt("a1", bad)])
    assert kibana_fake.requests == []


async def test_bad_configured_space_is_refused(kibana_fake: KibanaFake) -> None:
    """A configured space outside Kibana's charset fails at construction."""
    with pytest.raises(ConfigError, match="Bad Space"):
        KibanaClient(make_kibana_config(kibana_fake, spaces=["default", "Bad Space"]))


# ---- fetch ---------------------------------------------------------------------------------


async def test_fetch_parses_alerts_per_space_and_omits_absent(
    kibana_client: KibanaClient, kibana_fake: KibanaFake
) -> None:
    """Fetch searches each space once, parses the source and leaves unknown ids out."""
    kibana_fake.add_alert("a1", rule_name="Malware", severity="high", assignees=["u_1", "u_2"])
    kibana_fake.add_alert("s1", space="secops", status="acknowledged")
    kibana_fake.add_alert("s2", space="secops")  # exists only in secops
    states = await kibana_client.fetch([kt("a1"), kt("s1", "secops"), kt("zz"), kt("s2", "default")])
    assert set(states) == {kt("a1"), kt("s1", "secops")}
    a1 = states[kt("a1")]
    assert (a1.title, a1.severity, a1.status, a1.assignees) == (
        "Malware",
        "high",
        "open",
        ["u_1", "u_2"],
    )
    assert a1.link == (f"{kibana_fake.url}/app/security/alerts/redirect/a1?index=.alerts-security.alerts-default")
    s1 = states[kt("s1", "secops")]
    assert s1.status == "acknowledged" and s1.assignees == []
    assert s1.link == (
        f"{kibana_fake.url}/s/secops/app/security/alerts/redirect/s1?index=.alerts-security.alerts-secops"
    )
    searches = kibana_fake.calls("/signals/search")
    assert sorted(r.path for r in searches) == [
        "/api/detection_engine/signals/search",
        "/s/secops/api/detection_engine/signals/search",
    ]
    for r in searches:
        assert set(r.body) <= SEARCH_KEYS


async def test_fetch_batches_large_id_lists(kibana_fake: KibanaFake) -> None:
    """More ids than the batch size are searched in several requests."""
    for i in range(5):
        kibana_fake.add_alert(f"a{i}")
    client = KibanaClient(make_kibana_config(kibana_fake), batch_size=2)
    try:
        states = await client.fetch([kt(f"a{i}") for i in range(5)])
    finally:
        await client.aclose()
    assert len(states) == 5
    assert [len(r.body["query"]["ids"]["values"]) for r in kibana_fake.calls("/signals/search")] == [
        2,
        2,
        1,
    ]


async def test_default_space_other_than_default_gets_prefix(kibana_fake: KibanaFake) -> None:
    """A target without a space goes to the default space, prefixed when not "default"."""
    kibana_fake.add_alert("x1", space="secops")
    client = KibanaClient(make_kibana_config(kibana_fake, default_space="secops"))
    try:
        states = await client.fetch([kt("x1")])
    finally:
        await client.aclose()
    assert list(states) == [kt("x1")]
    assert kibana_fake.requests[0].path.startswith("/s/secops/")


# ---- assign / unassign ---------------------------------------------------------------------


async def test_assign_is_one_reassignment_request(kibana_client: KibanaClient, kibana_fake: KibanaFake) -> None:
    """Assign adds the uid and removes every other assignee in one request, uid never in both."""
    kibana_fake.add_alert("a1", assignees=["u_old"])
    kibana_fake.add_alert("a2", assignees=["u_other", UID])
    kibana_fake.add_alert("a3")
    result = await kibana_client.assign([kt("a1"), kt("a2"), kt("a3")], UID, user_name="Ana")
    assert [i.outcome for i in result.items] == [Outcome.DONE] * 3
    assert [(i.before, i.after) for i in result.items] == [
        ("u_old", UID),
        (f"u_other,{UID}", UID),
        ("", UID),
    ]
    assert "Ana" in result.items[0].detail
    (write,) = kibana_fake.writes()
    assert write.body == {
        "assignees": {"add": [UID], "remove": ["u_old", "u_other"]},
        "ids": ["a1", "a2", "a3"],
    }
    assert not set(write.body["assignees"]["add"]) & set(write.body["assignees"]["remove"])
    assert [kibana_fake.assignees(a) for a in ("a1", "a2", "a3")] == [[UID]] * 3


async def test_assign_skips_alerts_already_assigned_exactly(
    kibana_client: KibanaClient, kibana_fake: KibanaFake
) -> None:
    """An alert assigned to exactly the uid is SKIPPED and nothing is written."""
    kibana_fake.add_alert("a1", assignees=[UID])
    result = await kibana_client.assign([kt("a1")], UID)
    (item,) = result.items
    assert item.outcome is Outcome.SKIPPED
    assert item.detail == f"already assigned to {UID}"
    assert kibana_fake.writes() == []


async def test_assign_id_from_another_space_is_not_found_and_never_written(
    kibana_client: KibanaClient, kibana_fake: KibanaFake
) -> None:
    """An id the target's space does not hold is NOT_FOUND, and no write is sent for it."""
    kibana_fake.add_alert("s1", space="secops", assignees=["u_old"])
    kibana_fake.add_alert("a1")
    result = await kibana_client.assign([kt("s1"), kt("a1")], UID)
    assert result.for_target(kt("s1")).outcome is Outcome.NOT_FOUND  # type: ignore[union-attr]
    assert result.for_target(kt("a1")).outcome is Outcome.DONE  # type: ignore[union-attr]
    (write,) = kibana_fake.writes()
    assert write.body["ids"] == ["a1"]
    assert kibana_fake.assignees("s1", "secops") == ["u_old"]


async def test_assign_mixed_spaces_one_request_per_space(kibana_client: KibanaClient, kibana_fake: KibanaFake) -> None:
    """Targets in two spaces lead to exactly one write per space, each at its own path."""
    for i in range(2):
        kibana_fake.add_alert(f"d{i}", assignees=["u_x"])
        kibana_fake.add_alert(f"s{i}", space="secops", assignees=["u_y"])
    targets = [kt("d0"), kt("s0", "secops"), kt("d1"), kt("s1", "secops")]
    result = await kibana_client.assign(targets, UID)
    assert result.all_ok and [i.target for i in result.items] == targets
    writes = {w.path: w.body for w in kibana_fake.writes()}
    assert writes == {
        "/api/detection_engine/signals/assignees": {
            "assignees": {"add": [UID], "remove": ["u_x"]},
            "ids": ["d0", "d1"],
        },
        "/s/secops/api/detection_engine/signals/assignees": {
            "assignees": {"add": [UID], "remove": ["u_y"]},
            "ids": ["s0", "s1"],
        },
    }


async def test_assign_batches_writes(kibana_fake: KibanaFake) -> None:
    """Writes are split into batches of at most batch_size ids."""
    for i in range(3):
        kibana_fake.add_alert(f"a{i}")
    client = KibanaClient(make_kibana_config(kibana_fake), batch_size=2)
    try:
        result = await client.assign([kt(f"a{i}") for i in range(3)], UID)
    finally:
        await client.aclose()
    assert result.all_ok
    assert [w.body["ids"] for w in kibana_fake.writes()] == [["a0", "a1"], ["a2"]]


async def test_assign_partial_update_is_reported_per_alert(
    kibana_client: KibanaClient, kibana_fake: KibanaFake
) -> None:
    """When Kibana updates fewer than sent, the client re-reads and fails only the missed alert."""
    kibana_fake.add_alert("a1", assignees=["u_old"])
    kibana_fake.add_alert("a2", assignees=["u_old"])
    kibana_fake.conflict_ids.add("a2")
    result = await kibana_client.assign([kt("a1"), kt("a2")], UID)
    a1, a2 = result.items
    assert a1.outcome is Outcome.DONE
    assert a2.outcome is Outcome.FAILED
    assert "version conflict" in a2.detail
    assert (a2.before, a2.after) == ("u_old", "u_old")
    # the read before, the write, and the re-read
    assert len(kibana_fake.calls("/signals/search")) == 2


async def test_assign_invalid_uid_refused_before_any_request(
    kibana_client: KibanaClient, kibana_fake: KibanaFake
) -> None:
    """A malformed profile uid is a UsageError with no request sent."""
    with pytest.raises(UsageError):
        await kibana_client.assign([kt("a1")], "not a uid")
    assert kibana_fake.requests == []


async def test_unassign_removes_everyone_and_skips_unassigned(
    kibana_client: KibanaClient, kibana_fake: KibanaFake
) -> None:
    """Unassign removes all current assignees in one write; an alert with none is SKIPPED."""
    kibana_fake.add_alert("a1", assignees=["u_1", "u_2"])
    kibana_fake.add_alert("a2", assignees=["u_3"])
    kibana_fake.add_alert("a3")
    result = await kibana_client.unassign([kt("a1"), kt("a2"), kt("a3")])
    assert [i.outcome for i in result.items] == [Outcome.DONE, Outcome.DONE, Outcome.SKIPPED]
    assert result.items[2].detail == "already unassigned"
    assert result.items[0].before == "u_1,u_2"
    (write,) = kibana_fake.writes()
    assert write.body == {
        "assignees": {"add": [], "remove": ["u_1", "u_2", "u_3"]},
        "ids": ["a1", "a2"],
    }
    assert kibana_fake.assignees("a1") == [] and kibana_fake.assignees("a2") == []


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


async def test_resolve_invalid_reason_refused_with_zero_requests(
    kibana_client: KibanaClient, kibana_fake: KibanaFake
) -> None:
    """An unknown reason is a UsageError listing every valid reason, before any request."""
    kibana_fake.add_alert("a1")
    with pytest.raises(UsageError) as caught:
        await kibana_client.resolve([kt("a1")], reason="because")
    for reason in CLOSE_REASONS:
        assert reason in caught.value.message
    assert kibana_fake.requests == []


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
    kibana_fake.conflict_ids.add("a1")
    result = await kibana_client.resolve([kt("a1"), kt("a2")])
    assert [i.outcome for i in result.items] == [Outcome.FAILED, Outcome.DONE]
    assert result.items[0].after == "open"


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
    """A 403 PlatformErrorResponse on the status write fails each item with its message."""
    kibana_fake.add_alert("a1")
    message = "API [POST /api/detection_engine/signals/status] is unauthorized for the current user"
    kibana_fake.fail("/signals/status", 403, body={"statusCode": 403, "error": "Forbidden", "message": message})
    (item,) = (await kibana_client.resolve([kt("a1")])).items
    assert (item.outcome, item.status, item.detail) == (Outcome.FAILED, 403, message)
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


# ---- list_assigned -------------------------------------------------------------------------


async def test_list_assigned_across_spaces_and_pages(
    kibana_fake: KibanaFake, elasticsearch_fake: ElasticsearchFake
) -> None:
    """Open/acknowledged alerts of the uid are listed from every space, page by page."""
    for i in range(3):
        kibana_fake.add_alert(f"d{i}", assignees=[UID, "u_x"], status=("open", "acknowledged")[i % 2])
    kibana_fake.add_alert("d-closed", assignees=[UID], status="closed")
    kibana_fake.add_alert("d-other", assignees=["u_x"])
    kibana_fake.add_alert("s0", space="secops", assignees=[UID])
    kibana_fake.add_alert("s1", space="secops", assignees=[UID], status="in-progress")
    kibana_fake.add_alert("elsewhere", space="other", assignees=[UID])
    config = make_kibana_config(kibana_fake, elasticsearch_fake, spaces=["default", "secops"])
    client = KibanaClient(config, page_size=2)
    try:
        items = await client.list_assigned(UID)
        limited = await client.list_assigned(UID, limit=3)
    finally:
        await client.aclose()
    assert [i.target for i in items] == [
        kt("d0", "default"),
        kt("d1", "default"),
        kt("d2", "default"),
        kt("s0", "secops"),
        kt("s1", "secops"),
    ]
    assert items[1].status == "acknowledged" and UID in items[0].assignees
    assert items[3].link is not None and "/s/secops/" in items[3].link
    searches = kibana_fake.calls("/signals/search")
    # default: a full page then a short one; secops: a full page then an empty one; then limit=3
    assert [r.path.startswith("/s/secops/") for r in searches[:4]] == [False, False, True, True]
    for r in searches:
        assert set(r.body) <= SEARCH_KEYS
    assert len(limited) == 3 and len(searches) == 6


async def test_list_assigned_invalid_uid(kibana_client: KibanaClient, kibana_fake: KibanaFake) -> None:
    """A malformed uid is refused before any search."""
    with pytest.raises(UsageError):
        await kibana_client.list_assigned("bad uid!")
    assert kibana_fake.requests == []


@pytest.mark.parametrize("bad", ["u_short", "alice", "a/b", "alice@example.com"])
async def test_uid_rule_is_the_mapping_store_rule(
    kibana_client: KibanaClient, kibana_fake: KibanaFake, bad: str
) -> None:
    """The client refuses exactly the uids the mapping store refuses, with the same message, before any request."""
    with pytest.raises(UsageError) as by_client:
        await kibana_client.list_assigned(bad)
    with pytest.raises(UsageError) as by_store:
        validate_identity(Platform.KIBANA, bad)
    assert by_client.value.message == by_store.value.message
    assert kibana_fake.requests == []


# ---- identities ----------------------------------------------------------------------------


async def test_find_user_by_email_exact_match_among_decoys(
    kibana_client: KibanaClient, elasticsearch_fake: ElasticsearchFake
) -> None:
    """Only the enabled profile whose email equals the address (any case) is returned."""
    elasticsearch_fake.add_profile("u_decoy1", email="bigjack@example.com", username="jack@example.com")
    elasticsearch_fake.add_profile("u_decoy2", email="jack@example.com.evil", username="jack2")
    elasticsearch_fake.add_profile("u_jack", email="Jack@Example.com", username="jack", full_name="Jack N")
    user = await kibana_client.find_user_by_email("jack@example.com")
    assert user is not None
    assert (user.platform, user.id, user.name, user.active) == (
        Platform.KIBANA,
        "u_jack",
        "Jack N",
        True,
    )
    (call,) = elasticsearch_fake.calls("/_suggest")
    assert call.method == "POST" and call.body == {"name": "jack@example.com", "size": 5}
    assert call.headers["authorization"] == f"ApiKey {elasticsearch_fake.api_key}"
    # the fake ranked decoys first: the client had to filter, not take the top hit
    assert kibana_client.call_counts()["es.profile_suggest"] == 1


async def test_find_user_by_email_disabled_profile_is_none(
    kibana_client: KibanaClient, elasticsearch_fake: ElasticsearchFake
) -> None:
    """An exact match on a disabled profile, with only decoys otherwise, finds nobody."""
    elasticsearch_fake.add_profile("u_off", email="ana@example.com", username="ana", enabled=False)
    elasticsearch_fake.add_profile("u_decoy", email="ana@example.co", username="ana2")
    assert await kibana_client.find_user_by_email("ana@example.com") is None


async def test_find_user_without_elasticsearch_is_none(kibana_fake: KibanaFake) -> None:
    """Without Elasticsearch configured the look-up returns None and sends nothing."""
    client = KibanaClient(make_kibana_config(kibana_fake))
    try:
        assert await client.find_user_by_email("ana@example.com") is None
        user = await client.get_user("u_unverified_0")
    finally:
        await client.aclose()
    assert user is not None and user.id == "u_unverified_0" and user.email is None
    assert kibana_fake.requests == []


async def test_find_user_bad_email_is_usage_error(kibana_client: KibanaClient) -> None:
    """A string that is not an email is refused before any call."""
    with pytest.raises(UsageError):
        await kibana_client.find_user_by_email("not an email")


async def test_get_user_found_missing_and_404(
    kibana_client: KibanaClient, elasticsearch_fake: ElasticsearchFake
) -> None:
    """get_user returns the profile, None for an unknown uid (empty list or 404)."""
    elasticsearch_fake.add_profile("u_ana_0", email="ana@example.com", username="ana", enabled=False)
    user = await kibana_client.get_user("u_ana_0")
    assert user is not None and user.email == "ana@example.com" and user.name == "ana"
    assert user.active is False
    assert await kibana_client.get_user("u_gone_0") is None
    elasticsearch_fake.fail("/_security/profile/u_old_0", 404, body={})
    assert await kibana_client.get_user("u_old_0") is None


async def test_elasticsearch_auth_failure_raises(
    kibana_fake: KibanaFake, elasticsearch_fake: ElasticsearchFake
) -> None:
    """A wrong ES key is a PlatformAuthError with the ES reason."""
    client = KibanaClient(make_kibana_config(kibana_fake, elasticsearch_fake))
    elasticsearch_fake.api_key = "rotated-key"  # the client still sends the old one
    try:
        with pytest.raises(PlatformAuthError, match="unable to authenticate"):
            await client.find_user_by_email("ana@example.com")
    finally:
        await client.aclose()


# ---- check, fake behaviour -----------------------------------------------------------------


async def test_check_reports_alert_count(kibana_client: KibanaClient, kibana_fake: KibanaFake) -> None:
    """check() runs a size-0 search in the default space and reports the count."""
    kibana_fake.add_alert("a1")
    kibana_fake.add_alert("a2")
    text = await kibana_client.check()
    assert "2 alerts in space default" in text
    (call,) = kibana_fake.requests
    assert call.body == {"size": 0, "track_total_hits": True}


async def _raw_post(fake: KibanaFake, path: str, body: object, **headers: str) -> httpx.Response:
    base = {"Authorization": f"ApiKey {fake.api_key}", "kbn-xsrf": "true"}
    base.update(headers)
    async with httpx.AsyncClient(base_url=fake.url) as http:
        return await http.post(path, json=body, headers={k: v for k, v in base.items() if v})


async def test_fake_rejects_post_without_kbn_xsrf(kibana_fake: KibanaFake) -> None:
    """The fake answers a POST without kbn-xsrf with Kibana's own 400 and records the violation."""
    kibana_fake.add_alert("a1")
    response = await _raw_post(kibana_fake, "/api/detection_engine/signals/search", {"size": 1}, **{"kbn-xsrf": ""})
    assert response.status_code == 400
    assert response.json() == {
        "statusCode": 400,
        "error": "Bad Request",
        "message": "Request must contain a kbn-xsrf header.",
    }
    assert kibana_fake.violations == ["POST /api/detection_engine/signals/search: missing kbn-xsrf header"]
    kibana_fake.violations.clear()


async def test_fake_refuses_uid_in_add_and_remove(kibana_fake: KibanaFake) -> None:
    """The fake answers a uid in both lists with the SIEM 400 whose message is an array."""
    kibana_fake.add_alert("a1")
    body = {"assignees": {"add": ["u1"], "remove": ["u1"]}, "ids": ["a1"]}
    response = await _raw_post(kibana_fake, "/api/detection_engine/signals/assignees", body)
    assert response.status_code == 400
    assert response.json() == {
        "message": ['Duplicate assignees ["u1"] were found in the add and remove parameters.'],
        "status_code": 400,
    }
    assert parse_error(response).startswith("Duplicate assignees")


async def test_fake_other_space_ids_update_nothing(kibana_fake: KibanaFake) -> None:
    """The fake answers ids from another space with 200 and updated 0, like Kibana."""
    kibana_fake.add_alert("s1", space="secops")
    body = {"signal_ids": ["s1"], "status": "closed"}
    response = await _raw_post(kibana_fake, "/api/detection_engine/signals/status", body)
    assert response.status_code == 200
    assert (response.json()["total"], response.json()["updated"]) == (0, 0)
    assert kibana_fake.status("s1", "secops") == "open"


async def test_fake_contract_rejects_empty_ids(kibana_fake: KibanaFake) -> None:
    """An empty ids list breaks the contract (minItems 1) and is recorded as a violation."""
    body = {"assignees": {"add": ["u1"], "remove": []}, "ids": []}
    response = await _raw_post(kibana_fake, "/api/detection_engine/signals/assignees", body)
    assert response.status_code == 400
    assert len(kibana_fake.violations) == 1
    kibana_fake.violations.clear()
