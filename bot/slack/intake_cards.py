"""What the alert poster posts: alert cards (as the reporter draws them), storm digests, change notes.

Kept apart from the digest's listeners (``bot.slack.digest``) so that the worker process, which
runs the poster, does not load Bolt.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.models import ItemState
from bot.slack import blocks
from bot.slack.blocks import digest as dblocks
from bot.slack.reporter import Reporter
from bot.store.intake import DigestRow

Blocks = list[dict[str, Any]]


class IntakeCards:
    """What the poster posts: alert cards (as the reporter draws them), digests, change notes."""

    def __init__(self, reporter: Reporter) -> None:
        self.reporter = reporter

    async def card(self, state: ItemState) -> tuple[str, Blocks]:
        return blocks.alert_card_text(state), await self.reporter.card(state)

    def digest(self, digest_id: str, rows: Sequence[DigestRow]) -> tuple[str, Blocks]:
        return dblocks.digest_text(rows), dblocks.digest_blocks(digest_id, rows)

    def change(self, state: ItemState, note: str) -> tuple[str, Blocks]:
        text = dblocks.change_note_text(state.target.key, blocks.esc(note))
        return text, [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]
