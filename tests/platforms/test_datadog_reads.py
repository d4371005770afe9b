"""DatadogClient reads, identities, check and error bodies, and the Datadog fake itself."""

from __future__ import annotations

import httpx
import pytest
from structlog.testing import capture_logs

from bot.errors import PlatformAuthError, PlatformError
from bot.models import Platform
from bot.platforms.datadog import DatadogClient, parse_datadog_error
from tests.fakes.datadog import DatadogFake, make_datadog_config
from tests.platforms.datadog_data import ANN, BOB, CASE_UUID, OTHER_CASE_UUID, REAL_ID, dd, fid, seed

# ---- reads ----------------------------------------------------------------------------


async def test_fetch_returns_state_and_omits_missing_findings(
    datadog_client: DatadogClient, datadog_fake: DatadogFake
) -> None:
    """fetch maps each found finding to its title, severity, status, assignee, case and link."""
    datadog_fake.add_user(ANN, "ann@example.com", name="Ann Analyst")
    datadog_fake.add_case(CASE_UUID, "SEC-9")
    datadog_fake.add_finding(REAL_ID, title="S3 bucket is public", severity="critical", assignee_id=ANN)
    datadog_fake.add_finding(fid(1), title="Other", severity="low", status="resolved")
    await datadog_client.attach_case([dd(REAL_ID)], CASE_UUID)
    states = await datadog_client.fetch([dd(REAL_ID), dd(fid(1)), dd(fid(2))])
    assert set(states) == {dd(REAL_ID), dd(fid(1))}
    state = states[dd(REAL_ID)]
    assert (state.title, state.severity, state.status) == (
        "S3 bucket is public",
        "critical",
        "open",
    )
    assert (state.assignees, state.assignee_name, state.case) == ([ANN], "Ann Analyst", "SEC-9")
    assert state.link is not None and state.link.startswith("https://app.datadoghq.com/security/")
    assert "ZGVmLTAwcC1pZXJ-aS0wZjhjNjMyZDNmMzRlZTgzNw%3D%3D" in state.link
    assert states[dd(fid(1))].is_open is False
    [search] = datadog_fake.calls("/findings/search")
    assert search.body["data"]["attributes"]["filter"].startswith("@finding_id:(")


async def test_fetch_of_many_ids_is_split_into_bounded_searches(
    datadog_client: DatadogClient, datadog_fake: DatadogFake
) -> None:
    """120 ids are read in three searches of at most 50 ids each, and all come back."""
    targets = seed(datadog_fake, 120)
    states = await datadog_client.fetch(targets)
    assert len(states) == 120
    assert len(datadog_fake.calls("/findings/search")) == 3


async def test_list_assigned_follows_the_cursor_across_pages(
    datadog_client: DatadogClient, datadog_fake: DatadogFake
) -> None:
    """250 open findings of one user come back over three pages of 100, newest first."""
    datadog_fake.add_user(ANN, "ann@example.com")
    datadog_fake.add_user(BOB, "bob@example.com")
    seed(datadog_fake, 250, assignee_id=ANN)
    datadog_fake.add_finding("Y2xvc2Vk", status="resolved", assignee_id=ANN)
    datadog_fake.add_finding("Ym9icw==", assignee_id=BOB)
    states = await datadog_client.list_assigned(ANN)
    assert len(states) == 250
    assert states[0].target == dd(fid(249))
    assert all(s.assignees == [ANN] and s.status == "open" for s in states)
    searches = datadog_fake.calls("/findings/search")
    assert len(searches) == 3
    first = searches[0].body["data"]["attributes"]
    assert first["filter"] == f"@workflow.triage.assignee.id:{ANN} @status:open"
    assert first["page"] == {"limit": 100}
    assert "cursor" in searches[1].body["data"]["attributes"]["page"]


async def test_list_assigned_stops_at_the_limit(datadog_client: DatadogClient, datadog_fake: DatadogFake) -> None:
    """With limit=150 only two pages (100 + 50) are requested."""
    datadog_fake.add_user(ANN, "ann@example.com")
    seed(datadog_fake, 250, assignee_id=ANN)
    states = await datadog_client.list_assigned(ANN, limit=150)
    assert len(states) == 150
    pages = [c.body["data"]["attributes"]["page"]["limit"] for c in datadog_fake.calls("/findings/search")]
    assert pages == [100, 50]


