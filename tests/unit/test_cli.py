"""The ``triage-bot`` command line: parsing, exit codes and the store-backed exports."""

from __future__ import annotations

import argparse
import gc
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.__main__ import _parse_since, build_parser, main
from bot.settings import Settings


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A clean environment (no settings, no .env) with the store in a temp directory."""
    monkeypatch.chdir(tmp_path)
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setenv("TRIAGE_DB", str(tmp_path / "triage.db"))
    monkeypatch.setenv("LOG_LEVEL", "warning")
    return tmp_path


def test_parser_knows_every_command() -> None:
    """Each subcommand parses with its options and defaults."""
    parser = build_parser()
    assert parser.parse_args(["serve", "--port", "8080"]).port == 8080
    shell = parser.parse_args(["shell", "--sandbox", "--user", "U0BOB"])
    assert shell.sandbox is True and shell.user == "U0BOB"
    assert parser.parse_args(["shell"]).sandbox is False and parser.parse_args(["shell"]).user is None
    assert parser.parse_args(["check"]).command == "check"
    imp = parser.parse_args(["mappings", "import", "team.csv", "--apply-good-rows"])
    assert imp.file == "team.csv" and imp.apply_good_rows is True and imp.team is None
    assert parser.parse_args(["mappings", "export"]).format == "csv"
    assert parser.parse_args(["mappings", "export", "--format", "yaml"]).format == "yaml"
    audit = parser.parse_args(["audit", "export", "--format", "csv"])
    assert audit.format == "csv" and audit.since == 0.0


@pytest.mark.parametrize(
    "argv", [[], ["bogus"], ["mappings"], ["audit", "export", "--format", "xml"], ["serve", "--port", "http"]]
)
def test_bad_arguments_exit_2_with_usage(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """A missing or unknown command or option value is argparse's exit 2 with a usage line."""
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "usage: triage-bot" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("value", "delta"),
    [
        ("7d", timedelta(days=7)),
        ("12h", timedelta(hours=12)),
        ("30m", timedelta(minutes=30)),
        (" 1d ", timedelta(days=1)),
    ],
)
def test_since_relative(value: str, delta: timedelta) -> None:
    """``7d``, ``12h`` and ``30m`` mean that long before now."""
    expected = (datetime.now(UTC) - delta).timestamp()
    assert abs(_parse_since(value) - expected) < 5


def test_since_absolute_dates() -> None:
    """An ISO date or date-time is taken as given, in UTC when it has no offset."""
    assert _parse_since("2025-01-17") == datetime(2025, 1, 17, tzinfo=UTC).timestamp()
    assert _parse_since("2025-01-17T10:00:00+02:00") == datetime(2025, 1, 17, 8, tzinfo=UTC).timestamp()


@pytest.mark.parametrize("value", ["yesterday", "7w", "-1d", ""])
def test_since_rejects_other_text(value: str) -> None:
    """Anything else is an argparse type error naming the accepted forms."""
    with pytest.raises(argparse.ArgumentTypeError, match="7d, 12h, 30m or an ISO date"):
        _parse_since(value)


