"""Kibana and Elasticsearch recordings and vendor examples (``shared/real/kibana``) replayed through the client."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from bot.errors import NotMappedError
from bot.models import Outcome, Platform, Target
from bot.platforms.http import PlatformHttp
from bot.platforms.kibana import KibanaClient, parse_error
from bot.platforms.kibana.wire import SOURCE_FIELDS, alert_state, profile_user
from bot.settings import HttpPolicy, KibanaConfig
from tests.fakes.recorded import Answer, kibana, kibana_example, kibana_route, replay, replays

ECH = "ech-9.5.2/"
SEARCH = "/api/detection_engine/signals/search"
STATUS = "/api/detection_engine/signals/status"
ASSIGNEES = "/api/detection_engine/signals/assignees"
SUGGEST = "/_security/profile/_suggest"
POLICY = HttpPolicy(timeout=1.0, connect_timeout=1.0, retry_attempts=1, retry_timeout=1.0)


@pytest.fixture
async def client() -> AsyncIterator[KibanaClient]:
    """A Kibana client (with Elasticsearch) whose requests are answered from the recordings."""
    config = KibanaConfig(
        url="https://kibana.example.invalid",
        api_key=SecretStr("k"),
        default_space="default",
        spaces=["default"],
        es_url="https://es.example.invalid",
        es_api_key=SecretStr("e"),
        http=POLICY,
    )
    c = KibanaClient(config)
    try:
        yield c
    finally:
        await c.aclose()


def es_of(client: KibanaClient) -> PlatformHttp:
    assert client._es is not None
    return client._es


def kt(alert_id: str) -> Target:
    return Target(platform=Platform.KIBANA, id=alert_id, space="default")


def search_answer(*, status: str | None = None) -> Answer:
    """The recorded alerts search; ``status`` rewrites every hit's workflow status (derived)."""
    body = copy.deepcopy(kibana(ECH + "signals_search.json")["response"])
    if status is not None:
        for hit in body["hits"]["hits"]:
            hit["_source"]["kibana.alert.workflow_status"] = status
    return Answer("POST", SEARCH, 200, body)


def hit_ids() -> list[str]:
    return [h["_id"] for h in kibana(ECH + "signals_search.json")["response"]["hits"]["hits"]]


@replays("kibana/elasticctl-recorded/ech-9.5.2/signals_search.json")
async def test_fetch_parses_the_recorded_alerts(client: KibanaClient) -> None:
    """The recorded hits (flat dotted keys, backing index): rule name, severity, status, no assignee."""
    seen = await replay(client._kibana, [search_answer()])
    states = await client.fetch([kt(i) for i in hit_ids()])
    assert len(states) == 6
    for state in states.values():
        assert (state.title, state.severity, state.status) == ("elasticctl sample alert probe", "low", "closed")
        assert state.assignees == [] and not state.is_open
    hit = kibana(ECH + "signals_search.json")["response"]["hits"]["hits"][0]
    assert hit["_index"].startswith(".internal.alerts-security.alerts-default-")
    assert alert_state(kt(hit["_id"]), hit["_source"], link="").status == "closed"
    assert httpx.Response(200, content=seen[0].content).json()["_source"] == SOURCE_FIELDS


@replays("kibana/elasticctl-recorded/ech-9.5.2/signals_assignees.json")
async def test_assign_confirmed_by_the_recorded_update_by_query_answer(client: KibanaClient) -> None:
    """Read first (the recorded hits, unassigned), then the recorded assignees answer (updated 1): DONE."""
    recorded = kibana(ECH + "signals_assignees.json")
    [alert_id] = recorded["request"]["ids"]
    [uid] = recorded["request"]["assignees"]["add"]
    seen = await replay(client._kibana, [search_answer(), Answer("POST", ASSIGNEES, 200, recorded["response"])])
    result = await client.assign([kt(alert_id)], uid)
    assert [(i.outcome, i.after) for i in result.items] == [(Outcome.DONE, uid)]
    sent = httpx.Response(200, content=seen[1].content).json()
    assert sent == recorded["request"]


