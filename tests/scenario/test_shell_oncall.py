"""``triage-bot shell --sandbox``: the seeded on-call schedule, `rotate`, `press confirm` and `oncall`."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.ops.shell.run import tour
from bot.sandbox import SEED
from tests.scenario.test_shell import shell_session

F0 = SEED.findings[0]

SCRIPT = f"""\
help
oncall
assign dd:{F0} to @alice
rotate
press confirm
mine @bob
oncall
rotate to @carol
rotate
oncall
rotate nope
rotate to @nobody
quit
"""


async def test_rotate_then_confirm_moves_the_items_in_a_scripted_session(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`rotate` shows the shift-change preview at once; `press confirm` hands alice's item to bob; a second
    rotation back before Confirm is a flip back; `oncall` shows who is on now and next."""
    monkeypatch.chdir(tmp_path)
    out = await shell_session(SCRIPT, sandbox=True)
    assert out.rstrip().endswith("bye")
    sections = out.split("triage(@")

    def after(command: str, nth: int = 0) -> str:
        return [s for s in sections if s.split("> ", 1)[-1].split("\n", 1)[0] == command][nth]

    assert "rotate [schedule] [to @person]" in after("help")
    first = after("oncall")
    assert "secops-primary (datadog, confirm)" in first and "on call now: @alice" in first and "next: @bob" in first
    rotated = after("rotate")
    assert "Shift change on secops-primary: alice@sandbox.example → bob@sandbox.example" in rotated
    assert "1 open item of @alice will be assigned to @bob" in rotated and "[Hand off 1 item] [Cancel]" in rotated
    confirmed = after("press confirm")
    assert "handed off @alice's items to @bob" in confirmed and f"✔ `dd:{F0}`" in confirmed
    assert f"`dd:{F0}`" in after("mine @bob")
    second = after("oncall", 1)
    assert "on call now: @bob" in second and "pending handoff" not in second
    assert "of @bob will be assigned to @carol" in after("rotate to @carol")
    assert "flipped back to bob@sandbox.example" in after("rotate", 1)
    third = after("oncall", 2)
    assert "on call now: @bob" in third and "pending handoff" not in third
    assert "Which schedule? Configured: secops-primary" in after("rotate nope")
    assert "not in the schedule's roster" in after("rotate to @nobody")


def test_the_tour_names_rotate_and_oncall() -> None:
    """The banner's tour shows the shift change a newcomer can watch in the first minute."""
    text = tour("alice")
    assert "rotate" in text and "oncall" in text and SEED.schedule in text
