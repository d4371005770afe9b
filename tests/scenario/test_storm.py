"""A storm of 1,000 alerts against a Slack that enforces its per-channel pace: none lost, none twice."""

from __future__ import annotations

import time

from bot.sandbox.slack_pace import ChannelPace
from bot.sandbox.storm import represented, send_storm, storm_alerts
from tests.fakes.slack import SlackFake
from tests.scenario.conftest import MakeBot
from tests.scenario.harness import CHANNEL

TOKEN = "hook-token-123456"
XP_CHANNEL = "CXPANSE"


async def test_thousand_alerts_all_represented_once_at_slacks_pace(make_bot: MakeBot, slack_fake: SlackFake) -> None:
    """1,000 alerts: all 202, every one a card or a digest row exactly once, no call inside a Retry-After."""
    # The poster is configured a little faster than this Slack allows, so it meets 429s.
    slack_fake.pace = ChannelPace(rate=4.0, burst=1)
    bot = await make_bot(triage_post_interval=0.2, triage_alert_routes={"xpanse": XP_CHANNEL})
    alerts = storm_alerts(1000)
    started = time.monotonic()
    answers = await send_storm(bot.http, bot.url, TOKEN, alerts)
    accepted_s = time.monotonic() - started
    assert {r.status_code for r in answers} == {202}
    assert sum(len(r.json()["accepted"]) for r in answers) == 1000
    await bot.posted(timeout=90)
    took = time.monotonic() - started
    shown = represented(slack_fake, [CHANNEL, XP_CHANNEL])
    keys = [a.key for a in alerts]
    lost, duplicated = shown.lost(keys), shown.duplicated()
    pace = slack_fake.pace
    print(
        f"\nstorm: alerts=1000 accepted_in={accepted_s:.2f}s cards={shown.cards} digests={shown.digests} "
        f"429s={len(pace.rate_limited)} early_calls={len(pace.early_calls)} lost={len(lost)} "
        f"duplicated={len(duplicated)} represented_in={took:.1f}s"
    )
    assert lost == [] and duplicated == []
    assert set(shown.seen) == set(keys)
    assert shown.digests >= 2
    assert pace.early_calls == [], "a call reached a channel inside its Retry-After"
    metrics = (await bot.http.get(f"{bot.url}/metrics")).text
    assert f'triage_intake_queue_depth{{channel="{CHANNEL}"}} 0.0' in metrics
    assert 'triage_intake_alerts_total{outcome="digested"}' in metrics

    # Re-delivering the whole storm adds nothing to Slack.
    before = sum(len(slack_fake.messages_in(c)) for c in (CHANNEL, XP_CHANNEL))
    again = await send_storm(bot.http, bot.url, TOKEN, alerts)
    assert {a["outcome"] for r in again for a in r.json()["accepted"]} == {"unchanged"}
    await bot.posted(timeout=30)
    assert sum(len(slack_fake.messages_in(c)) for c in (CHANNEL, XP_CHANNEL)) == before


async def test_a_few_alerts_are_cards_not_a_digest(make_bot: MakeBot, slack_fake: SlackFake) -> None:
    """At most TRIAGE_DIGEST_AFTER alerts waiting: each gets its own card, no digest."""
    bot = await make_bot(triage_digest_after=10)
    alerts = [a for a in storm_alerts(30) if a.platform == "datadog"]
    assert len(alerts) == 10
    await send_storm(bot.http, bot.url, TOKEN, alerts)
    await bot.posted()
    shown = represented(slack_fake, [CHANNEL])
    assert (shown.cards, shown.digests) == (10, 0)
    assert len(bot.cards(CHANNEL)) == 10
