"""XpanseClient against the contract-checked fake tenant (real HTTP on 127.0.0.1):
authentication, assign and unassign, resolve and severity."""

from __future__ import annotations

import time

import httpx
import pytest

from bot.errors import (
    PlatformAuthError,
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
    """A 403 on one update is that incident's FAILED naming what the role lacks, then the vendor reason."""
    tenant.add_incident("5475")
    tenant.fail("/update_incident/", 403, body=envelope(403, "Forbidden", "missing Incidents edit"), times=1)
    result = await xpanse_client.unassign([t("5472"), t("5475")])
    assert result.counts == {Outcome.FAILED: 1, Outcome.SKIPPED: 1}
    tenant.incidents["5475"].assigned_user_mail = ANA
    tenant.fail("/update_incident/", 403, body=envelope(403, "Forbidden", "missing Incidents edit"))
    result = await xpanse_client.unassign([t("5472"), t("5475")])
    assert result.counts == {Outcome.FAILED: 1, Outcome.DONE: 1}
    failed = next(r for r in result.items if r.outcome is Outcome.FAILED)
    assert failed.status == 403 and failed.detail == (
        "Xpanse refused (403): the API key's role lacks the permission to edit incidents (update_incident)"
        " — Xpanse said: Forbidden: missing Incidents edit (code 403)"
    )


async def test_unassign(tenant: XpanseFake, xpanse_client: XpanseClient) -> None:
    """unassign clears the mail (sends "") and skips incidents nobody holds."""
    result = await xpanse_client.unassign([t("5471"), t("5472")])
    by_id = {r.target.id: r for r in result.items}
    assert by_id["5471"].outcome is Outcome.SKIPPED
    assert by_id["5472"].outcome is Outcome.DONE and by_id["5472"].before == BOB
    # A cleared assignment reads "" (never assigned reads null): both are unassigned.
    assert tenant.incidents["5472"].assigned_user_mail == ""
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
