"""Datadog's recorded traffic (``shared/real/datadog`` cassettes) replayed through the client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from bot.errors import PlatformNotFound, PlatformRejected, UsageError
from bot.models import Outcome, Platform, Target
from bot.platforms.datadog import DatadogClient
from bot.platforms.datadog.wire import (
    assignee_outcomes,
    case_uuid_of,
    finding_fields,
    finding_state,
    is_unknown_finding,
    parse_datadog_error,
    platform_user,
)
from bot.settings import DatadogConfig, HttpPolicy
from tests.fakes.datadog import DatadogFake
from tests.fakes.recorded import Answer, cassette, replay, replays

LIST = "list_security_findings_returns_ok_response"
LIST_PAGED = "list_security_findings_returns_ok_response_with_pagination"
SEARCH = "search_security_findings_returns_ok_response"
SEARCH_PAGED = "search_security_findings_returns_ok_response_with_pagination"
CASE_UUID = "7d16945b-baf8-411e-ab2a-20fe43af1ea3"
POLICY = HttpPolicy(timeout=1.0, connect_timeout=1.0, retry_attempts=1, retry_timeout=1.0)


def yaml_of(name: str) -> str:
    return f"datadog/test_{name}.yaml"


@pytest.fixture
async def client() -> AsyncIterator[DatadogClient]:
    """A Datadog client whose requests are answered from the cassettes (no network)."""
    config = DatadogConfig(
        api_url="https://api.datadoghq.com",
        api_key=SecretStr("k"),
        app_key=SecretStr("a"),
        site="datadoghq.com",
        http=POLICY,
    )
    c = DatadogClient(config)
    try:
        yield c
    finally:
        await c.aclose()


def as_search(answer: Answer) -> Answer:
    """A recorded findings page as the answer to the client's POST search (the same body)."""
    return Answer("POST", "/api/v2/security/findings/search", answer.status, answer.body, answer.content_type)


def findings(name: str) -> list[dict[str, Any]]:
    body = cassette(name)[0].body
    assert isinstance(body, dict)
    data: list[dict[str, Any]] = body["data"]
    return data


def dd(finding_id: str) -> Target:
    return Target(platform=Platform.DATADOG, id=finding_id)


@replays(yaml_of(LIST), yaml_of(SEARCH))
@pytest.mark.parametrize("name", [LIST, SEARCH])
async def test_fetch_reads_the_recorded_findings_under_custom(client: DatadogClient, name: str) -> None:
    """fetch on a recorded page: title, severity and status come from attributes.attributes.custom."""
    [answer] = cassette(name)
    docs = findings(name)
    await replay(client._http, [as_search(answer)])
    states = await client.fetch([dd(d["id"]) for d in docs])
    assert len(states) == len(docs) == 10
    for doc in docs:
        custom = doc["attributes"]["attributes"]["custom"]
        state = states[dd(doc["id"])]
        assert (state.title, state.severity, state.status) == (
            custom["title"].strip(),
            custom["severity"],
            custom["status"],
        )
        assert state.title and state.severity in {"critical", "high", "medium", "low", "info"}
        # assignee:none / assignee_id:none tags and no workflow.triage: nobody assigned.
        assert state.assignees == [] and state.assignee_name is None and state.case is None
        # The timestamp is epoch milliseconds, equal to detection_changed_at.
        assert doc["attributes"]["timestamp"] == custom["detection_changed_at"] > 10**12
    statuses = [s.status for s in states.values()]
    assert statuses.count("auto_closed") >= 9 and not any(
        s.is_open for s in states.values() if s.status == "auto_closed"
    )


@replays(yaml_of(LIST_PAGED), yaml_of(SEARCH_PAGED))
@pytest.mark.parametrize(("name", "count"), [(LIST_PAGED, 5), (SEARCH_PAGED, 1)])
async def test_list_assigned_stops_at_its_limit_and_never_follows_the_relative_next_link(
    client: DatadogClient, name: str, count: int
) -> None:
    """A page with meta.page.after and a relative links.next: states parsed, one request only."""
    [answer] = cassette(name)
    assert answer.body["links"]["next"].startswith("/api/v2/security/findings?")
    seen = await replay(client._http, [as_search(answer)])
    states = await client.list_assigned("dc09afab-6ae7-11ef-92b1-828dac1b0195", limit=count)
    assert len(seen) == 1 and len(states) == count
    for doc, state in zip(findings(name), states, strict=True):
        fields = finding_fields(doc)
        assert state.target.id == doc["id"] == fields["finding_id"]
        assert (state.title, state.status) == (fields["title"].strip(), "open")
        assert state.link and "finding_id" in state.link


