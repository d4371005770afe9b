"""DatadogClient against the contract-checked Datadog fake, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
import pytest_asyncio
from structlog.testing import capture_logs

from bot.errors import PlatformAuthError, PlatformError, UnsupportedError, UsageError
from bot.models import Outcome, Platform, Target
from bot.platforms.base import PlatformClient
from bot.platforms.datadog import DatadogClient, parse_datadog_error
from bot.rules import app_host
from tests.fakes.datadog import DatadogFake, make_datadog_config

ANN = "f315bdaf-9ee7-4808-a9c1-99c15bf0f4d0"
BOB = "6b1e0f52-27a4-4c3b-9d6a-0d7c1b2a3e4f"
CASE_UUID = "7d16945b-baf8-411e-ab2a-20fe43af1ea3"
OTHER_CASE_UUID = "c1234567-89ab-cdef-0123-456789abcdef"
REAL_ID = "ZGVmLTAwcC1pZXJ-aS0wZjhjNjMyZDNmMzRlZTgzNw=="


def fid(n: int) -> str:
    """A finding id in Datadog's style (base64url text with padding)."""
    return base64.urlsafe_b64encode(f"def-000-{n:04d}~finding".encode()).decode()


def dd(finding_id: str) -> Target:
    return Target(platform=Platform.DATADOG, id=finding_id)


def seed(fake: DatadogFake, count: int, **kwargs: object) -> list[Target]:
    """Seed ``count`` findings and return their targets."""
    targets = []
    for n in range(count):
        fake.add_finding(fid(n), title=f"Finding {n}", **kwargs)  # type: ignore[arg-type]
        targets.append(dd(fid(n)))
    return targets


@pytest_asyncio.fixture
async def make_client(datadog_fake: DatadogFake) -> AsyncIterator[Callable[..., DatadogClient]]:
    """Build extra clients on the fake with a custom policy; all closed after the test."""
    clients: list[DatadogClient] = []

    def build(**policy: object) -> DatadogClient:
        client = DatadogClient(make_datadog_config(datadog_fake, **policy))
        clients.append(client)
        return client

    yield build
    for client in clients:
        await client.aclose()


# ---- shape and Protocol ---------------------------------------------------------------


def test_client_satisfies_the_platform_protocol(datadog_client: DatadogClient) -> None:
    """DatadogClient implements every PlatformClient operation."""
    assert isinstance(datadog_client, PlatformClient)
    assert datadog_client.platform is Platform.DATADOG


async def test_operations_without_a_datadog_endpoint_are_unsupported(
    datadog_client: DatadogClient,
) -> None:
    """resolve, comment and set_severity raise UnsupportedError without calling Datadog."""
    with pytest.raises(UnsupportedError):
        await datadog_client.resolve([dd(REAL_ID)])
    with pytest.raises(UnsupportedError):
        await datadog_client.comment(dd(REAL_ID), "hi")
    with pytest.raises(UnsupportedError):
        await datadog_client.set_severity([dd(REAL_ID)], "low")
    assert sum(datadog_client.call_counts().values()) == 0


def test_app_host_follows_the_site_table() -> None:
    """Bare sites get an app. prefix; regional sites serve the app on their own name."""
    assert app_host("datadoghq.com") == "app.datadoghq.com"
    assert app_host("datadoghq.eu") == "app.datadoghq.eu"
    assert app_host("ddog-gov.com") == "app.ddog-gov.com"
    assert app_host("us3.datadoghq.com") == "us3.datadoghq.com"
    assert app_host("us2.ddog-gov.com") == "us2.ddog-gov.com"


# ---- validation before any call ---------------------------------------------------------


@pytest.mark.parametrize("bad", ["", "   ", "abc def", "abc\tdef", "abc$", "<script>", "a" * 600, "ZGVm;DROP"])
def test_validate_id_refuses_malformed_ids(datadog_client: DatadogClient, bad: str) -> None:
    """Empty, spaced, over-long or non-base64 ids are refused with a UsageError."""
    with pytest.raises(UsageError):
        datadog_client.validate_id(bad)


