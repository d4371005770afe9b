"""``triage-bot check`` end to end: the real CLI, real clients, the fakes on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from bot.__main__ import main
from bot.settings import Settings
from tests.fakes.datadog import DatadogFake
from tests.fakes.kibana import ElasticsearchFake, KibanaFake
from tests.fakes.slack import SlackFake
from tests.fakes.xpanse import STANDARD_KEY, STANDARD_KEY_ID, XpanseFake


def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No setting from the developer's environment or a .env file leaks into the test."""
    monkeypatch.chdir(tmp_path)
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setenv("TRIAGE_DB", str(tmp_path / "triage.db"))
    monkeypatch.setenv("TRIAGE_RETRY_ATTEMPTS", "2")
    monkeypatch.setenv("TRIAGE_RETRY_TIMEOUT", "2")


def fake_env(
    monkeypatch: pytest.MonkeyPatch,
    *,
    slack: SlackFake,
    dd: DatadogFake,
    kb: KibanaFake,
    es: ElasticsearchFake,
    xp: XpanseFake,
) -> dict[str, str]:
    """Point every platform at its fake with the keys the fakes accept; returns the secrets set."""
    secrets = {
        "SLACK_BOT_TOKEN": slack.token,
        "DD_API_KEY": dd.api_key,
        "DD_APP_KEY": dd.app_key,
        "KIBANA_API_KEY": kb.api_key,
        "ELASTICSEARCH_API_KEY": es.api_key,
        "XPANSE_API_KEY": STANDARD_KEY,
    }
    env = {
        **secrets,
        "SLACK_API_URL": slack.api_url,
        "DD_API_URL": dd.url,
        "KIBANA_URL": kb.url,
        "ELASTICSEARCH_URL": es.url,
        "XPANSE_API_URL": xp.url,
        "XPANSE_API_KEY_ID": STANDARD_KEY_ID,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return secrets


async def run_cli(*argv: str) -> int:
    """``main`` in a thread (it runs its own event loop) while the fakes serve on this one."""
    return await asyncio.wait_for(asyncio.to_thread(main, list(argv)), 30)


async def test_check_passes_with_good_keys_and_prints_no_secret(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    slack_fake: SlackFake,
    datadog_fake: DatadogFake,
    kibana_fake: KibanaFake,
    elasticsearch_fake: ElasticsearchFake,
    xpanse_fake: XpanseFake,
) -> None:
    """Every configured platform and Slack answer: one "ok" line each, exit 0, no secret printed."""
    clean_env(monkeypatch, tmp_path)
    secrets = fake_env(
        monkeypatch, slack=slack_fake, dd=datadog_fake, kb=kibana_fake, es=elasticsearch_fake, xp=xpanse_fake
    )
    assert await run_cli("check") == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    for label in ("Datadog", "Kibana", "Elasticsearch", "Xpanse", "Slack"):
        assert sum(line.startswith(f"{label}: ok — ") for line in lines) == 1, out
    for value in secrets.values():
        assert value not in out and value not in err


async def test_wrong_datadog_key_fails_with_a_readable_line(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    slack_fake: SlackFake,
    datadog_fake: DatadogFake,
    kibana_fake: KibanaFake,
    elasticsearch_fake: ElasticsearchFake,
    xpanse_fake: XpanseFake,
) -> None:
    """A refused application key gives exit 1, the status, the permission it lacks, the vendor's reason."""
    clean_env(monkeypatch, tmp_path)
    fake_env(monkeypatch, slack=slack_fake, dd=datadog_fake, kb=kibana_fake, es=elasticsearch_fake, xp=xpanse_fake)
    wrong = "0123456789abcdef-wrong-app-key"
    monkeypatch.setenv("DD_APP_KEY", wrong)
    assert await run_cli("check") == 1
    out, err = capsys.readouterr()
    line = next(line for line in out.splitlines() if line.startswith("Datadog:"))
    assert line.startswith(
        "Datadog: failing — Datadog refused (403): the application key lacks `security_monitoring_findings_read` "
        "(or `appsec_vm_read`) — Datadog said: Forbidden: invalid API key or application key; "
        "writes need `security_monitoring_findings_write` (or `appsec_vm_write`)"
    ), line
    assert any(line.startswith("Kibana: ok") for line in out.splitlines())
    assert wrong not in out and wrong not in err


async def test_wrong_elasticsearch_and_xpanse_keys_and_slack_token_each_fail(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    slack_fake: SlackFake,
    datadog_fake: DatadogFake,
    kibana_fake: KibanaFake,
    elasticsearch_fake: ElasticsearchFake,
    xpanse_fake: XpanseFake,
) -> None:
    """Each refused credential fails its own line (401 for ES and Xpanse, invalid_auth for Slack)."""
    clean_env(monkeypatch, tmp_path)
    fake_env(monkeypatch, slack=slack_fake, dd=datadog_fake, kb=kibana_fake, es=elasticsearch_fake, xp=xpanse_fake)
    bad = {
        "ELASTICSEARCH_API_KEY": "bm90LXRoZS1lcy1rZXk6bm9wZQ==",
        "XPANSE_API_KEY": "not-the-xpanse-key-42",
        "SLACK_BOT_TOKEN": "xoxb-not-the-token-42",
    }
    for key, value in bad.items():
        monkeypatch.setenv(key, value)
    assert await run_cli("check") == 1
    out, err = capsys.readouterr()
    lines = {line.split(":", 1)[0]: line for line in out.splitlines()}
    assert lines["Elasticsearch"].startswith("Elasticsearch: failing — Elasticsearch refused (401): "), out
    assert "read_security" in lines["Elasticsearch"]
    assert lines["Xpanse"].startswith("Xpanse: failing — Xpanse refused (401): the API key (or its key id)"), out
    assert lines["Slack"] == "Slack: failing — invalid_auth"
    assert lines["Datadog"].startswith("Datadog: ok")
    for value in bad.values():
        assert value not in out and value not in err


async def test_missing_slack_scope_and_unreachable_platform_fail(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A token without users:read.email and a platform nobody listens on both fail; the rest say not configured."""
    clean_env(monkeypatch, tmp_path)
    slack = await SlackFake(scopes="commands,chat:write,im:write,users:read").start()
    with socket.socket() as sock:  # a port that was free a moment ago: connection refused
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    try:
        for key, value in {
            "SLACK_BOT_TOKEN": slack.token,
            "SLACK_API_URL": slack.api_url,
            "DD_API_URL": dead,
            "DD_API_KEY": "a" * 32,
            "DD_APP_KEY": "b" * 40,
        }.items():
            monkeypatch.setenv(key, value)
        assert await run_cli("check") == 1
    finally:
        await slack.stop()
    out, _ = capsys.readouterr()
    lines = out.splitlines()
    dead_host = dead.removeprefix("http://").split(":")[0]
    refused = f"could not reach Datadog at {dead_host} (connection refused); gave up after 2 tries"
    assert f"Datadog: failing — {refused}" in lines, out
    assert "Kibana: not configured" in lines and "Xpanse: not configured" in lines
    slack_line = next(line for line in lines if line.startswith("Slack:"))
    assert slack_line.startswith("Slack: failing") and "users:read.email" in slack_line


async def test_check_names_the_missing_privilege_when_a_probe_gets_403(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    slack_fake: SlackFake,
    datadog_fake: DatadogFake,
    kibana_fake: KibanaFake,
    elasticsearch_fake: ElasticsearchFake,
    xpanse_fake: XpanseFake,
) -> None:
    """Kibana's and Xpanse's own 403 bodies make check name what the key lacks; ok lines state the writes' need."""
    clean_env(monkeypatch, tmp_path)
    fake_env(monkeypatch, slack=slack_fake, dd=datadog_fake, kb=kibana_fake, es=elasticsearch_fake, xp=xpanse_fake)
    kibana_fake.fail(
        "/signals/search",
        403,
        body={
            "statusCode": 403,
            "error": "Forbidden",
            "message": "API [POST /api/detection_engine/signals/search] is unauthorized for the current user",
        },
        times=5,
    )
    xpanse_fake.fail(
        "/get_incidents/",
        403,
        body={"reply": {"err_code": 403, "err_msg": "Forbidden", "err_extra": "no permission"}},
        times=5,
    )
    assert await run_cli("check") == 1
    out, _ = capsys.readouterr()
    lines = {line.split(":", 1)[0]: line for line in out.splitlines()}
    assert lines["Kibana"].startswith(
        "Kibana: failing — Kibana refused (403): the API key lacks the Security › Alerts: Read privilege "
        "(`securitySolution`) — Kibana said: API [POST /api/detection_engine/signals/search] is unauthorized"
    ), out
    assert "writes need the Security › Alerts: All privilege (`ALERTS_API_ALL`) on the API key" in lines["Kibana"]
    assert lines["Xpanse"].startswith(
        "Xpanse: failing — Xpanse refused (403): the API key's role lacks the permission to view incidents"
    ), out
    assert "writes need the permission to edit incidents (update_incident)" in lines["Xpanse"]
    assert lines["Datadog"].endswith(
        "; writes need `security_monitoring_findings_write` (or `appsec_vm_write`) on the application key"
    ), out