def test_a_recorded_rule_finding_keeps_its_rule_name_as_fallback_title() -> None:
    """The compliance finding of the paged search has a rule; without a title its name is the title."""
    [doc] = findings(SEARCH_PAGED)
    custom = doc["attributes"]["attributes"]["custom"]
    untitled = {**doc, "attributes": {**doc["attributes"], "attributes": {"custom": {**custom, "title": ""}}}}
    state = finding_state(dd(doc["id"]), untitled, link="")
    assert state.title == custom["rule"]["name"] != ""


@replays(
    yaml_of("list_security_findings_returns_bad_request_response"),
    yaml_of("search_security_findings_returns_bad_request_response"),
)
@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("list_security_findings_returns_bad_request_response", "Invalid filters"),
        (
            "search_security_findings_returns_bad_request_response",
            'Bad Request: document is missing required top-level members; must have one of: "data", "meta", "errors"',
        ),
    ],
)
async def test_recorded_400s_become_rejected_with_their_text(client: DatadogClient, name: str, reason: str) -> None:
    """Both recorded 400 bodies (one without title) give PlatformRejected with the vendor's text."""
    [answer] = cassette(name)
    await replay(client._http, [as_search(answer)])
    with pytest.raises(PlatformRejected) as caught:
        await client.fetch([dd("ZGVmLTAwcC1pZXJ-aS0wZjhjNjMyZDNmMzRlZTgzNw==")])
    assert (caught.value.status, caught.value.reason) == (400, reason)


@replays(
    yaml_of("attach_security_finding_to_a_case_returns_ok_response"),
    yaml_of("attach_security_findings_to_a_case_returns_ok_response"),
)
@pytest.mark.parametrize(
    "name",
    ["attach_security_finding_to_a_case_returns_ok_response", "attach_security_findings_to_a_case_returns_ok_response"],
)
async def test_attach_on_the_recorded_200_reports_each_finding_attached(client: DatadogClient, name: str) -> None:
    """The recorded FindingCaseResponse lists the sent findings in insights: DONE, after the case key."""
    [answer] = cassette(name)
    ids = [f["id"] for f in answer.request_body["data"]["relationships"]["findings"]["data"]]
    seen = await replay(client._http, [answer])
    result = await client.attach_case([dd(i) for i in ids], CASE_UUID)
    assert [(i.outcome, i.after) for i in result.items] == [(Outcome.DONE, "CSMINV-459")] * len(ids)
    assert len(seen) == 1


@replays(yaml_of("attach_security_findings_to_a_case_returns_not_found_response"))
async def test_attach_recorded_unknown_case_is_a_usage_error(client: DatadogClient) -> None:
    """404 'failed to get case: case not found' names the case, not a finding: UsageError, no fallback."""
    [answer] = cassette("attach_security_findings_to_a_case_returns_not_found_response")
    recorded = Answer("PATCH", f"/api/v2/security/findings/cases/{CASE_UUID}", answer.status, answer.body)
    seen = await replay(client._http, [recorded])
    with pytest.raises(UsageError, match="case not found"):
        await client.attach_case(
            [dd("ZGZhMDI3ZjdjMDM3YjJmNzcxNTlhZGMwMjdmZWNiNTZ-MTVlYTNmYWU3NjNlOTNlYTE2YjM4N2JmZmI4Yjk5N2Y=")], CASE_UUID
        )
    assert len(seen) == 1