def test_validate_id_accepts_and_strips_real_ids(datadog_client: DatadogClient) -> None:
    """A real finding id (base64 with ~ and =) passes, stripped of surrounding spaces."""
    assert datadog_client.validate_id(f"  {REAL_ID}\n") == REAL_ID
    assert datadog_client.validate_id("a+b/c_d-e~f=") == "a+b/c_d-e~f="


async def test_bad_finding_id_is_refused_before_any_request(
    datadog_client: DatadogClient, datadog_fake: DatadogFake
) -> None:
    """One malformed id among good ones stops assign, attach and fetch before any request."""
    targets = [dd(REAL_ID), dd("not a finding")]
    with pytest.raises(UsageError, match="spaces"):
        await datadog_client.assign(targets, ANN)
    with pytest.raises(UsageError):
        await datadog_client.attach_case(targets, CASE_UUID)
    with pytest.raises(UsageError):
        await datadog_client.fetch(targets)
    assert datadog_fake.requests == []


async def test_bad_user_id_and_foreign_target_are_refused_before_any_request(
    datadog_client: DatadogClient, datadog_fake: DatadogFake
) -> None:
    """A non-UUID assignee, a non-Datadog target or a malformed case never reach Datadog."""
    with pytest.raises(UsageError, match="UUID"):
        await datadog_client.assign([dd(REAL_ID)], "ann@example.com")
    with pytest.raises(UsageError, match="UUID"):
        await datadog_client.list_assigned("ann")
    with pytest.raises(UsageError, match="not a Datadog finding"):
        await datadog_client.assign([Target(platform=Platform.XPANSE, id="5471")], ANN)
    with pytest.raises(UsageError, match="not a Datadog case"):
        await datadog_client.attach_case([dd(REAL_ID)], "case one")
    with pytest.raises(UsageError, match="email"):
        await datadog_client.find_user_by_email("not-an-email")
    assert datadog_fake.requests == []


# ---- assign / unassign ----------------------------------------------------------------


async def test_assign_sends_the_contract_shape_and_changes_the_finding(
    datadog_client: DatadogClient, datadog_fake: DatadogFake
) -> None:
    """assign PATCHes findings typed "findings" with the assignee id and reports DONE with after."""
    datadog_fake.add_user(ANN, "ann@example.com", name="Ann")
    datadog_fake.add_finding(REAL_ID)
    result = await datadog_client.assign([dd(REAL_ID)], ANN, user_name="Ann")
    [call] = datadog_fake.calls("/api/v2/security/findings/assignee", "PATCH")
    assert call.body == {
        "data": {
            "type": "assignee",
            "attributes": {"assignee_id": ANN},
            "relationships": {"findings": {"data": [{"id": REAL_ID, "type": "findings"}]}},
        }
    }
    assert call.headers["dd-api-key"] == datadog_fake.api_key
    assert call.headers["dd-application-key"] == datadog_fake.app_key
    [item] = result.items
    assert (item.outcome, item.status, item.after) == (Outcome.DONE, 202, ANN)
    assert datadog_fake.findings[REAL_ID]["assignee_id"] == ANN
    assert datadog_client.call_counts()["update_findings_assignee"] == 1


async def test_unassign_omits_the_assignee_and_clears_it(
    datadog_client: DatadogClient, datadog_fake: DatadogFake
) -> None:
    """unassign sends no assignee_id, and the finding ends up with no assignee."""
    datadog_fake.add_user(ANN, "ann@example.com")
    datadog_fake.add_finding(REAL_ID, assignee_id=ANN)
    result = await datadog_client.unassign([dd(REAL_ID)])
    [call] = datadog_fake.calls("/assignee")
    assert "assignee_id" not in (call.body["data"].get("attributes") or {})
    assert [(i.outcome, i.after) for i in result.items] == [(Outcome.DONE, None)]
    assert datadog_fake.findings[REAL_ID]["assignee_id"] is None


