"""XpanseClient against the contract-checked fake tenant (real HTTP on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from bot.errors import (
    PlatformAuthError,
    PlatformRateLimited,
    PlatformUnavailable,
    UsageError,
)
from bot.models import Outcome, Platform, Target
from bot.platforms.base import PlatformClient
from bot.platforms.xpanse import XpanseAuth, XpanseClient, parse_error
from tests.fakes.xpanse import (
    ADVANCED_KEY,
    ADVANCED_KEY_ID,
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


# ---- authentication ----------------------------------------------------------------------


async def test_client_satisfies_protocol(xpanse_client: XpanseClient) -> None:
    """XpanseClient implements the PlatformClient protocol."""
    assert isinstance(xpanse_client, PlatformClient)
    assert xpanse_client.platform is Platform.XPANSE


async def test_standard_key_headers_and_fetch(tenant: XpanseFake, xpanse_client: XpanseClient) -> None:
    """A standard key sends the raw key and key id; fetch maps incidents and omits absent ids."""
    states = await xpanse_client.fetch([t("5471"), t("5472"), t("9999")])
    assert set(states) == {t("5471"), t("5472")}
    first = states[t("5471")]
    assert first.title == "Angular on suppliers.example.com:443"
    assert first.severity == "low" and first.status == "new" and first.assignees == []
    assert first.link and first.link.endswith("caseId=5471")
    second = states[t("5472")]
    assert second.assignees == [BOB] and second.assignee_name == "Bob Ops"
    (call,) = tenant.calls("/get_incidents/")
    assert call.headers["authorization"] == STANDARD_KEY
    assert call.headers["x-xdr-auth-id"] == STANDARD_KEY_ID
    filt = call.body["request_data"]["filters"][0]
    assert filt == {
        "field": "incident_id_list",
        "operator": "in",
        "value": ["5471", "5472", "9999"],
    }


async def test_manual_severity_wins_over_computed(tenant: XpanseFake, xpanse_client: XpanseClient) -> None:
    """The card shows the analyst's manual severity when one is set."""
    tenant.incidents["5471"].manual_severity = "high"
    states = await xpanse_client.fetch([t("5471")])
    assert states[t("5471")].severity == "high"


async def test_advanced_key_signs_each_request_with_fresh_nonce(tenant: XpanseFake) -> None:
    """An advanced key sends a 64-char nonce, an ms timestamp and the SHA-256, new per call."""
    client = XpanseClient(make_xpanse_config(tenant, auth="advanced"))
    try:
        await client.fetch([t("5471")])
        await client.fetch([t("5472")])
    finally:
        await client.aclose()
    nonces = [r.headers["x-xdr-nonce"] for r in tenant.requests]
    assert len(set(nonces)) == 2 and all(len(n) == 64 and n.isalnum() for n in nonces)
    stamp = int(tenant.requests[0].headers["x-xdr-timestamp"])
    assert abs(stamp - time.time() * 1000) < 60_000
    assert tenant.requests[0].headers["authorization"] != ADVANCED_KEY
    assert tenant.requests[0].headers["x-xdr-auth-id"] == ADVANCED_KEY_ID
    assert tenant.auth_failures == []


async def test_advanced_key_retry_attempt_gets_new_nonce(tenant: XpanseFake) -> None:
    """A retried attempt is signed afresh, so the tenant's nonce-reuse check never trips."""
    client = XpanseClient(make_xpanse_config(tenant, auth="advanced"))
    tenant.fail("/get_incidents/", 500, body=envelope(500, "An error occurred"), times=1)
    try:
        states = await client.fetch([t("5471")])
    finally:
        await client.aclose()
    assert t("5471") in states
    nonces = [r.headers["x-xdr-nonce"] for r in tenant.calls("/get_incidents/")]
    assert len(nonces) == 2 and nonces[0] != nonces[1]


async def test_wrong_key_raises_readable_auth_error(tenant: XpanseFake) -> None:
    """A wrong key gives PlatformAuthError(401) with the vendor's words and without the secret."""
    client = XpanseClient(make_xpanse_config(tenant, api_key="not-the-key-123"))
    try:
        with pytest.raises(PlatformAuthError) as info:
            await client.assign([t("5471")], ANA)
    finally:
        await client.aclose()
    assert info.value.status == 401
    assert "Public API request unauthorized" in str(info.value)
    assert "not-the-key-123" not in str(info.value)
    assert updates(tenant) == 0


