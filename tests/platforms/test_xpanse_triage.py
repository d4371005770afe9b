"""XpanseClient reopening incidents and reading their details, against the contract-checked tenant.

UpdateIncident and GetIncidentExtraData are in ``shared/contracts/xpanse.yaml``; the
fixture's fake validates every request and the test fails on any violation.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from bot.models import ItemState, Outcome, Platform, Target
from bot.platforms.xpanse import XpanseClient
from bot.platforms.xpanse.triage import DETAILS_PER_MINUTE, incident_details
from tests.fakes.xpanse import STANDARD_KEY, STANDARD_KEY_ID, XpanseFake

EXTRA = "/public_api/v1/incidents/get_incident_extra_data/"


def t(incident_id: str) -> Target:
    return Target(platform=Platform.XPANSE, id=incident_id)


@pytest.fixture
async def raw_fake() -> AsyncIterator[XpanseFake]:
    """A tenant whose violations the test inspects itself."""
    fake = XpanseFake()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


# ---- reopen ---------------------------------------------------------------------------------


async def test_reopen_puts_resolved_incidents_under_investigation(
    xpanse_client: XpanseClient, xpanse_fake: XpanseFake
) -> None:
    """A resolved incident gets status under_investigation; an open one is SKIPPED without a write."""
    xpanse_fake.add_incident("71", status="resolved_-_no_risk")
    xpanse_fake.add_incident("72", status="new")
    result = await xpanse_client.reopen([t("71"), t("72")])
    assert [i.outcome for i in result.items] == [Outcome.DONE, Outcome.SKIPPED]
    assert (result.items[0].before, result.items[0].after) == ("resolved_-_no_risk", "under_investigation")
    (update,) = xpanse_fake.calls("/update_incident/")
    assert update.body == {"request_data": {"incident_id": "71", "update_data": {"status": "under_investigation"}}}
    assert xpanse_fake.incidents["71"].status == "under_investigation"


async def test_reopen_of_a_missing_incident_is_not_found(xpanse_client: XpanseClient, xpanse_fake: XpanseFake) -> None:
    """An id the tenant does not hold is NOT_FOUND and never written."""
    result = await xpanse_client.reopen([t("404")])
    assert result.items[0].outcome is Outcome.NOT_FOUND
    assert xpanse_fake.calls("/update_incident/") == []


async def test_reopen_500_is_failed_with_the_envelope_reason(
    xpanse_client: XpanseClient, xpanse_fake: XpanseFake
) -> None:
    """A 500 envelope from update_incident fails that incident with its err_extra."""
    xpanse_fake.add_incident("71", status="resolved")
    xpanse_fake.reply_false.add("71")
    result = await xpanse_client.reopen([t("71")])
    assert result.items[0].outcome is Outcome.FAILED


# ---- incident details -------------------------------------------------------------------------


async def test_card_details_add_alert_count_and_top_assets(
    xpanse_client: XpanseClient, xpanse_fake: XpanseFake
) -> None:
    """The card's count and assets come from get_incident_extra_data, most-named asset first."""
    xpanse_fake.add_incident("71")
    xpanse_fake.add_alert("71", domain="acme.com", ip="1.1.1.1")
    xpanse_fake.add_alert("71", domain="acme.com")
    xpanse_fake.add_alert("71", ip="2.2.2.2")
    state = await xpanse_client.with_details((await xpanse_client.fetch([t("71")]))[t("71")])
    assert state.alert_count == 3
    assert state.top_assets == ["acme.com", "1.1.1.1", "2.2.2.2"]
    (call,) = xpanse_fake.calls(EXTRA)
    assert call.body == {"request_data": {"incident_id": "71", "alerts_limit": 100}}


async def test_details_are_cached_and_kept_under_the_route_limit(
    xpanse_client: XpanseClient, xpanse_fake: XpanseFake
) -> None:
    """The route allows 10 calls a minute: a second card reuses the answer; past the budget, none."""
    for n in range(12):
        xpanse_fake.add_incident(str(70 + n))
    await xpanse_client.with_details(ItemState(target=t("70")))
    await xpanse_client.with_details(ItemState(target=t("70")))
    assert len(xpanse_fake.calls(EXTRA)) == 1
    states = [await xpanse_client.with_details(ItemState(target=t(str(70 + n)))) for n in range(12)]
    assert len(xpanse_fake.calls(EXTRA)) == DETAILS_PER_MINUTE
    assert states[-1].alert_count is None


async def test_fetch_alone_never_calls_the_details_route(xpanse_client: XpanseClient, xpanse_fake: XpanseFake) -> None:
    """Lists and pre-reads use fetch, which stays one get_incidents."""
    xpanse_fake.add_incident("71")
    await xpanse_client.fetch([t("71")])
    assert xpanse_fake.calls(EXTRA) == []


async def test_a_failed_details_call_leaves_the_card_without_them(
    xpanse_client: XpanseClient, xpanse_fake: XpanseFake
) -> None:
    """A 500 on the details call is not an error: the state has no count."""
    xpanse_fake.add_incident("71")
    xpanse_fake.fail(EXTRA, 500, times=10, body={"reply": {"err_code": "500", "err_msg": "x", "err_extra": ""}})
    state = await xpanse_client.with_details(ItemState(target=t("71")))
    assert (state.alert_count, state.top_assets) == (None, [])


async def test_unknown_incident_and_bad_key_on_the_details_route(raw_fake: XpanseFake) -> None:
    """The tenant answers an unknown incident 500 and a wrong key 401, in the error envelope."""
    headers = {"x-xdr-auth-id": STANDARD_KEY_ID, "Authorization": STANDARD_KEY}
    async with httpx.AsyncClient(base_url=raw_fake.url) as http:
        unknown = await http.post(EXTRA, json={"request_data": {"incident_id": "9"}}, headers=headers)
        bad = await http.post(
            EXTRA, json={"request_data": {"incident_id": "9"}}, headers={**headers, "Authorization": "wrong"}
        )
    assert unknown.status_code == 500 and "not found" in unknown.json()["reply"]["err_extra"]
    assert bad.status_code == 401
    assert raw_fake.violations == []


async def test_the_contract_refuses_a_numeric_incident_id(raw_fake: XpanseFake) -> None:
    """incident_id is a string in GetIncidentExtraData: a number is a violation."""
    headers = {"x-xdr-auth-id": STANDARD_KEY_ID, "Authorization": STANDARD_KEY}
    async with httpx.AsyncClient(base_url=raw_fake.url) as http:
        response = await http.post(EXTRA, json={"request_data": {"incident_id": 71}}, headers=headers)
    assert response.status_code == 400
    assert len(raw_fake.violations) == 1


def test_details_of_the_recorded_fixture_shape() -> None:
    """Comma-joined asset fields are split; with no alerts the incident's hosts are the assets."""
    reply = {
        "incident": {"alert_count": 2, "hosts": ["1.1.1.1:null"]},
        "alerts": {"total_count": 2, "data": [{"domain_names": "acme.com,b.acme.com", "ipv4_addresses": "1.1.1.1"}]},
    }
    assert incident_details(reply) == (2, ["acme.com", "b.acme.com", "1.1.1.1"])
    assert incident_details({"incident": {"alert_count": 4, "hosts": ["9.9.9.9:null"]}, "alerts": {}}) == (
        4,
        ["9.9.9.9"],
    )