async def test_assign_deduplicates_targets(datadog_client: DatadogClient, datadog_fake: DatadogFake) -> None:
    """The same finding named twice is sent once and reported once."""
    datadog_fake.add_user(ANN, "ann@example.com")
    targets = seed(datadog_fake, 2)
    result = await datadog_client.assign([targets[0], targets[1], targets[0]], ANN)
    [call] = datadog_fake.calls("/assignee")
    assert [f["id"] for f in call.body["data"]["relationships"]["findings"]["data"]] == [
        fid(0),
        fid(1),
    ]
    assert [i.target for i in result.items] == targets


async def test_assign_reports_per_finding_failures_and_warnings_of_a_202(
    datadog_client: DatadogClient, datadog_fake: DatadogFake
) -> None:
    """A 202 with meta.failures/warnings gives FAILED, WARNING and DONE items per finding."""
    datadog_fake.add_user(ANN, "ann@example.com")
    targets = seed(datadog_fake, 3)
    datadog_fake.fail_finding(fid(0), 500, title="Internal Server Error", detail="failed to update finding assignee")
    datadog_fake.warn_finding(fid(1), 200, title="Partial", detail="notification not sent")
    missing = dd(fid(99))
    result = await datadog_client.assign([*targets, missing], ANN)
    by_target = {i.target: i for i in result.items}
    failed, warned, done, unknown = (by_target[t] for t in (*targets, missing))
    assert (failed.outcome, failed.status) == (Outcome.FAILED, 500)
    assert failed.detail == "Internal Server Error: failed to update finding assignee"
    assert failed.after is None
    assert (warned.outcome, warned.detail, warned.after) == (
        Outcome.WARNING,
        "Partial: notification not sent",
        ANN,
    )
    assert (done.outcome, done.after) == (Outcome.DONE, ANN)
    assert (unknown.outcome, unknown.status, unknown.detail) == (
        Outcome.FAILED,
        404,
        "Not Found: finding not found",
    )
    assert datadog_fake.findings[fid(0)]["assignee_id"] is None
    assert datadog_fake.findings[fid(1)]["assignee_id"] == ANN
    assert not result.all_ok


@pytest.mark.parametrize(("count", "requests"), [(100, 1), (101, 2), (250, 3)])
async def test_assign_chunks_at_100_findings_per_request(
    datadog_client: DatadogClient, datadog_fake: DatadogFake, count: int, requests: int
) -> None:
    """Findings are sent 100 per request at most, and every one is reported."""
    datadog_fake.add_user(ANN, "ann@example.com")
    targets = seed(datadog_fake, count)
    result = await datadog_client.assign(targets, ANN)
    calls = datadog_fake.calls("/assignee")
    assert len(calls) == requests
    assert all(len(c.body["data"]["relationships"]["findings"]["data"]) <= 100 for c in calls)
    assert [i.target for i in result.items] == targets
    assert result.counts == {Outcome.DONE: count}
    assert all(f["assignee_id"] == ANN for f in datadog_fake.findings.values())


async def test_a_failed_chunk_fails_only_its_findings_and_the_rest_carry_on(
    datadog_client: DatadogClient, datadog_fake: DatadogFake
) -> None:
    """A 400 on the first chunk marks its 100 findings FAILED; the second chunk still runs."""
    datadog_fake.add_user(ANN, "ann@example.com")
    targets = seed(datadog_fake, 150)
    datadog_fake.fail("/assignee", 400, body={"errors": ["Bad Request", "assignee_id is malformed"]})
    result = await datadog_client.assign(targets, ANN)
    assert len(datadog_fake.calls("/assignee")) == 2
    first, second = result.items[:100], result.items[100:]
    assert {(i.outcome, i.status) for i in first} == {(Outcome.FAILED, 400)}
    assert first[0].detail == "Bad Request; assignee_id is malformed"
    assert {i.outcome for i in second} == {Outcome.DONE}
    assert datadog_fake.findings[fid(0)]["assignee_id"] is None
    assert datadog_fake.findings[fid(149)]["assignee_id"] == ANN