async def test_list_assigned_logs_a_warning_on_partial_results(
    datadog_client: DatadogClient, datadog_fake: DatadogFake
) -> None:
    """meta.status "timeout" still returns the results and logs a partial-results warning."""
    datadog_fake.add_user(ANN, "ann@example.com")
    seed(datadog_fake, 3, assignee_id=ANN)
    datadog_fake.search_status = "timeout"
    with capture_logs() as logs:
        states = await datadog_client.list_assigned(ANN)
    assert len(states) == 3
    assert any(e["event"] == "datadog_search_partial" and e["log_level"] == "warning" for e in logs)


# ---- identities -----------------------------------------------------------------------


async def test_find_user_by_email_matches_exactly_among_substring_decoys(
    datadog_client: DatadogClient, datadog_fake: DatadogFake
) -> None:
    """Only the exact (case-insensitive) email wins over substring matches the filter returns."""
    datadog_fake.add_user("11111111-1111-4111-8111-111111111111", "joann@example.com", name="Jo Ann")
    datadog_fake.add_user("22222222-2222-4222-8222-222222222222", "ann@example.com.au", name="Ann AU")
    datadog_fake.add_user(ANN, "Ann@Example.com", name="Ann")
    user = await datadog_client.find_user_by_email("ann@example.COM")
    assert user is not None
    assert (user.id, user.email, user.name, user.platform) == (
        ANN,
        "Ann@Example.com",
        "Ann",
        Platform.DATADOG,
    )
    [call] = datadog_fake.calls("/api/v2/users")
    assert call.query["filter"] == "ann@example.COM"
    assert call.query["filter[status]"] == "Active"


async def test_find_user_by_email_skips_disabled_and_service_accounts(
    datadog_client: DatadogClient, datadog_fake: DatadogFake
) -> None:
    """Disabled, service and pending accounts with the exact email are not returned."""
    datadog_fake.add_user("33333333-3333-4333-8333-333333333333", "svc@example.com", service_account=True)
    datadog_fake.add_user("44444444-4444-4444-8444-444444444444", "gone@example.com", disabled=True)
    datadog_fake.add_user("55555555-5555-4555-8555-555555555555", "new@example.com", status="Pending")
    assert await datadog_client.find_user_by_email("svc@example.com") is None
    assert await datadog_client.find_user_by_email("gone@example.com") is None
    assert await datadog_client.find_user_by_email("new@example.com") is None
    assert await datadog_client.find_user_by_email("nobody@example.com") is None


async def test_get_user_rechecks_an_id_across_pages(datadog_client: DatadogClient, datadog_fake: DatadogFake) -> None:
    """get_user finds an active user on a later page; None for a disabled or unknown id."""
    for n in range(150):
        datadog_fake.add_user(f"00000000-0000-4000-8000-{n:012d}", f"user{n}@example.com")
    datadog_fake.add_user(ANN, "ann@example.com", name="Ann")
    datadog_fake.add_user(BOB, "bob@example.com", disabled=True, status="Disabled")
    user = await datadog_client.get_user(ANN.upper())
    assert user is not None and (user.id, user.email) == (ANN, "ann@example.com")
    assert len(datadog_fake.calls("/api/v2/users")) == 2
    assert await datadog_client.get_user(BOB) is None
    assert await datadog_client.get_user("99999999-9999-4999-8999-999999999999") is None


# ---- check and errors -----------------------------------------------------------------


async def test_check_succeeds_with_the_right_keys(datadog_client: DatadogClient, datadog_fake: DatadogFake) -> None:
    """check makes one small findings read and returns a short description."""
    text = await datadog_client.check()
    assert "keys accepted" in text
    [call] = datadog_fake.requests
    assert (call.method, call.path, call.query) == (
        "GET",
        "/api/v2/security/findings",
        {"page[limit]": "1"},
    )


async def test_check_with_wrong_keys_raises_a_readable_auth_error(
    datadog_fake: DatadogFake,
) -> None:
    """Refused keys raise PlatformAuthError "Datadog refused (403): …" naming the read permission, never the key."""
    config = make_datadog_config(datadog_fake).model_copy(update={"api_key": make_datadog_config(datadog_fake).app_key})
    client = DatadogClient(config)
    try:
        with pytest.raises(PlatformAuthError) as info:
            await client.check()
    finally:
        await client.aclose()
    lacks = "Datadog refused (403): the application key lacks `security_monitoring_findings_read`"
    assert lacks in str(info.value)
    assert info.value.missing == ("security_monitoring_findings_read", "appsec_vm_read")
    assert datadog_fake.api_key not in str(info.value) and datadog_fake.app_key not in str(info.value)
    assert info.value.status == 403 and info.value.platform == Platform.DATADOG


