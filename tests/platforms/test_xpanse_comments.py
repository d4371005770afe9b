"""XpanseClient comments, errors and throttling, lists, users and check, against the fake tenant."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from bot.errors import (
    PlatformAuthError,
    PlatformRateLimited,
    PlatformRejected,
    UsageError,
)
from bot.models import Outcome, Platform, Target
from bot.platforms.xpanse import XpanseClient, parse_error
from tests.fakes.xpanse import (
    STANDARD_KEY,
    STANDARD_KEY_ID,
    XpanseFake,
    envelope,
    make_xpanse_config,
)

ANA = "ana.lyst@example.com"
BOB = "bob.ops@example.com"


def t(incident_id: str) -> Target:
    return Target(platform=Platform.XPANSE, id=incident_id)


def updates(fake: XpanseFake) -> int:
    return len(fake.calls("/update_incident/"))


@pytest.fixture
def tenant(xpanse_fake: XpanseFake) -> XpanseFake:
    """The fake with two users and a few incidents."""
    xpanse_fake.add_user(ANA, "Ana", "Lyst")
    xpanse_fake.add_user(BOB, "Bob", "Ops")
    xpanse_fake.add_incident("5471", description="Angular on suppliers.example.com:443", severity="low")
    xpanse_fake.add_incident("5472", assigned_user_mail=BOB, assigned_user_pretty_name="Bob Ops")
    xpanse_fake.add_incident("5473", status="resolved_-_no_risk")
    return xpanse_fake


# ---- comments -------------------------------------------------------------------------------


async def test_comment_added(tenant: XpanseFake, xpanse_client: XpanseClient) -> None:
    """comment sends comment_action add with the text and reports DONE."""
    result = await xpanse_client.comment(t("5471"), "  looked at it, benign  ")
    assert result.outcome is Outcome.DONE
    assert tenant.incidents["5471"].comments == ["looked at it, benign"]
    (call,) = tenant.calls("/update_incident/")
    assert call.body["request_data"] == {
        "incident_id": "5471",
        "update_data": {"comment": {"comment_action": "add", "value": "looked at it, benign"}},
    }


async def test_comment_on_missing_incident(tenant: XpanseFake, xpanse_client: XpanseClient) -> None:
    """A comment on an incident the tenant lacks is NOT_FOUND and nothing is written."""
    result = await xpanse_client.comment(t("9999"), "hello")
    assert result.outcome is Outcome.NOT_FOUND
    assert updates(tenant) == 0


@pytest.mark.parametrize("text", ["", "   ", "x" * 10_001])
async def test_bad_comment_text_refused(tenant: XpanseFake, xpanse_client: XpanseClient, text: str) -> None:
    """Empty or over-long comments are UsageErrors before any call."""
    with pytest.raises(UsageError):
        await xpanse_client.comment(t("5471"), text)
    assert tenant.requests == []


async def test_comment_not_retried_on_500(tenant: XpanseFake, xpanse_client: XpanseClient) -> None:
    """A 500 on a comment is sent once and reported as uncertain, never as done."""
    tenant.fail("/update_incident/", 500, body=envelope(500, "An error occurred"), times=5)
    result = await xpanse_client.comment(t("5471"), "note")
    assert result.outcome is Outcome.FAILED and result.status == 500
    assert "may or may not have been added" in result.detail
    assert "retries exhausted" not in result.detail
    assert updates(tenant) == 1


async def test_comment_not_retried_on_dropped_connection(tenant: XpanseFake, xpanse_client: XpanseClient) -> None:
    """A dropped connection on a comment is sent once and reported as uncertain."""
    tenant.fail("/update_incident/", drop=True, times=5)
    result = await xpanse_client.comment(t("5471"), "note")
    assert result.outcome is Outcome.FAILED
    assert "may or may not have been added" in result.detail
    assert updates(tenant) == 1


async def test_comment_timeout_is_uncertain_and_may_land(tenant: XpanseFake) -> None:
    """After a timeout the comment is reported uncertain, and indeed the tenant still adds it."""
    client = XpanseClient(make_xpanse_config(tenant, timeout=0.2))
    tenant.fail("/update_incident/", status=0, delay=0.4)
    try:
        result = await client.comment(t("5471"), "slow note")
    finally:
        await client.aclose()
    assert result.outcome is Outcome.FAILED and "may or may not" in result.detail
    assert updates(tenant) == 1
    for _ in range(50):  # bounded wait for the slow handler to finish
        if tenant.incidents["5471"].comments:
            break
        await asyncio.sleep(0.02)
    assert tenant.incidents["5471"].comments == ["slow note"]


async def test_comment_retried_after_429(tenant: XpanseFake, xpanse_client: XpanseClient) -> None:
    """A 429 proves the comment was not taken, so it is sent again and lands once."""
    tenant.fail("/update_incident/", 429, body=envelope(429, "Too many requests."), times=1)
    result = await xpanse_client.comment(t("5471"), "note")
    assert result.outcome is Outcome.DONE
    assert updates(tenant) == 2
    assert tenant.incidents["5471"].comments == ["note"]


# ---- errors, throttling ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "msg", "error"),
    [
        (402, "User does not have the required license type to run this API", PlatformAuthError),
        (403, "Insufficient permissions for this API", PlatformAuthError),
        # A 500 naming its cause in err_extra is a business error: refused, not unavailable.
        (500, "An error occurred while processing XDR public API", PlatformRejected),
    ],
)
async def test_error_envelopes_parsed(
    tenant: XpanseFake,
    xpanse_client: XpanseClient,
    status: int,
    msg: str,
    error: type[Exception],
) -> None:
    """Each error status becomes its typed error, carrying err_msg, err_extra and the code."""
    tenant.fail("/get_incidents/", status, body=envelope(status, msg, "tenant 42"), times=10)
    with pytest.raises(error) as info:
        await xpanse_client.fetch([t("5471")])
    assert f"{msg}: tenant 42 (code {status})" in str(info.value)


def test_parse_error_handles_text_and_odd_bodies() -> None:
    """Non-JSON bodies and envelopes without err_extra still give a readable reason."""
    html = httpx.Response(502, text="<html>\n  Bad   gateway </html>")
    assert parse_error(html) == "<html> Bad gateway </html>"
    partial = httpx.Response(400, json={"reply": {"err_code": 400, "err_msg": "bad JSON"}})
    assert parse_error(partial) == "bad JSON (code 400)"
    assert parse_error(httpx.Response(500, json={"reply": "boom"})) == "boom"


async def test_429_then_success(tenant: XpanseFake, xpanse_client: XpanseClient) -> None:
    """Reads are retried after 429 "Too many requests." and then succeed."""
    tenant.fail("/get_incidents/", 429, body=envelope(429, "Too many requests."), times=2)
    states = await xpanse_client.fetch([t("5471")])
    assert t("5471") in states
    assert len(tenant.calls("/get_incidents/")) == 3


async def test_fake_throttles_and_client_reports_rate_limited(tenant: XpanseFake) -> None:
    """Past the tenant's rate the fake answers 429; without retries that is PlatformRateLimited."""
    tenant.rate_limit = 3
    client = XpanseClient(make_xpanse_config(tenant, rate_limit=500.0, retry_attempts=1))
    try:
        outcomes = await asyncio.gather(*(client.fetch([t("5471")]) for _ in range(6)), return_exceptions=True)
    finally:
        await client.aclose()
    limited = [o for o in outcomes if isinstance(o, PlatformRateLimited)]
    assert len(limited) == 3 and tenant.throttled == 3
    assert "Too many requests." in str(limited[0])


