"""The TRIAGE_ONCALL file is validated at start with one line per problem, and the pairing rule."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from bot.core.oncall import pairs
from bot.core.oncall_config import load_oncall
from bot.errors import ConfigError


def test_valid_file_reads_with_defaults(tmp_path: Path) -> None:
    """A schedule without mode, grace or platforms gets confirm, 15 minutes and every platform."""
    path = tmp_path / "o.yaml"
    path.write_text("schedules:\n  - {name: p, source: pagerduty, id: PABC123, channel: C0SECOPS}\npoll: 2m\n")
    config = load_oncall(str(path))
    assert config.poll == timedelta(minutes=2)
    assert config.schedules[0].mode == "confirm" and config.schedules[0].grace == timedelta(minutes=15)


def test_every_problem_is_one_line(tmp_path: Path) -> None:
    """Bad source, channel, mode, grace and an unknown key are each reported on their own line."""
    path = tmp_path / "o.yaml"
    path.write_text(
        "schedules:\n  - {name: p, source: opsgenie, id: X, channel: nope, mode: maybe, grace: soon, colour: red}\n"
    )
    with pytest.raises(ConfigError) as info:
        load_oncall(str(path))
    text = "\n".join(info.value.problems)
    for key in ("source", "channel", "mode", "grace", "colour"):
        assert f"schedules[0].{key}" in text


def test_source_without_credentials_is_refused(tmp_path: Path) -> None:
    """A PagerDuty schedule without PAGERDUTY_API_KEY fails at start, naming the variable."""
    path = tmp_path / "o.yaml"
    path.write_text("schedules:\n  - {name: p, source: pagerduty, id: PABC123, channel: C0SECOPS}\n")
    with pytest.raises(ConfigError, match="PAGERDUTY_API_KEY"):
        load_oncall(str(path), sources=["datadog"])


def test_pairs_leavers_to_newcomers() -> None:
    """Each leaver hands to a newcomer; extra leavers to the first newcomer, or to who stays on call."""
    assert pairs(["a"], ["b"], ["b", "c"]) == [("a", "b")]
    assert pairs(["a", "d"], ["b"], ["b"]) == [("a", "b"), ("d", "b")]
    assert pairs(["a"], [], ["c"]) == [("a", "c")]
    assert pairs(["a"], [], []) == []