async def test_key_used_with_wrong_scheme_is_refused(tenant: XpanseFake) -> None:
    """A standard key sent with the advanced scheme is a 401."""
    client = XpanseClient(make_xpanse_config(tenant, auth="advanced", api_key_id=STANDARD_KEY_ID))
    try:
        with pytest.raises(PlatformAuthError, match="401"):
            await client.check()
    finally:
        await client.aclose()


async def test_reused_nonce_is_rejected(tenant: XpanseFake) -> None:
    """The fake accepts a nonce once; the replay gets a 401 whose reason the parser reads."""
    auth = XpanseAuth(ADVANCED_KEY, ADVANCED_KEY_ID, advanced=True, nonce_factory=lambda: "N" * 64)
    body: dict[str, dict[str, str]] = {"request_data": {}}
    async with httpx.AsyncClient(base_url=tenant.url, auth=auth) as raw:
        first = await raw.post("/public_api/v1/rbac/get_users/", json=body)
        replay = await raw.post("/public_api/v1/rbac/get_users/", json=body)
    assert first.status_code == 200
    assert replay.status_code == 401
    assert parse_error(replay) == "Public API request unauthorized: nonce was already used (code 401)"


# ---- assign / unassign --------------------------------------------------------------------


async def test_assign_reports_each_incident(tenant: XpanseFake, xpanse_client: XpanseClient) -> None:
    """assign: DONE with before/after and pretty name, NOT_FOUND, SKIPPED (any case)."""
    tenant.add_incident("5474", assigned_user_mail=ANA.upper())
    result = await xpanse_client.assign([t("5471"), t("5472"), t("9999"), t("5474")], ANA)
    by_id = {r.target.id: r for r in result.items}
    assert by_id["5471"].outcome is Outcome.DONE and by_id["5471"].after == ANA
    assert by_id["5471"].before is None
    assert by_id["5472"].outcome is Outcome.DONE and by_id["5472"].before == BOB
    assert by_id["9999"].outcome is Outcome.NOT_FOUND
    assert by_id["5474"].outcome is Outcome.SKIPPED
    assert by_id["5474"].detail == f"already assigned to {ANA.upper()}"
    assert tenant.incidents["5471"].assigned_user_mail == ANA
    assert tenant.incidents["5471"].assigned_user_pretty_name == "Ana Lyst"
    assert updates(tenant) == 2  # one per incident that needed it
    assert xpanse_client.call_counts()["update_incident"] == 2


async def test_assign_uses_given_display_name(tenant: XpanseFake, xpanse_client: XpanseClient) -> None:
    """user_name is sent as assigned_user_pretty_name together with the mail."""
    await xpanse_client.assign([t("5471")], ANA, user_name="Ana (SOC)")
    (call,) = tenant.calls("/update_incident/")
    update = call.body["request_data"]["update_data"]
    assert update == {"assigned_user_mail": ANA, "assigned_user_pretty_name": "Ana (SOC)"}


async def test_assign_to_unknown_email_fails_without_writes(tenant: XpanseFake, xpanse_client: XpanseClient) -> None:
    """An email that is not a tenant user fails every incident and sends no update."""
    result = await xpanse_client.assign([t("5471"), t("5472")], "ghost@example.com")
    assert [r.outcome for r in result.items] == [Outcome.FAILED, Outcome.FAILED]
    assert "not a user of this Xpanse tenant" in result.items[0].detail
    assert updates(tenant) == 0


async def test_server_rejection_fails_only_that_incident(tenant: XpanseFake, xpanse_client: XpanseClient) -> None:
    """A tenant 500 envelope or reply:false fails one incident; the others still complete."""
    tenant.add_incident("5475")
    assert await xpanse_client.find_user_by_email(ANA) is not None  # warm the user cache
    del tenant.users[ANA]  # the user leaves between the look-up and the write
    result = await xpanse_client.assign([t("5471")], ANA)
    (item,) = result.items
    assert item.outcome is Outcome.FAILED and item.status == 500
    assert f"User {ANA} does not exist in this tenant" in item.detail

    tenant.reply_false.add("5471")
    result = await xpanse_client.assign([t("5471"), t("5475")], BOB)
    by_id = {r.target.id: r for r in result.items}
    assert by_id["5471"].outcome is Outcome.FAILED and "did not apply" in by_id["5471"].detail
    assert by_id["5475"].outcome is Outcome.DONE
    assert tenant.incidents["5475"].assigned_user_mail == BOB