def test_since_error_through_the_cli(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``audit export --since soon`` exits 2 and says what --since takes."""
    with pytest.raises(SystemExit) as exc:
        main(["audit", "export", "--since", "soon"])
    assert exc.value.code == 2
    assert "--since takes 7d, 12h, 30m or an ISO date" in capsys.readouterr().err


def test_exports_on_an_empty_store(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """On a fresh database the exports succeed: a CSV header, empty YAML and JSON lines, a CSV ledger header."""
    assert main(["mappings", "export"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split(",")[:2] == ["slack", "datadog"] and len(out.splitlines()) == 1
    assert main(["mappings", "export", "--format", "yaml"]) == 0
    assert capsys.readouterr().out.strip() in ("", "[]", "{}", "mappings: []", "mappings: {}")
    assert main(["audit", "export", "--since", "7d"]) == 0
    assert capsys.readouterr().out == ""
    assert main(["audit", "export", "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines() == ["id,at,verb,outcome"]
    assert (env / "triage.db").exists()


def test_sandbox_shell_leaves_the_operators_store_alone(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A sandbox session acts (its reply is shown) but writes nothing to TRIAGE_DB's ledger."""
    import asyncio
    import io

    from bot.ops.shell import run_shell

    out = io.StringIO()
    script = io.StringIO("assign xpanse:5471 to me\nquit\n")
    assert asyncio.run(run_shell(sandbox=True, stdin=script, stdout=out)) == 0
    assert "xpanse:5471" in out.getvalue() and "1 done" in out.getvalue()
    assert main(["audit", "export", "--since", "1d"]) == 0
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"DD_API_KEY": "dd-api-key-that-must-not-print"}, ["  - DD_APP_KEY is required when DD_API_KEY is set"]),
        ({"DD_SITE": "bogus"}, ["  - DD_SITE: Input should be 'datadoghq.com'"]),
        (
            {"DD_API_KEY": "dd-api-key-that-must-not-print", "XPANSE_API_KEY": "xpanse-key-that-must-not-print"},
            [
                "  - DD_APP_KEY is required when DD_API_KEY is set",
                "  - XPANSE_API_URL is required when XPANSE_API_KEY is set",
                "  - XPANSE_API_KEY_ID is required when XPANSE_API_KEY is set",
            ],
        ),
        (
            {"TRIAGE_WORKERS": "0", "KIBANA_URL": "kibana.local"},
            [
                "  - TRIAGE_WORKERS: Input should be greater than or equal to 1",
                "  - KIBANA_URL: must be an http(s) URL",
                "  - KIBANA_API_KEY is required when KIBANA_URL is set",
            ],
        ),
    ],
)
def test_invalid_settings_exit_2_with_one_line_per_problem(
    env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    settings: dict[str, str],
    expected: list[str],
) -> None:
    """Every command refuses invalid settings with exit 2 and one line per problem, printing no secret."""
    for key, value in settings.items():
        monkeypatch.setenv(key, value)
    for command in (["check"], ["mappings", "export"], ["audit", "export"], ["serve"], ["shell"]):
        assert main(command) == 2
        out, err = capsys.readouterr()
        problems = [line for line in err.splitlines() if line.startswith("  - ")]
        assert len(problems) == len(expected), err
        for line in expected:
            assert any(p.startswith(line) for p in problems), err
        assert "must-not-print" not in out + err


def test_field_and_pair_problems_are_reported_together(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """DD_API_KEY without DD_APP_KEY and DD_SITE=bogus are both reported, one line each."""
    monkeypatch.setenv("DD_API_KEY", "dd-api-key-that-must-not-print")
    monkeypatch.setenv("DD_SITE", "bogus")
    assert main(["check"]) == 2
    problems = [line for line in capsys.readouterr().err.splitlines() if line.startswith("  - ")]
    assert len(problems) == 2


def test_serve_without_slack_credentials_exits_2(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``serve`` with no Slack token names both missing settings and starts nothing."""
    assert main(["serve", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "SLACK_BOT_TOKEN is required to serve" in err and "SLACK_SIGNING_SECRET is required" in err


def test_check_with_nothing_configured_says_so(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``check`` on an empty configuration lists every platform and Slack as not configured, exit 0;
    the database (not created yet) is reachable and left for ``serve`` or ``db upgrade`` to migrate."""
    assert main(["check"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:3] == ["Datadog: not configured", "Kibana: not configured", "Xpanse: not configured"]
    assert lines[3].startswith("Database (") and "ok — reachable, not yet at revision" in lines[3]
    assert lines[4:] == ["Slack: not configured (SLACK_BOT_TOKEN is not set)"]


def test_db_upgrade_then_copy_to_another_file(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``db upgrade`` migrates TRIAGE_DB; ``db copy`` fills an empty database and refuses a full one."""
    assert main(["db", "upgrade"]) == 0
    assert "at revision" in capsys.readouterr().out
    target = str(env / "copy.db")
    assert main(["db", "copy", "--to", target]) == 0
    out = capsys.readouterr().out
    assert "jobs: 0 rows" in out and f"to {target}" in out
    assert main(["db", "copy", "--to", target]) == 0  # still empty: nothing was in the source
    assert main(["db", "copy", "--from", str(env / "missing.db"), "--to", target]) == 1
    assert "there is no database at" in capsys.readouterr().err


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_when_slack_cannot_be_reached_says_so_in_one_line(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``serve`` asks Slack who it is before serving; unreachable, it exits 1 with the reason, no traceback,
    nothing left open, and the garbage collector (off while ``serve`` starts) on again."""
    url = f"http://127.0.0.1:{_closed_port()}/api/"
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-token-that-must-not-print")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "secret-that-must-not-print")
    monkeypatch.setenv("SLACK_API_URL", url)
    assert main(["serve", "--port", "0", "--role", "web"]) == 1
    err = capsys.readouterr().err
    assert f"cannot reach Slack at {url} for auth.test" in err and "SLACK_API_URL" in err
    assert "Traceback" not in err and "Unclosed" not in err and "must-not-print" not in err
    assert gc.isenabled()
