"""DatadogClient muting, unmuting and detaching findings, against the contract-checked fake.

MuteSecurityFindings is in ``shared/contracts/datadog.yaml`` (every request the fixture's
fake receives is validated by openapi-core); DetachCase is not, so the fake holds its
requests against the recorded cassettes in ``shared/real/datadog`` instead.
"""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from bot.errors import UsageError
from bot.models import Outcome, Platform, Target
from bot.platforms.datadog import DatadogClient
from tests.fakes.datadog import API_KEY, APP_KEY, DatadogFake

CASE_UUID = "7d16945b-baf8-411e-ab2a-20fe43af1ea3"
HEADERS = {"DD-API-KEY": API_KEY, "DD-APPLICATION-KEY": APP_KEY, "Content-Type": "application/json"}


def fid(n: int) -> str:
    """A finding id in Datadog's style (base64url text with padding)."""
    return base64.urlsafe_b64encode(f"def-000-{n:04d}~finding".encode()).decode()


def dd(finding_id: str) -> Target:
    return Target(platform=Platform.DATADOG, id=finding_id)


def seed(fake: DatadogFake, count: int) -> list[Target]:
    for n in range(count):
        fake.add_finding(fid(n), title=f"Finding {n}")
    return [dd(fid(n)) for n in range(count)]


def future_ms(days: int = 30) -> int:
    return int(time.time() * 1000) + days * 86_400_000


def mute_body(ids: list[str], mute: dict[str, Any]) -> dict[str, Any]:
    return {
        "data": {
            "type": "mute",
            "attributes": {"mute": mute},
            "relationships": {"findings": {"data": [{"id": i, "type": "findings"} for i in ids]}},
        }
    }


@pytest.fixture
async def raw_fake() -> AsyncIterator[DatadogFake]:
    """A fake whose violations the test inspects itself (for requests the contract refuses)."""
    fake = DatadogFake()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


# ---- mute -------------------------------------------------------------------------------


async def test_mute_sends_the_contract_body_and_the_card_reads_it_back(
    datadog_client: DatadogClient, datadog_fake: DatadogFake
) -> None:
    """A mute is one PATCH with the upper-case reason, description and expiry; the fetch shows it."""
    targets = seed(datadog_fake, 2)
    until = future_ms()
    result = await datadog_client.mute(targets, reason="risk_accepted", description="fix in Q3", expire_at=until)
    assert [i.outcome for i in result.items] == [Outcome.DONE, Outcome.DONE]
    assert result.items[0].detail.startswith("muted (risk_accepted) until ")
    (patch,) = datadog_fake.calls("/findings/mute", "PATCH")
    mute = {"is_muted": True, "reason": "RISK_ACCEPTED", "description": "fix in Q3", "expire_at": until}
    assert patch.body == mute_body([fid(0), fid(1)], mute)
    states = await datadog_client.fetch(targets)
    state = states[targets[0]]
    assert (state.muted, state.mute_reason, state.mute_until) == (True, "risk_accepted", until)


async def test_unmute_uses_an_unmute_reason_and_no_expiry(
    datadog_client: DatadogClient, datadog_fake: DatadogFake
) -> None:
    """Reopen unmutes with is_muted false, the default reason OTHER and the comment as description."""
    targets = seed(datadog_fake, 1)
    await datadog_client.mute(targets, reason="false_positive")
    result = await datadog_client.reopen(targets, comment="was real after all")
    assert result.items[0].outcome is Outcome.DONE
    assert result.items[0].detail == "unmuted (other)"
    last = datadog_fake.calls("/findings/mute")[-1]
    assert last.body == mute_body([fid(0)], {"is_muted": False, "reason": "OTHER", "description": "was real after all"})
    assert (await datadog_client.fetch(targets))[targets[0]].muted is False


async def test_mute_chunks_at_100_findings(datadog_client: DatadogClient, datadog_fake: DatadogFake) -> None:
    """101 findings are two requests (100 + 1), as the contract's maxItems demands."""
    targets = seed(datadog_fake, 101)
    result = await datadog_client.mute(targets, reason="duplicate")
    sizes = [len(r.body["data"]["relationships"]["findings"]["data"]) for r in datadog_fake.calls("/findings/mute")]
    assert sizes == [100, 1]
    assert all(i.outcome is Outcome.DONE for i in result.items)