@pytest.mark.parametrize(
    ("status", "body", "detail"),
    [
        (
            400,
            {"errors": [{"status": "400", "title": "Bad Request", "detail": "invalid finding"}]},
            "Bad Request: invalid finding",
        ),
        (401, {"errors": ["Unauthorized"]}, "Unauthorized"),
        (403, {"errors": ["Forbidden"]}, "Forbidden"),
        (404, {"errors": [{"code": "resource_not_found", "title": "not found"}]}, "not found"),
    ],
)
async def test_client_errors_fail_the_items_without_retry(
    datadog_client: DatadogClient, datadog_fake: DatadogFake, status: int, body: object, detail: str
) -> None:
    """400/401/403/404 are not retried and mark every item FAILED with the vendor's reason."""
    datadog_fake.add_user(ANN, "ann@example.com")
    targets = seed(datadog_fake, 2)
    datadog_fake.fail("/assignee", status, body=body)
    result = await datadog_client.assign(targets, ANN)
    assert len(datadog_fake.calls("/assignee")) == 1
    assert [(i.outcome, i.status, i.detail) for i in result.items] == [(Outcome.FAILED, status, detail)] * 2


async def test_unknown_assignee_is_a_whole_request_404(
    datadog_client: DatadogClient, datadog_fake: DatadogFake
) -> None:
    """An assignee Datadog does not know fails every finding with the JSON:API reason."""
    targets = seed(datadog_fake, 2)
    result = await datadog_client.assign(targets, BOB)
    assert {(i.outcome, i.status, i.detail) for i in result.items} == {
        (Outcome.FAILED, 404, "Not Found: assignee not found")
    }


async def test_429_with_ratelimit_reset_is_waited_out_then_succeeds(
    datadog_client: DatadogClient, datadog_fake: DatadogFake
) -> None:
    """A 429 is retried after X-RateLimit-Reset seconds (longer than the backoff) and succeeds."""
    datadog_fake.add_user(ANN, "ann@example.com")
    targets = seed(datadog_fake, 1)
    datadog_fake.rate_limit("/assignee", times=1, reset="0.3")
    started = time.perf_counter()
    result = await datadog_client.assign(targets, ANN)
    elapsed = time.perf_counter() - started
    assert result.items[0].outcome is Outcome.DONE
    assert len(datadog_fake.calls("/assignee")) == 2
    assert elapsed >= 0.3  # the policy's own backoff tops out at 0.05 s


async def test_429_forever_fails_the_items_as_rate_limited(
    datadog_client: DatadogClient, datadog_fake: DatadogFake
) -> None:
    """When every attempt is a 429, the items are FAILED with a rate-limit reason and status."""
    datadog_fake.add_user(ANN, "ann@example.com")
    targets = seed(datadog_fake, 2)
    datadog_fake.rate_limit("/assignee", times=100)
    result = await datadog_client.assign(targets, ANN)
    assert len(datadog_fake.calls("/assignee")) == 4  # the test policy's attempts
    for item in result.items:
        assert (item.outcome, item.status) == (Outcome.FAILED, 429)
        assert item.detail.startswith("rate limited by Datadog: Too many requests")
    assert datadog_fake.findings[fid(0)]["assignee_id"] is None


async def test_a_burst_of_500s_is_retried_then_succeeds(
    datadog_client: DatadogClient, datadog_fake: DatadogFake
) -> None:
    """Two 500s followed by a 202 end in DONE after three attempts."""
    datadog_fake.add_user(ANN, "ann@example.com")
    targets = seed(datadog_fake, 1)
    datadog_fake.fail("/assignee", 500, times=2, body={"errors": ["Internal Server Error"]})
    result = await datadog_client.assign(targets, ANN)
    assert result.items[0].outcome is Outcome.DONE
    assert datadog_client.call_counts()["update_findings_assignee"] == 3


