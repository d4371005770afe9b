"""The reporter's writes to the surfaces that are not messages: the App Home and link unfurls.

Mixed into ``bot.slack.reporter.Reporter`` (the only code that writes to Slack after
the acknowledgement). Slack failures are logged, not raised: a Home or an unfurl that
did not land is redrawn the next time the user opens the tab or pastes the link.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog

from bot.core.answers import Cards, HomeItems
from bot.models import ItemState, Target
from bot.slack import blocks
from bot.slack_web import SlackApiError, SlackRequestError, SlackWeb

log = structlog.get_logger(__name__)


class SurfaceWriter:
    """``views.publish`` for the Home tab and ``chat.unfurl`` for pasted links."""

    slack: SlackWeb

    async def mentions(self, state: ItemState) -> list[str]:  # pragma: no cover - the Reporter's
        raise NotImplementedError

    async def publish_home(self, user_id: str, home: HomeItems | None, *, refused: str | None = None) -> None:
        """Publish ``user_id``'s Home tab (or, when refused, the reason)."""
        if home is None:
            # The refusal is bot-written mrkdwn naming who may (mentions must stay live).
            text = blocks.cut(f":no_entry: {refused or 'Nothing to show.'}", 2900)
            view: dict[str, Any] = {
                "type": "home",
                "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}],
            }
        else:
            view = blocks.home_view(home.user, home.held, home.handoffs)
        try:
            await self.slack.views_publish(user_id=user_id, view=view)
        except (SlackApiError, SlackRequestError, TimeoutError) as exc:
            log.warning("home_publish_failed", error=type(exc).__name__)

    async def unfurl(
        self, *, channel: str, ts: str, links: Mapping[str, Target], cards: Cards, unfurl_id: str | None = None
    ) -> None:
        """Unfurl each link Slack told about as its item's compact card."""
        unfurls: dict[str, dict[str, Any]] = {}
        for url, target in links.items():
            state = cards.states.get(target.key)
            if state is None:
                unfurls[url] = {"blocks": blocks.missing_card(target, cards.problems.get(target.key, "not found"))}
            else:
                unfurls[url] = {"blocks": blocks.unfurl_card(state, assignee_mentions=await self.mentions(state))}
        if not unfurls:
            return
        try:
            await self.slack.chat_unfurl(channel=channel, ts=ts, unfurls=unfurls)
        except (SlackApiError, SlackRequestError, TimeoutError) as exc:
            log.warning("unfurl_failed", error=type(exc).__name__, unfurl_id=unfurl_id)
