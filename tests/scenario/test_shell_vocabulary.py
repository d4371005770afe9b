"""The shell learns every new verb: mute and unmute by button and form, detach, reopen, ack, tag
(typed and by form),
and the Xpanse card's alert count and top assets, against the sandbox tenants."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.ops.shell.run import tour
from bot.sandbox import SEED
from tests.scenario.test_shell import shell_session

F0, F1, F2 = SEED.findings
D0 = SEED.alerts_default[0]
I0 = SEED.incidents[0]

SCRIPT = f"""\
show dd:{F1}
press mute 1
2
2099-01-31
accepted until the Q3 fix
press unmute 1
resolve dd:{F2} reason pending_fix for 30d -- fix in flight
reopen dd:{F2}
attach dd:{F0} to case {SEED.case_key}
detach dd:{F0}
show kibana:{D0}
press acknowledge 2
press tags 2
+reviewed
tag kibana:{D0} +triaged -noise
resolve kibana:{D0} reason duplicate
reopen kibana:{D0}
show xpanse:{I0}
reopen xpanse:{I0}
resolve dd:{F2} reason maybe
quit
"""


async def test_the_new_verbs_work_in_a_scripted_sandbox_session(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Each new verb, typed or pressed in the sandbox shell, shows its result."""
    monkeypatch.chdir(tmp_path)
    out = await shell_session(SCRIPT, sandbox=True)
    assert out.rstrip().endswith("bye")
    sections = out.split("triage(@")

    def after(command: str) -> str:
        return next(s for s in sections if s.split("> ", 1)[-1].startswith(command))

    muted = after("press mute 1")
    assert "form: Mute findings" in muted and "Muted: yes (risk_accepted), until 2099-01-31 23:59 UTC" in muted
    assert "Muted: no" in after("press unmute 1")
    assert "muted (pending_fix) until" in after(f"resolve dd:{F2} reason pending_fix")
    assert "unmuted (other)" in after(f"reopen dd:{F2}")
    assert "detached from its case" in after(f"detach dd:{F0}")
    assert "Status: acknowledged" in after("press acknowledge 2")
    assert "form: Tag alerts" in after("press tags 2") and "tagged +reviewed" in after("press tags 2")
    assert "tagged +triaged -noise" in after("tag kibana:")
    assert "reopened" in after(f"reopen kibana:{D0}")
    card = after(f"show xpanse:{I0}")
    assert "Alerts: 2" in card and "Top assets: 203.0.113.10, rdp.example.com" in card
    assert "not resolved (new)" in after(f"reopen xpanse:{I0}")
    assert "`maybe` is not a Datadog reason" in after(f"resolve dd:{F2} reason maybe")


def test_the_tour_names_every_new_verb() -> None:
    """The banner's tour shows mute, unmute, detach, reopen, ack and tag."""
    text = tour("alice")
    for words in (
        "press mute",
        "press unmute",
        "detach dd:",
        "reopen kibana:",
        "reopen xpanse:",
        "ack kibana:",
        "tag kibana:",
    ):
        assert words in text