async def test_client_side_rate_limit_spaces_requests(tenant: XpanseFake) -> None:
    """At 10 requests/s, 11 requests take at least about a second."""
    client = XpanseClient(make_xpanse_config(tenant, rate_limit=10.0))
    started = time.perf_counter()
    try:
        await asyncio.gather(*(client.fetch([t("5471")]) for _ in range(11)))
    finally:
        await client.aclose()
    assert time.perf_counter() - started >= 0.85
    assert len(tenant.calls("/get_incidents/")) == 11


# ---- lists, users, check ---------------------------------------------------------------------


async def test_list_assigned_pages_and_filters_client_side(
    xpanse_fake: XpanseFake, xpanse_client: XpanseClient
) -> None:
    """list_assigned pages 100 at a time, newest first, keeping that email's open incidents."""
    expected = []
    for n in range(250):
        incident_id = str(10_000 + n)
        mail = (ANA.upper() if n % 10 == 0 else ANA) if n % 3 == 0 else BOB
        status = "resolved" if n % 9 == 0 else "under_investigation"
        xpanse_fake.add_incident(incident_id, assigned_user_mail=mail, status=status)
        if n % 3 == 0 and n % 9 != 0:
            expected.append(incident_id)
    expected.reverse()  # newest first
    states = await xpanse_client.list_assigned(ANA)
    assert [s.target.id for s in states] == expected
    assert all(s.is_open for s in states)
    calls = xpanse_fake.calls("/get_incidents/")
    assert [c.body["request_data"]["search_from"] for c in calls] == [0, 100, 200]  # 222 open
    filters = calls[0].body["request_data"]["filters"]
    assert {"field": "status", "operator": "neq", "value": "resolved"} in filters

    xpanse_fake.reset_log()
    few = await xpanse_client.list_assigned(ANA, limit=5)
    assert [s.target.id for s in few] == expected[:5]
    assert len(xpanse_fake.calls("/get_incidents/")) == 1


async def test_users_looked_up_exactly_and_cached(tenant: XpanseFake, xpanse_client: XpanseClient) -> None:
    """Users match the whole email in any case; a burst of look-ups is one get_users call."""
    tenant.add_user("ana.lyst@example.com.evil", "Eve", "Il")
    user = await xpanse_client.find_user_by_email("ANA.LYST@example.com")
    assert user is not None and user.id == ANA and user.email == ANA and user.name == "Ana Lyst"
    assert await xpanse_client.find_user_by_email("ana@example.com") is None
    same = await xpanse_client.get_user(ANA)
    assert same == user
    assert len(tenant.calls("/get_users/")) == 1