async def test_forbidden_write_is_per_incident(tenant: XpanseFake, xpanse_client: XpanseClient) -> None:
    """A 403 on one update is that incident's FAILED with the vendor reason; the rest go on."""
    tenant.add_incident("5475")
    tenant.fail("/update_incident/", 403, body=envelope(403, "Forbidden", "missing Incidents edit"), times=1)
    result = await xpanse_client.unassign([t("5472"), t("5475")])
    assert result.counts == {Outcome.FAILED: 1, Outcome.SKIPPED: 1}
    tenant.incidents["5475"].assigned_user_mail = ANA
    tenant.fail("/update_incident/", 403, body=envelope(403, "Forbidden", "missing Incidents edit"))
    result = await xpanse_client.unassign([t("5472"), t("5475")])
    assert result.counts == {Outcome.FAILED: 1, Outcome.DONE: 1}
    failed = next(r for r in result.items if r.outcome is Outcome.FAILED)
    assert failed.status == 403 and failed.detail == "Forbidden: missing Incidents edit (code 403)"


async def test_unassign(tenant: XpanseFake, xpanse_client: XpanseClient) -> None:
    """unassign clears the mail (sends "") and skips incidents nobody holds."""
    result = await xpanse_client.unassign([t("5471"), t("5472")])
    by_id = {r.target.id: r for r in result.items}
    assert by_id["5471"].outcome is Outcome.SKIPPED
    assert by_id["5472"].outcome is Outcome.DONE and by_id["5472"].before == BOB
    assert tenant.incidents["5472"].assigned_user_mail is None
    (call,) = tenant.calls("/update_incident/")
    assert call.body["request_data"]["update_data"] == {"assigned_user_mail": ""}


# ---- resolve / severity -------------------------------------------------------------------


async def test_resolve_with_reason_and_comment(tenant: XpanseFake, xpanse_client: XpanseClient) -> None:
    """resolve maps a short reason to the enum, sends the resolve comment, skips resolved."""
    result = await xpanse_client.resolve([t("5471"), t("5473")], reason="no risk", comment="lab host")
    by_id = {r.target.id: r for r in result.items}
    assert by_id["5471"].outcome is Outcome.DONE
    assert (by_id["5471"].before, by_id["5471"].after) == ("new", "resolved_-_no_risk")
    assert by_id["5473"].outcome is Outcome.SKIPPED
    incident = tenant.incidents["5471"]
    assert incident.status == "resolved_-_no_risk" and incident.resolve_comment == "lab host"


async def test_resolve_plain_and_full_enum_reason(tenant: XpanseFake, xpanse_client: XpanseClient) -> None:
    """No reason resolves as "resolved"; the contract's enum value is accepted as is."""
    tenant.add_incident("5475")
    await xpanse_client.resolve([t("5471")])
    await xpanse_client.resolve([t("5475")], reason="resolved_-_risk_accepted")
    assert tenant.incidents["5471"].status == "resolved"
    assert tenant.incidents["5475"].status == "resolved_-_risk_accepted"
    assert "resolve_comment" not in tenant.calls("/update_incident/")[0].body["request_data"]["update_data"]


async def test_unknown_resolve_reason_refused_before_any_call(tenant: XpanseFake, xpanse_client: XpanseClient) -> None:
    """An unknown reason is a UsageError listing the valid ones; nothing is sent."""
    with pytest.raises(UsageError) as info:
        await xpanse_client.resolve([t("5471")], reason="false_positive")
    assert "no_longer_observed" in str(info.value) and "remediated_automatically" in str(info.value)
    assert tenant.requests == []


async def test_set_severity(tenant: XpanseFake, xpanse_client: XpanseClient) -> None:
    """set_severity writes manual_severity, skips equal values and refuses unknown ones up front."""
    tenant.incidents["5472"].manual_severity = "medium"
    result = await xpanse_client.set_severity([t("5471"), t("5472")], "Medium")
    by_id = {r.target.id: r for r in result.items}
    assert by_id["5471"].outcome is Outcome.DONE
    assert (by_id["5471"].before, by_id["5471"].after) == ("low", "medium")
    assert by_id["5472"].outcome is Outcome.SKIPPED
    assert tenant.incidents["5471"].manual_severity == "medium"
    tenant.reset_log()
    with pytest.raises(UsageError, match="low, medium, high"):
        await xpanse_client.set_severity([t("5471")], "urgent")
    assert tenant.requests == []


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
        (500, "An error occurred while processing XDR public API", PlatformUnavailable),
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
