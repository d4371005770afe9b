"""KibanaClient list_assigned, profile identities, check, and the Kibana fake itself."""

from __future__ import annotations

import httpx
import pytest

from bot.errors import (
    PlatformAuthError,
    UsageError,
)
from bot.models import Platform, Target
from bot.platforms.kibana import KibanaClient, parse_error
from bot.store.mappings import validate_identity
from tests.fakes.kibana import ElasticsearchFake, KibanaFake, make_kibana_config

SEARCH_KEYS = {
    "query", "aggs", "size", "track_total_hits", "_source", "fields",
    "runtime_mappings", "sort", "include_attacks",
}  # fmt: skip
UID = "u_new_analyst_0"


def kt(alert_id: str, space: str | None = None) -> Target:
    return Target(platform=Platform.KIBANA, id=alert_id, space=space)


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