async def test_check(tenant: XpanseFake, xpanse_client: XpanseClient) -> None:
    """check makes one cheap authenticated call and describes the key."""
    text = await xpanse_client.check()
    assert "3 incidents visible" in text and STANDARD_KEY not in text
    (call,) = tenant.requests
    assert call.body["request_data"] == {"search_from": 0, "search_to": 1}


async def test_fetch_chunks_of_100(xpanse_fake: XpanseFake, xpanse_client: XpanseClient) -> None:
    """More than 100 ids are read in pages of at most 100 ids."""
    for n in range(150):
        xpanse_fake.add_incident(str(n + 1))
    states = await xpanse_client.fetch([t(str(n + 1)) for n in range(150)])
    assert len(states) == 150
    sizes = [len(c.body["request_data"]["filters"][0]["value"]) for c in xpanse_fake.requests]
    assert sizes == [100, 50]


@pytest.mark.parametrize("bad", ["abc", "12a", "-5", "5471 OR 1=1", ""])
async def test_bad_ids_refused_before_any_call(xpanse_fake: XpanseFake, xpanse_client: XpanseClient, bad: str) -> None:
    """Non-numeric ids are UsageErrors for every operation, with nothing sent."""
    with pytest.raises(UsageError, match="numbers"):
        xpanse_client.validate_id(bad)
    if bad:
        target = t(bad)
        for call in (
            xpanse_client.fetch([t("1"), target]),
            xpanse_client.assign([target], ANA),
            xpanse_client.unassign([target]),
            xpanse_client.resolve([target]),
            xpanse_client.set_severity([target], "low"),
            xpanse_client.comment(target, "x"),
        ):
            with pytest.raises(UsageError):
                await call
    assert xpanse_fake.requests == []
    assert xpanse_client.validate_id(" 5471 ") == "5471"


async def test_other_platform_target_and_bad_email_refused(
    xpanse_fake: XpanseFake, xpanse_client: XpanseClient
) -> None:
    """A Datadog target or a malformed email is a UsageError before any call."""
    with pytest.raises(UsageError, match="not an Xpanse incident"):
        await xpanse_client.fetch([Target(platform=Platform.DATADOG, id="5471")])
    with pytest.raises(UsageError, match="not an email"):
        await xpanse_client.assign([t("5471")], "ana lyst")
    with pytest.raises(UsageError, match="not an email"):
        await xpanse_client.list_assigned("nobody")
    assert xpanse_fake.requests == []


async def test_fake_rejects_request_the_contract_forbids(xpanse_fake: XpanseFake) -> None:
    """The fake refuses a numeric incident_id (contract: string) and records the violation."""
    xpanse_fake.add_incident("5471")
    headers = {"Authorization": STANDARD_KEY, "x-xdr-auth-id": STANDARD_KEY_ID}
    body = {"request_data": {"incident_id": 5471, "update_data": {"status": "resolved"}}}
    async with httpx.AsyncClient(base_url=xpanse_fake.url, headers=headers) as raw:
        response = await raw.post("/public_api/v1/incidents/update_incident/", json=body)
        bad_status = await raw.post(
            "/public_api/v1/incidents/update_incident/",
            json={"request_data": {"incident_id": "5471", "update_data": {"status": "closed"}}},
        )
    assert response.status_code == 400 and "contract_violation" in response.json()
    assert bad_status.status_code == 400
    assert len(xpanse_fake.violations) == 2
    assert xpanse_fake.incidents["5471"].status == "new"
    xpanse_fake.violations.clear()  # expected here; the fixture fails the test on any other


async def test_fake_refuses_pretty_name_without_mail(xpanse_fake: XpanseFake) -> None:
    """The fake enforces the documented pairing of pretty name and mail with the error envelope."""
    xpanse_fake.add_incident("5471")
    headers = {"Authorization": STANDARD_KEY, "x-xdr-auth-id": STANDARD_KEY_ID}
    body = {"request_data": {"incident_id": "5471", "update_data": {"assigned_user_pretty_name": "A"}}}
    async with httpx.AsyncClient(base_url=xpanse_fake.url, headers=headers) as raw:
        response = await raw.post("/public_api/v1/incidents/update_incident/", json=body)
    assert response.status_code == 500
    assert response.json()["reply"]["err_extra"] == "assigned_user_pretty_name requires assigned_user_mail"


async def test_assign_without_user_list_permission(tenant: XpanseFake, xpanse_client: XpanseClient) -> None:
    """A key that may not list users (403) still assigns; the tenant validates the email."""
    tenant.fail("/get_users/", 403, body=envelope(403, "Forbidden"), times=2)
    result = await xpanse_client.assign([t("5471")], ANA)
    assert result.items[0].outcome is Outcome.DONE
    (call,) = tenant.calls("/update_incident/")
    assert call.body["request_data"]["update_data"] == {"assigned_user_mail": ANA}
    assert tenant.incidents["5471"].assigned_user_mail == ANA
