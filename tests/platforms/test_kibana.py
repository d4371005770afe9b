"""KibanaClient against the contract-checked Kibana and Elasticsearch fakes on 127.0.0.1:
construction, validation, fetch, assign and unassign."""

from __future__ import annotations

import pytest

from bot.errors import (
    ConfigError,
    UsageError,
)
from bot.models import Outcome, Platform, Target
from bot.platforms.base import PlatformClient
from bot.platforms.kibana import KibanaClient
from tests.fakes.kibana import KibanaFake, make_kibana_config

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
    kibana_fake.conflict("a2", times=2)
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
