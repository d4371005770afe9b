"""An operator loads, exports and verifies a whole team's mappings from the command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fakes.datadog import DatadogFake
from tests.fakes.kibana import ElasticsearchFake, KibanaFake
from tests.fakes.slack import SlackFake
from tests.fakes.xpanse import XpanseFake
from tests.scenario.test_check import clean_env, fake_env, run_cli

DD_ALICE = "11111111-1111-4111-8111-111111111111"
DD_BOB = "22222222-2222-4222-8222-222222222222"
KB_ALICE = "u_alice0000000000000000000000000000000000000_0"


async def test_import_export_verify_round_trip(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    slack_fake: SlackFake,
    datadog_fake: DatadogFake,
    kibana_fake: KibanaFake,
    elasticsearch_fake: ElasticsearchFake,
    xpanse_fake: XpanseFake,
) -> None:
    """import (by user id and by email) → export shows them → verify is clean, then reports a disabled user."""
    clean_env(monkeypatch, tmp_path)
    fake_env(monkeypatch, slack=slack_fake, dd=datadog_fake, kb=kibana_fake, es=elasticsearch_fake, xp=xpanse_fake)
    slack_fake.add_user("U0ALICE", email="alice@example.com")
    slack_fake.add_user("U0BOB", email="bob@example.com")
    datadog_fake.add_user(DD_ALICE, "alice@example.com")
    datadog_fake.add_user(DD_BOB, "bob@example.com")
    elasticsearch_fake.add_profile(KB_ALICE, email="alice@example.com", username="alice")
    xpanse_fake.add_user("alice@example.com", "Alice", "A")
    xpanse_fake.add_user("bob@example.com", "Bob", "B")
    team = tmp_path / "team.csv"
    team.write_text(
        "slack,datadog,kibana,xpanse\n"
        f"U0ALICE,{DD_ALICE},{KB_ALICE},alice@example.com\n"
        f"bob@example.com,{DD_BOB},,bob@example.com\n"
    )
    assert await run_cli("mappings", "import", str(team)) == 0
    out = capsys.readouterr().out
    assert "2 good, 0 bad" in out

    assert await run_cli("mappings", "export", "--format", "csv") == 0
    exported = capsys.readouterr().out
    assert DD_ALICE in exported and DD_BOB in exported and KB_ALICE in exported and "U0BOB" in exported

    assert await run_cli("mappings", "verify") == 0
    assert "0 drifted" in capsys.readouterr().out

    datadog_fake.users[DD_BOB]["disabled"] = True
    datadog_fake.users[DD_BOB]["status"] = "Disabled"
    assert await run_cli("mappings", "verify") == 1
    out = capsys.readouterr().out
    assert "1 drifted" in out and "U0BOB" in out


async def test_bad_rows_apply_nothing_and_name_their_lines(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    slack_fake: SlackFake,
    datadog_fake: DatadogFake,
    kibana_fake: KibanaFake,
    elasticsearch_fake: ElasticsearchFake,
    xpanse_fake: XpanseFake,
) -> None:
    """A file with a bad row exits 1, names the line, and leaves the store empty."""
    clean_env(monkeypatch, tmp_path)
    fake_env(monkeypatch, slack=slack_fake, dd=datadog_fake, kb=kibana_fake, es=elasticsearch_fake, xp=xpanse_fake)
    team = tmp_path / "team.yaml"
    team.write_text(f"- slack: U0ALICE\n  datadog: {DD_ALICE}\n- slack: U0BOB\n  datadog: not-a-uuid\n")
    assert await run_cli("mappings", "import", str(team)) == 1
    out = capsys.readouterr().out
    assert "1 bad" in out and "line" in out
    assert await run_cli("mappings", "export") == 0
    assert DD_ALICE not in capsys.readouterr().out
