"""The shell shows cards that stay true: `remind` nudges, `reconcile` redraws a card changed outside Slack."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.sandbox import SEED
from tests.scenario.test_shell import shell_session


async def test_remind_then_reconcile_in_the_sandbox(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`remind` nudges the critical unassigned card once in its thread; `reconcile` redraws it after Bob takes it."""
    monkeypatch.chdir(tmp_path)
    script = f"show dd:{SEED.findings[2]}\nremind\nremind\nreconcile\nhelp\nquit\n"
    out = await shell_session(script, sandbox=True)
    sections = out.split("triage(@")
    first_remind, second_remind = [s for s in sections if s.split("> ", 1)[-1].startswith("remind")]
    assert "in the thread of card #1" in first_remind and "still unassigned 30m" in first_remind
    # The sandbox seeds an on-call schedule (secops-primary, alice on call) for the shell's channel.
    assert "@alice, on call for secops-primary" in first_remind and "1 reminders sent" in first_remind
    assert "0 reminders sent" in second_remind and "thread of card" not in second_remind
    reconciled = next(s for s in sections if s.split("> ", 1)[-1].startswith("reconcile"))
    assert "(outside Slack) in Datadog, Bob Builder assigns" in reconciled
    assert "card #1 [SANDBOX] updated" in reconciled and "changed outside Slack" in reconciled
    assert "Assignee: Bob Builder" in reconciled and "1 redrawn" in reconciled
    assert "reconcile [n] · remind" in out


async def test_reconcile_without_a_card_says_how(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`reconcile` before any card, or with a bad number, explains itself and changes nothing."""
    monkeypatch.chdir(tmp_path)
    out = await shell_session("reconcile\nremind soon\nquit\n", sandbox=True)
    assert "Usage: reconcile [card number]" in out and "Usage: remind [minutes" in out