@replays(
    yaml_of("mute_security_findings_returns_not_found_response"),
    yaml_of("detach_security_findings_from_their_case_returns_not_found_response"),
)
async def test_assign_after_the_recorded_finding_not_found_resends_only_the_known_ids(client: DatadogClient) -> None:
    """The recorded whole-request 404 (mute's, the assignee call's sibling): one search, one resend."""
    [refused] = cassette("mute_security_findings_returns_not_found_response")
    [detach_refused] = cassette("detach_security_findings_from_their_case_returns_not_found_response")
    assert detach_refused.body == refused.body
    [page] = cassette(SEARCH_PAGED)
    known = page.body["data"][0]["id"]
    unknown = refused.request_body["data"]["relationships"]["findings"]["data"][0]["id"]
    assign = "/api/v2/security/findings/assignee"
    accepted = Answer("PATCH", assign, 202, cassette("mute_security_findings_returns_accepted_response")[0].body)
    seen = await replay(client._http, [Answer("PATCH", assign, 404, refused.body), as_search(page), accepted])
    result = await client.assign([dd(known), dd(unknown)], "dc09afab-6ae7-11ef-92b1-828dac1b0195")
    by_id = {i.target.id: i for i in result.items}
    assert by_id[known].outcome is Outcome.DONE
    assert (by_id[unknown].outcome, by_id[unknown].status) == (Outcome.NOT_FOUND, 404)
    assert [r.method for r in seen] == ["PATCH", "POST", "PATCH"]
    resent = httpx.Response(200, content=seen[2].content).json()
    assert [f["id"] for f in resent["data"]["relationships"]["findings"]["data"]] == [known]


@replays(
    yaml_of("mute_security_findings_returns_accepted_response"),
    yaml_of("detach_security_findings_from_their_case_returns_no_content_response"),
)
@pytest.mark.parametrize(
    "name",
    [
        "mute_security_findings_returns_accepted_response",
        "detach_security_findings_from_their_case_returns_no_content_response",
    ],
)
def test_a_recorded_success_without_meta_is_no_failure(name: str) -> None:
    """The 202 without meta (mute) and the empty 204 (detach) mean every finding was taken."""
    [answer] = cassette(name)
    ids = [f["id"] for f in answer.request_body["data"]["relationships"]["findings"]["data"]]
    unique = {i: dd(i) for i in ids}
    result = assignee_outcomes(unique, ids, answer.response(), None)
    assert [(i.outcome, i.status) for i in result.items] == [(Outcome.DONE, answer.status)] * len(ids)


@replays(
    yaml_of("mute_security_findings_returns_unprocessable_entity_response"),
    yaml_of("attach_security_findings_to_a_case_returns_bad_request_response"),
    yaml_of("detach_security_findings_from_their_case_returns_bad_request_response"),
)
@pytest.mark.parametrize(
    ("name", "status", "reason"),
    [
        (
            "mute_security_findings_returns_unprocessable_entity_response",
            422,
            "Invalid Request: Invalid expiration date. Please provide an expiration date in the future",
        ),
        ("attach_security_findings_to_a_case_returns_bad_request_response", 400, "Bad Request: no finding provided"),
        (
            "detach_security_findings_from_their_case_returns_bad_request_response",
            400,
            "Bad Request: no finding provided",
        ),
    ],
)
def test_recorded_write_errors_read_as_their_text_and_are_not_unknown_findings(
    name: str, status: int, reason: str
) -> None:
    """The recorded 422 and 400 bodies parse to the vendor's text; none triggers the 404 fallback."""
    [answer] = cassette(name)
    response = answer.response()
    assert (response.status_code, parse_datadog_error(response)) == (status, reason)
    assert not is_unknown_finding(PlatformRejected("datadog", reason, status=status))
    assert is_unknown_finding(PlatformNotFound("datadog", "Not Found: finding not found", status=404))


