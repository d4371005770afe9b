"""DatadogClient attaching findings to cases, against the contract-checked Datadog fake."""

from __future__ import annotations

import pytest

from bot.errors import UsageError
from bot.models import Outcome
from bot.platforms.datadog import DatadogClient
from tests.fakes.datadog import DatadogFake
from tests.platforms.datadog_data import CASE_UUID, OTHER_CASE_UUID, dd, fid, seed

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


async def test_attach_with_an_unknown_finding_attaches_the_others_and_reports_it_not_found(
    datadog_client: DatadogClient, datadog_fake: DatadogFake
) -> None:
    """A whole-request 404 finding not found costs one search and one resend; the rest attach."""
    datadog_fake.add_case(CASE_UUID, "SEC-5")
    [known] = seed(datadog_fake, 1)
    unknown = dd(fid(42))
    result = await datadog_client.attach_case([known, unknown], "SEC-5")
    assert result.for_target(known).outcome is Outcome.DONE  # type: ignore[union-attr]
    missing = result.for_target(unknown)
    assert missing is not None and missing.outcome is Outcome.NOT_FOUND
    assert datadog_fake.cases[CASE_UUID]["findings"] == [known.id]
    counts = datadog_client.call_counts()
    assert (counts["attach_case"], counts["known_findings"]) == (2, 1)


async def test_attach_server_failure_fails_the_items(datadog_client: DatadogClient, datadog_fake: DatadogFake) -> None:
    """5xx on every attempt of the PATCH gives FAILED items rather than an exception."""
    datadog_fake.add_case(CASE_UUID, "SEC-5")
    targets = seed(datadog_fake, 2)
    datadog_fake.fail("/security/findings/cases/", 503, times=10, body={"errors": ["Service Unavailable"]})
    result = await datadog_client.attach_case(targets, CASE_UUID)
    assert {(i.outcome, i.status) for i in result.items} == {(Outcome.FAILED, 503)}
    assert "Service Unavailable" in result.items[0].detail