async def test_mute_404_is_isolated_to_the_unknown_finding(
    datadog_client: DatadogClient, datadog_fake: DatadogFake
) -> None:
    """One unknown id fails the whole request (404, recorded); retried one by one, only it is NOT_FOUND."""
    targets = [*seed(datadog_fake, 2), dd("bm90LWEtZmluZGluZw==")]
    result = await datadog_client.mute(targets, reason="other")
    assert [i.outcome for i in result.items] == [Outcome.DONE, Outcome.DONE, Outcome.NOT_FOUND]
    assert result.items[2].status == 404 and "finding not found" in result.items[2].detail
    assert len(datadog_fake.calls("/findings/mute")) == 4  # the batch, then each finding
    assert datadog_fake.findings[fid(0)]["mute"]["is_muted"] is True


async def test_mute_422_is_a_failed_item_with_datadogs_reason(
    datadog_client: DatadogClient, datadog_fake: DatadogFake
) -> None:
    """A 422 (the recorded body) fails the items with Datadog's detail."""
    targets = seed(datadog_fake, 1)
    detail = "Invalid expiration date. Please provide an expiration date in the future"
    body = {"errors": [{"status": "422", "title": "Invalid Request", "detail": detail}]}
    datadog_fake.fail("/findings/mute", 422, body=body)
    result = await datadog_client.mute(targets, reason="other", expire_at=future_ms())
    assert (result.items[0].outcome, result.items[0].status) == (Outcome.FAILED, 422)
    assert detail in result.items[0].detail


async def test_mute_429_is_waited_out(datadog_client: DatadogClient, datadog_fake: DatadogFake) -> None:
    """A 429 on the mute endpoint is retried and succeeds."""
    targets = seed(datadog_fake, 1)
    datadog_fake.rate_limit("/findings/mute", times=1)
    result = await datadog_client.mute(targets, reason="no_fix")
    assert result.items[0].outcome is Outcome.DONE
    assert len(datadog_fake.calls("/findings/mute")) == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"reason": "human_error"}, "not a Datadog mute reason"),
        ({"reason": ""}, "needs a reason"),
        ({"reason": "other", "description": "x" * 281}, "at most 280 characters"),
        ({"reason": "other", "expire_at": 1}, "in the past"),
    ],
)
async def test_bad_mutes_are_refused_before_any_call(
    datadog_client: DatadogClient, datadog_fake: DatadogFake, kwargs: dict[str, Any], message: str
) -> None:
    """A wrong reason, a long description or a past expiry never reaches Datadog."""
    targets = seed(datadog_fake, 1)
    with pytest.raises(UsageError, match=message):
        await datadog_client.mute(targets, **kwargs)
    assert datadog_fake.calls("/findings/mute") == []


async def test_a_mute_reason_to_unmute_is_refused_before_any_call(
    datadog_client: DatadogClient, datadog_fake: DatadogFake
) -> None:
    """RISK_ACCEPTED is a mute reason: unmuting with it is refused with the unmute reasons."""
    targets = seed(datadog_fake, 1)
    with pytest.raises(UsageError, match="no_pending_fix"):
        await datadog_client.reopen(targets, reason="risk_accepted")
    assert datadog_fake.requests == []


@pytest.mark.parametrize(
    ("mute", "status", "detail"),
    [
        ({"is_muted": True, "reason": "RISK_ACCEPTED", "expire_at": 1}, 422, "Invalid expiration date"),
        ({"is_muted": False, "reason": "RISK_ACCEPTED"}, 422, "not valid for the specified mute action"),
        ({"is_muted": True, "reason": "OTHER"}, 404, "finding not found"),
    ],
)
async def test_the_tenant_answers_the_recorded_mute_failures(
    raw_fake: DatadogFake, mute: dict[str, Any], status: int, detail: str
) -> None:
    """Contract-valid mutes the vendor refuses get the recorded 422 and 404 bodies (no violation)."""
    raw_fake.add_finding(fid(0))
    ids = [fid(0)] if status != 404 else ["d3JvbmctZmluZGluZw=="]
    async with httpx.AsyncClient(base_url=raw_fake.url, headers=HEADERS) as http:
        response = await http.patch("/api/v2/security/findings/mute", json=mute_body(ids, mute))
    assert response.status_code == status
    assert detail in response.json()["errors"][0]["detail"]
    assert raw_fake.violations == []