@replays(yaml_of("get_the_details_of_a_case_returns_ok_response"))
async def test_attach_by_key_resolves_the_recorded_case(client: DatadogClient) -> None:
    """GET /api/v2/cases/{key} answered with the recorded case: its UUID is the one attached to."""
    created, got = cassette("get_the_details_of_a_case_returns_ok_response")
    assert case_uuid_of(created.body) == case_uuid_of(got.body) == "9daaa414-8843-46e2-8360-c36d3713285f"
    key = got.body["data"]["attributes"]["key"]
    [attached] = cassette("attach_security_finding_to_a_case_returns_ok_response")
    finding = attached.request_body["data"]["relationships"]["findings"]["data"][0]["id"]
    uuid = case_uuid_of(got.body)
    seen = await replay(
        client._http,
        [
            Answer("GET", f"/api/v2/cases/{key}", got.status, got.body),
            Answer("PATCH", f"/api/v2/security/findings/cases/{uuid}", 200, attached.body),
        ],
    )
    result = await client.attach_case([dd(finding)], key)
    # The attach answer (another cassette) names its own case key, which the result reports.
    assert (
        result.items[0].outcome is Outcome.DONE and result.items[0].after == attached.body["data"]["attributes"]["key"]
    )
    assert [r.url.path for r in seen][1].endswith(str(uuid))


@replays(yaml_of("get_the_details_of_a_case_returns_not_found_response"))
async def test_attach_by_key_of_the_recorded_unknown_case_is_a_usage_error(client: DatadogClient) -> None:
    """The recorded {code,title} 404 of GetCase: UsageError, and no attach request."""
    [answer] = cassette("get_the_details_of_a_case_returns_not_found_response")
    assert parse_datadog_error(answer.response()) == "case not found"
    seen = await replay(client._http, [Answer("GET", "/api/v2/cases/SEC-404", 404, answer.body)])
    with pytest.raises(UsageError, match="SEC-404 not found"):
        await client.attach_case([dd("ZGVmLTAwcC1pZXJ-aS0wZjhjNjMyZDNmMzRlZTgzNw==")], "SEC-404")
    assert len(seen) == 1


@replays(yaml_of("search_cases_returns_ok_response_with_pagination"))
def test_recorded_case_search_items_carry_their_uuid_and_key() -> None:
    """Each case of the recorded case search reads as a UUID and a key, as GetCase's data does."""
    pages = cassette("search_cases_returns_ok_response_with_pagination")
    cases = [c for page in pages for c in page.body["data"]]
    assert len(cases) == 3
    for case in cases:
        assert case_uuid_of({"data": case}) == case["id"] and case["attributes"]["key"]


@replays(yaml_of("list_all_users_returns_ok_response"))
async def test_find_user_by_email_on_the_recorded_pending_user(client: DatadogClient) -> None:
    """The recorded GET /api/v2/users answer: exact email match, but a Pending user is not active."""
    created, listed, deleted = cassette("list_all_users_returns_ok_response")
    assert (created.status, deleted.status, deleted.body) == (201, 204, None)
    [user] = listed.body["data"]
    seen = await replay(client._http, [listed])
    assert await client.find_user_by_email(user["attributes"]["email"].upper()) is None
    assert seen[0].url.params["filter[status]"] == "Active"
    found = platform_user(user, user["attributes"])
    assert (found.id, found.email, found.name) == (
        user["id"],
        user["attributes"]["email"],
        user["attributes"]["handle"],
    )


@replays(yaml_of("list_all_users_returns_ok_response_with_pagination"))
def test_recorded_user_pages_parse_to_platform_users() -> None:
    """Every user of the two recorded pages parses to a user with a UUID and an email."""
    pages = cassette("list_all_users_returns_ok_response_with_pagination")
    users = [platform_user(u, u["attributes"]) for page in pages for u in page.body["data"]]
    assert len(pages) == 2 and len(users) == sum(len(p.body["data"]) for p in pages) >= 3
    assert all(u.id and u.email and u.name for u in users)


@replays(yaml_of(LIST))
async def test_the_fake_serves_recorded_findings_as_recorded(
    datadog_client: DatadogClient, datadog_fake: DatadogFake
) -> None:
    """Recorded findings seeded into the fake come back through the search with the same fields."""
    docs = findings(LIST)
    for doc in docs:
        datadog_fake.add_recorded(doc)
    states = await datadog_client.fetch([dd(d["id"]) for d in docs])
    for doc in docs:
        served = datadog_fake.finding_json(doc["id"])
        assert finding_fields(served) == finding_fields(doc)
        assert states[dd(doc["id"])].status == "auto_closed"