async def test_a_slow_answer_times_out_and_is_retried(
    make_client: Callable[..., DatadogClient], datadog_fake: DatadogFake
) -> None:
    """An answer slower than the timeout is abandoned and the retry succeeds."""
    client = make_client(timeout=0.2)
    datadog_fake.add_user(ANN, "ann@example.com")
    targets = seed(datadog_fake, 1)
    datadog_fake.fail("/assignee", 0, delay=0.6, times=1)
    result = await client.assign(targets, ANN)
    assert result.items[0].outcome is Outcome.DONE
    assert client.call_counts()["update_findings_assignee"] == 2


async def test_always_slow_answers_fail_the_items_as_unavailable(
    make_client: Callable[..., DatadogClient], datadog_fake: DatadogFake
) -> None:
    """When every attempt times out the items are FAILED with a timeout reason and no status."""
    client = make_client(timeout=0.1, retry_attempts=2)
    datadog_fake.add_user(ANN, "ann@example.com")
    targets = seed(datadog_fake, 1)
    datadog_fake.fail("/assignee", 0, delay=0.4, times=10)
    result = await client.assign(targets, ANN)
    [item] = result.items
    assert (item.outcome, item.status) == (Outcome.FAILED, None)
    assert "timeout" in item.detail


async def test_a_dropped_connection_is_retried(datadog_client: DatadogClient, datadog_fake: DatadogFake) -> None:
    """A connection closed without an answer is retried and the assignment succeeds."""
    datadog_fake.add_user(ANN, "ann@example.com")
    targets = seed(datadog_fake, 1)
    datadog_fake.fail("/assignee", drop=True, times=1)
    result = await datadog_client.assign(targets, ANN)
    assert result.items[0].outcome is Outcome.DONE
    assert datadog_client.call_counts()["update_findings_assignee"] == 2


# ---- attach to a case -----------------------------------------------------------------


async def test_attach_resolves_a_case_key_then_patches_the_uuid(
    datadog_client: DatadogClient, datadog_fake: DatadogFake
) -> None:
    """A key is resolved with GET /api/v2/cases/{key}; the PATCH uses the UUID in path and body."""
    datadog_fake.add_case(CASE_UUID, "SEC-123")
    targets = seed(datadog_fake, 2)
    result = await datadog_client.attach_case(targets, "sec-123")
    get, patch = datadog_fake.requests
    assert (get.method, get.path) == ("GET", "/api/v2/cases/SEC-123")
    assert (patch.method, patch.path) == ("PATCH", f"/api/v2/security/findings/cases/{CASE_UUID}")
    assert patch.body == {
        "data": {
            "id": CASE_UUID,
            "type": "cases",
            "relationships": {
                "findings": {"data": [{"id": fid(0), "type": "findings"}, {"id": fid(1), "type": "findings"}]}
            },
        }
    }
    assert [(i.outcome, i.status, i.after) for i in result.items] == [(Outcome.DONE, 200, "SEC-123")] * 2
    assert datadog_fake.cases[CASE_UUID]["findings"] == [fid(0), fid(1)]
    assert datadog_fake.findings[fid(0)]["case_key"] == "SEC-123"


async def test_attach_by_uuid_needs_no_lookup_and_reports_the_key(
    datadog_client: DatadogClient, datadog_fake: DatadogFake
) -> None:
    """A UUID goes straight to the PATCH; the answer's key fills ItemResult.after."""
    datadog_fake.add_case(CASE_UUID, "SEC-7")
    targets = seed(datadog_fake, 1)
    result = await datadog_client.attach_case(targets, CASE_UUID.upper())
    assert [r.method for r in datadog_fake.requests] == ["PATCH"]
    assert result.items[0].after == "SEC-7"