async def test_reads_raise_platform_errors(datadog_client: DatadogClient, datadog_fake: DatadogFake) -> None:
    """A read that keeps failing raises the PlatformError instead of returning partial data."""
    datadog_fake.fail("/findings/search", 500, times=10, body={"errors": ["boom"]})
    with pytest.raises(PlatformError, match="boom"):
        await datadog_client.fetch([dd(REAL_ID)])


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"errors": ["Forbidden"]}, "Forbidden"),
        ({"errors": ["Bad Request", "page[size] too large"]}, "Bad Request; page[size] too large"),
        (
            {
                "errors": [
                    {
                        "status": "404",
                        "title": "Not Found",
                        "detail": "failed to get case: case not found",
                    }
                ]
            },
            "Not Found: failed to get case: case not found",
        ),
        ({"errors": [{"code": "resource_not_found", "title": "case not found"}]}, "case not found"),
        ({"errors": [{"code": "resource_not_found"}]}, "resource_not_found"),
        ({"message": "not datadog"}, ""),
        ([1, 2], ""),
    ],
)
def test_error_parser_reads_both_datadog_shapes(body: object, expected: str) -> None:
    """String errors and JSON:API {status,title,detail} / {code,title} objects all read well."""
    response = httpx.Response(400, json=body)
    assert parse_datadog_error(response) == expected


def test_error_parser_survives_a_non_json_body() -> None:
    """An HTML or empty error body gives "" so the status phrase is used instead."""
    assert parse_datadog_error(httpx.Response(502, text="<html>bad gateway</html>")) == ""


# ---- the fake itself ------------------------------------------------------------------


async def test_the_fake_rejects_requests_the_contract_forbids() -> None:
    """A finding typed "finding" (singular), a missing type, or 101 findings are violations."""
    fake = DatadogFake()
    async with fake:
        fake.add_user(ANN, "ann@example.com")
        headers = {"DD-API-KEY": fake.api_key, "DD-APPLICATION-KEY": fake.app_key}
        async with httpx.AsyncClient(base_url=fake.url, headers=headers) as http:
            singular = {
                "data": {
                    "type": "assignee",
                    "relationships": {"findings": {"data": [{"id": REAL_ID, "type": "finding"}]}},
                }
            }
            r1 = await http.patch("/api/v2/security/findings/assignee", json=singular)
            untyped = {"data": {"relationships": {"findings": {"data": [{"id": REAL_ID, "type": "findings"}]}}}}
            r2 = await http.patch("/api/v2/security/findings/assignee", json=untyped)
            too_many = {
                "data": {
                    "type": "assignee",
                    "relationships": {"findings": {"data": [{"id": fid(n), "type": "findings"} for n in range(101)]}},
                }
            }
            r3 = await http.patch("/api/v2/security/findings/assignee", json=too_many)
            mismatch = {
                "data": {
                    "id": OTHER_CASE_UUID,
                    "type": "cases",
                    "relationships": {"findings": {"data": [{"id": REAL_ID, "type": "findings"}]}},
                }
            }
            r4 = await http.patch(f"/api/v2/security/findings/cases/{CASE_UUID}", json=mismatch)
        assert [r.status_code for r in (r1, r2, r3, r4)] == [400, 400, 400, 400]
        assert len(fake.violations) == 4
        assert "finding" in fake.violations[0]


async def test_the_fake_refuses_wrong_keys_with_a_jsonapi_403() -> None:
    """Requests with keys other than the fake's are answered 403 with a JSON:API error."""
    fake = DatadogFake()
    async with fake:
        headers = {"DD-API-KEY": "wrong", "DD-APPLICATION-KEY": fake.app_key}
        async with httpx.AsyncClient(base_url=fake.url, headers=headers) as http:
            response = await http.get("/api/v2/users")
        assert response.status_code == 403
        assert response.json()["errors"][0]["title"] == "Forbidden"
        assert fake.violations == []