@replays(
    "kibana/elasticctl-recorded/ech-9.5.2/signals_status_ids.json",
    "kibana/elasticctl-recorded/ech-9.5.2/signals_status_query.json",
)
@pytest.mark.parametrize(("name", "count"), [("signals_status_ids.json", 1), ("signals_status_query.json", 6)])
async def test_resolve_confirmed_by_the_recorded_status_answers(client: KibanaClient, name: str, count: int) -> None:
    """The recorded status answers (updated == total, noops 0) confirm every alert sent in one write."""
    recorded = kibana(ECH + name)["response"]
    assert recorded["updated"] == recorded["total"] == count and recorded["noops"] == 0
    ids = hit_ids()[:count]
    seen = await replay(client._kibana, [search_answer(status="open"), Answer("POST", STATUS, 200, recorded)])
    result = await client.resolve([kt(i) for i in ids], reason="automated_closure")
    assert [i.outcome for i in result.items] == [Outcome.DONE] * count
    assert httpx.Response(200, content=seen[1].content).json() == {
        "signal_ids": ids,
        "status": "closed",
        "reason": "automated_closure",
    }


async def test_already_closed_alerts_are_skipped_because_updated_cannot_tell(client: KibanaClient) -> None:
    """The recorded hits are closed already: SKIPPED from the read, no write (its count would say updated)."""
    seen = await replay(client._kibana, [search_answer()])
    result = await client.resolve([kt(i) for i in hit_ids()])
    assert {i.outcome for i in result.items} == {Outcome.SKIPPED}
    assert len(seen) == 1


@replays("kibana/elasticctl-recorded/ech-9.5.2/users_find.json")
def test_recorded_users_find_entries_parse_as_enabled_profiles() -> None:
    """The internal users/_find array (no roles, no realm) reads as enabled profiles."""
    [entry] = kibana(ECH + "users_find.json")["response"]
    user = profile_user(entry)
    assert (user.id, user.active, user.name) == ("u_REDACTED_1", True, "REDACTED")


@replays("kibana/elasticctl-recorded/ech-9.5.2/profile_suggest.json")
async def test_recorded_suggest_hit_without_enabled_counts_as_enabled(client: KibanaClient) -> None:
    """The Cloud suggest hit has no `enabled`: an exact email on it is an active user; others are None."""
    recorded = kibana(ECH + "profile_suggest.json")["response"]
    assert "enabled" not in recorded["profiles"][0]
    derived = copy.deepcopy(recorded)
    derived["profiles"][0]["user"]["email"] = "ann@example.com"
    await replay(es_of(client), [Answer("POST", SUGGEST, 200, recorded), Answer("POST", SUGGEST, 200, derived)])
    assert await client.find_user_by_email("ann@example.com") is None
    found = await client.find_user_by_email("Ann@Example.com")
    assert found is not None and (found.id, found.active) == ("u_REDACTED_1", True)


@replays("kibana/elasticctl-recorded/serverless-9.6.0/profile_suggest.json")
async def test_serverless_410_falls_back_to_explicit_mappings(client: KibanaClient) -> None:
    """Serverless answers _suggest 410: NotMappedError says so (explicit mappings only), asked once."""
    error = kibana("serverless-9.6.0/profile_suggest.json")["error"]
    cause = {"type": "api_not_available_exception", "reason": error["message"]}
    gone: dict[str, Any] = {"error": {"root_cause": [cause], **cause}, "status": error["http_status"]}
    seen = await replay(es_of(client), [Answer("POST", SUGGEST, error["http_status"], gone)])
    for _ in range(2):
        with pytest.raises(NotMappedError) as caught:
            await client.find_user_by_email("ann@example.com")
        assert "Serverless" in caught.value.message and "explicit mappings" in caught.value.message
    assert len(seen) == 1


@replays("kibana/elasticsearch-specification/suggest_user_profiles.ResponseExample1.yaml")
async def test_suggest_example_picks_the_exact_email_not_the_best_ranked(client: KibanaClient) -> None:
    """Elastic's suggest example ranks jacknich first; the look-up for jackspa returns jackspa."""
    body = kibana_example("suggest_user_profiles.ResponseExample1.yaml")
    await replay(es_of(client), [Answer("POST", SUGGEST, 200, body)])
    found = await client.find_user_by_email("jackspa@example.com")
    assert found is not None and (found.id, found.name) == (
        "u_8RKO7AKfEbSiIHZkZZ2LJy2MUSDPWDr3tMI_CkIGApU_0",
        "Jack Sparrow",
    )