@pytest.mark.parametrize(
    ("ids", "mute"),
    [
        ([f"id{n}" for n in range(101)], {"is_muted": True, "reason": "OTHER"}),
        (["id0"], {"is_muted": True, "reason": "OTHER", "description": "x" * 281}),
        (["id0"], {"is_muted": True, "reason": "risk_accepted"}),
        (["id0"], {"reason": "OTHER"}),
    ],
)
async def test_the_contract_refuses_malformed_mutes(
    raw_fake: DatadogFake, ids: list[str], mute: dict[str, Any]
) -> None:
    """Over 100 findings, a 281-character description, a lower-case reason or no is_muted: 400."""
    async with httpx.AsyncClient(base_url=raw_fake.url, headers=HEADERS) as http:
        response = await http.patch("/api/v2/security/findings/mute", json=mute_body(ids, mute))
    assert response.status_code == 400
    assert len(raw_fake.violations) == 1


# ---- detach -----------------------------------------------------------------------------


async def test_detach_sends_the_recorded_body_and_empties_the_case(
    datadog_client: DatadogClient, datadog_fake: DatadogFake
) -> None:
    """Detach is DELETE /findings/cases with the findings only; 204; the finding leaves its case."""
    datadog_fake.add_case(CASE_UUID, "SEC-1")
    targets = seed(datadog_fake, 2)
    await datadog_client.attach_case(targets, CASE_UUID)
    result = await datadog_client.detach_case(targets[:1])
    assert result.items[0].outcome is Outcome.DONE
    (delete,) = datadog_fake.calls("/api/v2/security/findings/cases", "DELETE")
    assert delete.body == {
        "data": {"type": "cases", "relationships": {"findings": {"data": [{"id": fid(0), "type": "findings"}]}}}
    }
    assert datadog_fake.cases[CASE_UUID]["findings"] == [fid(1)]
    assert (await datadog_client.fetch(targets[:1]))[targets[0]].case is None


async def test_detach_404_is_not_found_for_that_finding_only(
    datadog_client: DatadogClient, datadog_fake: DatadogFake
) -> None:
    """An unknown finding gets the recorded 404; the others of the batch are still detached."""
    targets = [*seed(datadog_fake, 1), dd("d3JvbmctZmluZGluZw==")]
    result = await datadog_client.detach_case(targets)
    assert [i.outcome for i in result.items] == [Outcome.DONE, Outcome.NOT_FOUND]
    assert "finding not found" in result.items[1].detail


async def test_detach_chunks_at_50(datadog_client: DatadogClient, datadog_fake: DatadogFake) -> None:
    """51 findings are two requests: the endpoint takes at most 50."""
    targets = seed(datadog_fake, 51)
    await datadog_client.detach_case(targets)
    sizes = [len(r.body["data"]["relationships"]["findings"]["data"]) for r in datadog_fake.calls("/findings/cases")]
    assert sizes == [50, 1]


async def test_the_recorded_detach_failures(raw_fake: DatadogFake) -> None:
    """An empty list is the recorded 400 ``no finding provided``; a body of another shape is a violation."""
    empty = {"data": {"relationships": {"findings": {"data": []}}, "type": "cases"}}
    async with httpx.AsyncClient(base_url=raw_fake.url, headers=HEADERS) as http:
        response = await http.request("DELETE", "/api/v2/security/findings/cases", json=empty)
        assert response.status_code == 400
        assert response.json()["errors"][0]["detail"] == "no finding provided"
        assert raw_fake.violations == []
        wrong = {"data": {"id": CASE_UUID, "type": "cases", "relationships": {"findings": {"data": []}}}}
        response = await http.request("DELETE", "/api/v2/security/findings/cases", json=wrong)
    assert response.status_code == 400
    assert len(raw_fake.violations) == 1
