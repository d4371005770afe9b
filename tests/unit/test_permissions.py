"""bot.permissions: every operation the clients send has a row, and a refusal names what to grant."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot import permissions
from bot.permissions import refusal

ROOT = Path(__file__).resolve().parents[2]
TABLES = {
    "datadog": permissions.DATADOG,
    "kibana": {**permissions.KIBANA, **permissions.ELASTICSEARCH},
    "xpanse": permissions.XPANSE,
}


@pytest.mark.parametrize("platform", sorted(TABLES))
def test_every_operation_a_client_sends_has_a_permission_row(platform: str) -> None:
    """Each ``operation="…"`` (and _search's default) in a platform package is a key of its table."""
    sent: set[str] = set()
    for path in (ROOT / "bot" / "platforms" / platform).glob("*.py"):
        text = path.read_text()
        sent |= set(re.findall(r'operation(?:: str)?\s*=\s*"([a-z_.]+)"', text))
    assert sent, "the scan found no operation names"
    assert sent - TABLES[platform].keys() == set(), "add the operation's permission to bot/permissions.py"


def test_datadog_403_reads_with_both_permissions() -> None:
    """The wording: "Datadog refused (403): the application key lacks `…_write` (or `appsec_vm_write`)"."""
    text = refusal("Datadog", 403, permissions.DATADOG["update_findings_assignee"], "Forbidden")
    assert text == (
        "Datadog refused (403): the application key lacks `security_monitoring_findings_write` (or `appsec_vm_write`)"
    )


def test_vendor_words_follow_unless_generic() -> None:
    """A vendor's specific reason is kept after the sentence; a bare "Forbidden" is not repeated."""
    need = permissions.KIBANA["assignees"]
    assert refusal("Kibana", 403, need, "API [POST …] is unauthorized").endswith(
        " — Kibana said: API [POST …] is unauthorized"
    )
    assert "said" not in refusal("Kibana", 403, need, "Forbidden")


def test_401_and_402_are_not_permission_problems() -> None:
    """401 says the credential was not accepted; 402 says the licence is missing; an unknown op still reads."""
    assert refusal("Xpanse", 401, permissions.XPANSE["get_users"], "").startswith(
        "Xpanse refused (401): the API key (or its key id) was not accepted"
    )
    assert "licence" in refusal("Xpanse", 402, None, "")
    assert refusal("Datadog", 403, None, "") == (
        "Datadog refused (403): the credential lacks a permission this request needs"
    )


def test_writes_table_covers_every_platform() -> None:
    """`triage-bot check` states a write permission for each platform."""
    assert set(permissions.WRITES) == {"datadog", "kibana", "xpanse"}