async def test_attach_moves_a_finding_from_its_previous_case(
    datadog_client: DatadogClient, datadog_fake: DatadogFake
) -> None:
    """A finding already in another case ends up in the new one only."""
    datadog_fake.add_case(OTHER_CASE_UUID, "SEC-1")
    datadog_fake.add_case(CASE_UUID, "SEC-2")
    targets = seed(datadog_fake, 1)
    await datadog_client.attach_case(targets, "SEC-1")
    result = await datadog_client.attach_case(targets, "SEC-2")
    assert result.items[0].outcome is Outcome.DONE
    assert datadog_fake.cases[OTHER_CASE_UUID]["findings"] == []
    assert datadog_fake.cases[CASE_UUID]["findings"] == [fid(0)]


async def test_attach_more_than_50_is_refused_with_no_request(
    datadog_client: DatadogClient, datadog_fake: DatadogFake
) -> None:
    """51 findings raise UsageError before the key lookup or any other request."""
    datadog_fake.add_case(CASE_UUID, "SEC-123")
    targets = seed(datadog_fake, 51)
    with pytest.raises(UsageError, match="at most 50"):
        await datadog_client.attach_case(targets, "SEC-123")
    assert datadog_fake.requests == []


async def test_attach_to_an_unknown_case_key_is_a_usage_error(
    datadog_client: DatadogClient, datadog_fake: DatadogFake
) -> None:
    """An unknown key (GetCase 404, {code,title}) raises a clear UsageError; nothing is patched."""
    targets = seed(datadog_fake, 1)
    with pytest.raises(UsageError, match="case SEC-999 not found"):
        await datadog_client.attach_case(targets, "SEC-999")
    assert [r.method for r in datadog_fake.requests] == ["GET"]


async def test_attach_to_an_unknown_case_uuid_is_a_usage_error(
    datadog_client: DatadogClient, datadog_fake: DatadogFake
) -> None:
    """AttachCase's 404 for an unknown UUID raises UsageError carrying the vendor's reason."""
    targets = seed(datadog_fake, 1)
    with pytest.raises(UsageError, match="failed to get case: case not found"):
        await datadog_client.attach_case(targets, CASE_UUID)


async def test_attach_reports_a_finding_missing_from_the_case_insights_as_failed(
    datadog_client: DatadogClient, datadog_fake: DatadogFake
) -> None:
    """A 200 whose insights do not list a finding does not report that finding DONE."""
    datadog_fake.add_case(CASE_UUID, "SEC-5")
    [known] = seed(datadog_fake, 1)
    unknown = dd(fid(42))
    result = await datadog_client.attach_case([known, unknown], "SEC-5")
    assert result.for_target(known).outcome is Outcome.DONE  # type: ignore[union-attr]
    missing = result.for_target(unknown)
    assert missing is not None and missing.outcome is Outcome.FAILED
    assert "does not list this finding" in missing.detail


async def test_attach_server_failure_fails_the_items(datadog_client: DatadogClient, datadog_fake: DatadogFake) -> None:
    """5xx on every attempt of the PATCH gives FAILED items rather than an exception."""
    datadog_fake.add_case(CASE_UUID, "SEC-5")
    targets = seed(datadog_fake, 2)
    datadog_fake.fail("/security/findings/cases/", 503, times=10, body={"errors": ["Service Unavailable"]})
    result = await datadog_client.attach_case(targets, CASE_UUID)
    assert {(i.outcome, i.status) for i in result.items} == {(Outcome.FAILED, 503)}
    assert "Service Unavailable" in result.items[0].detail


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
    """Refused keys raise PlatformAuthError "403 — Forbidden …" that never shows the key."""
    config = make_datadog_config(datadog_fake).model_copy(update={"api_key": make_datadog_config(datadog_fake).app_key})
    client = DatadogClient(config)
    try:
        with pytest.raises(PlatformAuthError) as info:
            await client.check()
    finally:
        await client.aclose()
    assert "403 — Forbidden" in str(info.value)
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