@replays(
    "kibana/elasticsearch-specification/get_user_profile.GetUserProfileResponseExample1.yaml",
    "kibana/elasticsearch-specification/get_user_profile.GetUserProfileResponseExample3.yaml",
)
async def test_get_user_on_elastics_profile_examples(client: KibanaClient) -> None:
    """GET profile: the found example is the user; the 200 with `errors` for an unknown uid is None."""
    found = kibana_example("get_user_profile.GetUserProfileResponseExample1.yaml")
    missing = kibana_example("get_user_profile.GetUserProfileResponseExample3.yaml")
    uid, gone = found["profiles"][0]["uid"], next(iter(missing["errors"]["details"]))
    await replay(
        es_of(client),
        [
            Answer("GET", f"/_security/profile/{uid}", 200, found),
            Answer("GET", f"/_security/profile/{gone}", 200, missing),
        ],
    )
    user = await client.get_user(uid)
    assert user is not None and (user.email, user.name, user.active) == ("jacknich@example.com", "Jack Nicholson", True)
    assert await client.get_user(gone) is None


def _examples(route: dict[str, Any], status: int) -> list[Any]:
    [operation] = [op for methods in route["paths"].values() for op in methods.values()]
    content = operation["responses"][status]["content"]["application/json"]
    return [e["value"] for e in content.get("examples", {}).values()]


@replays(
    "kibana/kibana/set_alert_assignees_route.schema.yaml",
    "kibana/kibana/set_signals_status_route.schema.yaml",
    "kibana/kibana/query_signals_route.schema.yaml",
)
async def test_elastics_route_examples_parse(client: KibanaClient) -> None:
    """Every 200 example confirms its write or reads as hits; every error example parses to its message."""
    assignees = kibana_route("set_alert_assignees_route.schema.yaml")
    status = kibana_route("set_signals_status_route.schema.yaml")
    query = kibana_route("query_signals_route.schema.yaml")
    [add] = _examples(assignees, 200)
    by_id = _examples(status, 200)[0]
    [success] = _examples(query, 200)
    assert add["updated"] == add["total"] == by_id["updated"] == 1
    await replay(client._kibana, [Answer("POST", SEARCH, 200, success)])
    assert (
        await client.check()
        == "Kibana https://kibana.example.invalid: 5 alerts in space default (profile look-up via Elasticsearch)"
    )
    for code in (400, 401, 403, 500):
        [example] = _examples(assignees, code)
        assert parse_error(httpx.Response(code, json=example)) == example["message"]


@replays(
    "kibana/kibana/set_alert_assignees_body.schema.yaml",
    "kibana/kibana/error_responses.schema.yaml",
)
async def test_assign_body_matches_elastics_example_and_both_error_shapes_parse(client: KibanaClient) -> None:
    """The client's assignees body has the example's shape; Platform and SIEM error schemas both parse."""
    body_schema = kibana_route("set_alert_assignees_body.schema.yaml")
    example = body_schema["components"]["schemas"]["SetAlertAssigneesBody"]["examples"]["add"]["value"]
    [alert_id], [uid] = example["ids"], example["assignees"]["add"]
    answer = search_answer()
    answer.body["hits"]["hits"] = answer.body["hits"]["hits"][:1]
    answer.body["hits"]["hits"][0]["_id"] = alert_id
    [updated] = _examples(kibana_route("set_alert_assignees_route.schema.yaml"), 200)
    seen = await replay(client._kibana, [answer, Answer("POST", ASSIGNEES, 200, updated)])
    result = await client.assign([kt(alert_id)], uid)
    assert result.items[0].outcome is Outcome.DONE
    assert httpx.Response(200, content=seen[1].content).json() == example
    schemas = kibana_route("error_responses.schema.yaml")["components"]["schemas"]
    platform: dict[str, Any] = {
        "statusCode": 400,
        "error": "Bad Request",
        "message": "[request body]: ids: Array must contain at least 1 element(s)",
    }
    siem: dict[str, Any] = {"status_code": 409, "message": "version conflict"}
    for body, schema in ((platform, "PlatformErrorResponse"), (siem, "SiemErrorResponse")):
        assert set(schemas[schema]["required"]) == set(body)
        assert parse_error(httpx.Response(400, json=body)) == body["message"]
