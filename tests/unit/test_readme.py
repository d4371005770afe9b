"""The README's command reference is checked against the one grammar the parser uses."""

from __future__ import annotations

import re
from pathlib import Path

from bot.settings import Settings
from bot.slack.commands import GRAMMAR

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def _command_block() -> list[str]:
    section = README.split("## Commands", 1)[1]
    block = section.split("```", 2)[1]
    return [line.strip() for line in block.strip().splitlines()]


def test_readme_lists_exactly_the_grammar() -> None:
    """Every usage line of the grammar is in the README's command block, and nothing else is."""
    assert _command_block() == [spec.usage for spec in GRAMMAR]


def test_readme_documents_every_setting() -> None:
    """Each environment variable the settings read appears in the configuration table."""
    table = README.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", table))
    missing = {name.upper() for name in Settings.model_fields} - documented
    assert not missing, f"undocumented settings: {sorted(missing)}"
