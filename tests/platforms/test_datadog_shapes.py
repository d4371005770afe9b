"""The Datadog fake answers in the recorded shapes, and the client reads them end to end."""

from __future__ import annotations

import httpx

from bot.models import Outcome, Platform, Target
from bot.platforms.datadog import DatadogClient
from bot.sandbox.datadog import finding_id_for
from tests.fakes.datadog import API_KEY, APP_KEY, DatadogFake

ANN = "aaaaaaaa-1111-4111-8111-111111111111"
OPEN_ID = finding_id_for("def-000-abc", "i-0123456789abcdef0")
CLOSED_ID = finding_id_for("def-000-xyz", "i-0fedcba9876543210")


def dd(finding_id: str) -> Target:
    return Target(platform=Platform.DATADOG, id=finding_id)


async def search(fake: DatadogFake, query: str, limit: int = 10) -> httpx.Response:
    async with httpx.AsyncClient(
        base_url=fake.url, headers={"DD-API-KEY": API_KEY, "DD-APPLICATION-KEY": APP_KEY}
    ) as http:
        body = {"data": {"attributes": {"filter": query, "page": {"limit": limit}}}}
        return await http.post("/api/v2/security/findings/search", json=body)


async def test_the_fake_nests_fields_under_custom_with_ms_timestamps_and_relative_next(
    datadog_fake: DatadogFake,
) -> None:
    """A search answer: attributes.attributes.custom, epoch-ms timestamp, assignee:none tags, relative links.next."""
    datadog_fake.add_finding(OPEN_ID, title="Open one", severity="high")
    datadog_fake.add_finding(CLOSED_ID, title="Closed one", severity="low", status="auto_closed")
    body = (await search(datadog_fake, "*", limit=1)).json()
    [doc] = body["data"]
    assert set(doc["attributes"]) == {"attributes", "tags", "timestamp"}
    assert list(doc["attributes"]["attributes"]) == ["custom"]
    custom = doc["attributes"]["attributes"]["custom"]
    assert (custom["finding_id"], custom["status"], custom["workflow"]["auto_closed_at"]) == (
        CLOSED_ID,
        "auto_closed",
        doc["attributes"]["timestamp"],
    )
    assert "triage" not in custom["workflow"] and doc["attributes"]["timestamp"] > 10**12
    assert {"assignee:none", "assignee_id:none"} <= set(doc["attributes"]["tags"])
    assert body["links"]["next"].startswith("/api/v2/security/findings?page%5Bcursor%5D=")
    assert body["meta"]["status"] == "done" and body["meta"]["page"]["after"]
    assert (await search(datadog_fake, "@status:open")).json()["data"][0]["id"] == OPEN_ID


async def test_mine_lists_state_and_skips_auto_closed(datadog_client: DatadogClient, datadog_fake: DatadogFake) -> None:
    """list_assigned shows title, severity, status and assignee; an auto_closed finding is not listed."""
    datadog_fake.add_user(ANN, "ann@example.com", name="Ann")
    datadog_fake.add_finding(OPEN_ID, title="Open one", severity="high", assignee_id=ANN)
    datadog_fake.add_finding(CLOSED_ID, title="Closed one", severity="low", status="auto_closed", assignee_id=ANN)
    [state] = await datadog_client.list_assigned(ANN)
    assert (state.target.id, state.title, state.severity, state.status) == (OPEN_ID, "Open one", "high", "open")
    assert (state.assignees, state.assignee_name) == ([ANN], "Ann")


async def test_the_read_before_a_write_sees_the_assignee(
    datadog_client: DatadogClient, datadog_fake: DatadogFake
) -> None:
    """After an assignment the fetch reads the assignee from workflow.triage under custom."""
    datadog_fake.add_user(ANN, "ann@example.com", name="Ann")
    datadog_fake.add_finding(OPEN_ID)
    result = await datadog_client.assign([dd(OPEN_ID)], ANN)
    assert result.items[0].outcome is Outcome.DONE
    state = (await datadog_client.fetch([dd(OPEN_ID)]))[dd(OPEN_ID)]
    assert state.assignees == [ANN] and state.assignee_name == "Ann"


async def test_all_unknown_ids_cost_one_search_and_no_resend(
    datadog_client: DatadogClient, datadog_fake: DatadogFake
) -> None:
    """Every id unknown: the 404, one search, then NOT_FOUND for all without a second write."""
    datadog_fake.add_user(ANN, "ann@example.com")
    result = await datadog_client.assign([dd(OPEN_ID), dd(CLOSED_ID)], ANN)
    assert {i.outcome for i in result.items} == {Outcome.NOT_FOUND}
    counts = datadog_client.call_counts()
    assert (counts["update_findings_assignee"], counts["known_findings"]) == (1, 1)


async def test_a_second_404_after_the_resend_fails_the_rest_with_the_reason(
    datadog_client: DatadogClient, datadog_fake: DatadogFake
) -> None:
    """If the resend is refused too (the search knew an id the write did not), no third write: FAILED."""
    datadog_fake.add_user(ANN, "ann@example.com")
    datadog_fake.add_finding(OPEN_ID)
    datadog_fake.fail(
        "/findings/assignee",
        404,
        times=2,
        body={"errors": [{"status": "404", "title": "Not Found", "detail": "finding not found"}]},
    )
    result = await datadog_client.assign([dd(OPEN_ID), dd(CLOSED_ID)], ANN)
    by_id = {i.target.id: i for i in result.items}
    assert by_id[CLOSED_ID].outcome is Outcome.NOT_FOUND
    assert (by_id[OPEN_ID].outcome, by_id[OPEN_ID].detail) == (Outcome.FAILED, "Not Found: finding not found")
    assert datadog_client.call_counts()["update_findings_assignee"] == 2
