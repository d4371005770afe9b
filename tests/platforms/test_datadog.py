"""DatadogClient against the contract-checked Datadog fake, over real HTTP on 127.0.0.1:
shape, validation before any call, assign and unassign."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable

import pytest
import pytest_asyncio

from bot.errors import UnsupportedError, UsageError
from bot.models import Outcome, Platform, Target
from bot.platforms.base import PlatformClient
from bot.platforms.datadog import DatadogClient
from bot.rules import app_host
from tests.fakes.datadog import DatadogFake, make_datadog_config
from tests.platforms.datadog_data import ANN, BOB, CASE_UUID, REAL_ID, dd, fid, seed


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
    # The unknown id failed the first request whole; the resent one carried the three others.
    assert (unknown.outcome, unknown.status, unknown.detail) == (
        Outcome.NOT_FOUND,
        404,
        "Datadog has no such finding (finding not found)",
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
        (
            401,
            {"errors": ["Unauthorized"]},
            "Datadog refused (401): the API key or application key was not accepted (wrong, revoked or expired)",
        ),
        (
            403,
            {"errors": ["Forbidden"]},
            "Datadog refused (403): the application key lacks `security_monitoring_findings_write` "
            "(or `appsec_vm_write`)",
        ),
        (404, {"errors": [{"code": "resource_not_found", "title": "not found"}]}, "not found"),
    ],
)
async def test_client_errors_fail_the_items_without_retry(
    datadog_client: DatadogClient, datadog_fake: DatadogFake, status: int, body: object, detail: str
) -> None:
    """400/401/403/404 are not retried and mark every item FAILED with the reason (a refusal names the permission)."""
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
    assert item.detail == "Datadog at 127.0.0.1 did not answer in time (read timed out); gave up after 2 tries"


async def test_a_dropped_connection_is_retried(datadog_client: DatadogClient, datadog_fake: DatadogFake) -> None:
    """A connection closed without an answer is retried and the assignment succeeds."""
    datadog_fake.add_user(ANN, "ann@example.com")
    targets = seed(datadog_fake, 1)
    datadog_fake.fail("/assignee", drop=True, times=1)
    result = await datadog_client.assign(targets, ANN)
    assert result.items[0].outcome is Outcome.DONE
    assert datadog_client.call_counts()["update_findings_assignee"] == 2
