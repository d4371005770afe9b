"""TRIAGE_POLICY end to end: each kind of rule allows and refuses; a refusal writes nothing but the ledger."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from bot.slack.ids import ActionId
from tests.fakes.datadog import DatadogFake
from tests.fakes.kibana import ElasticsearchFake, KibanaFake
from tests.fakes.slack import SlackFake
from tests.fakes.xpanse import XpanseFake
from tests.scenario.conftest import ALICE, BOB, CAROL, KB_ALICE, seed_people
from tests.scenario.harness import CHANNEL, BotHarness, fake_settings
from tests.scenario.test_concurrency import post_card

ADMIN = "U0ADMIN"
SOC_CHANNEL = "C0SOC"
POLICY = f"""
admins:
  users: [{ADMIN}]
verbs:
  resolve: {{users: [{ALICE}]}}
  assign: {{groups: [S0SOC]}}
  unassign: {{channels: [{SOC_CHANNEL}]}}
"""


@pytest_asyncio.fixture
async def guarded(
    tmp_path: Path,
    slack_fake: SlackFake,
    datadog_fake: DatadogFake,
    kibana_fake: KibanaFake,
    elasticsearch_fake: ElasticsearchFake,
    xpanse_fake: XpanseFake,
) -> AsyncIterator[BotHarness]:
    """The bot with a policy naming a user, a user group and a channel; Alice is in the group, Bob is not."""
    seed_people(slack_fake, datadog_fake, elasticsearch_fake, xpanse_fake)
    slack_fake.add_user(ADMIN, email="admin@example.com", real_name="Ada Admin")
    slack_fake.add_usergroup("S0SOC", [ALICE])
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    settings = fake_settings(
        db=str(tmp_path / "triage.db"),
        slack=slack_fake,
        datadog=datadog_fake,
        kibana=kibana_fake,
        es=elasticsearch_fake,
        xpanse=xpanse_fake,
        triage_policy=str(policy),
    )
    harness = await BotHarness(settings, slack_fake).start()
    try:
        yield harness
    finally:
        await harness.stop()


async def refusals(bot: BotHarness) -> list[tuple[str, str, str | None]]:
    return [(e.actor_id, e.verb, e.target) for e in await bot.svc.jobs.ledger_since(0) if e.outcome == "refused"]


async def test_user_rule_allows_the_named_user_and_refuses_others(guarded: BotHarness, kibana_fake: KibanaFake) -> None:
    """`resolve: {users: [alice]}`: Bob is told who may, nothing written, refusal in the ledger; Alice resolves."""
    kibana_fake.add_alert("r1")
    resp = await guarded.command("resolve kibana:r1", user=BOB)
    assert f"Only <@{ALICE}> may" in resp.text, resp.text
    await guarded.settle()
    assert kibana_fake.writes() == []
    assert await refusals(guarded) == [(BOB, "resolve", "kibana:r1")]
    resp = await guarded.command("resolve kibana:r1", user=ALICE)
    assert "On it" in resp.text
    await guarded.settle()
    assert kibana_fake.status("r1") == "closed"


async def test_group_rule_uses_slack_usergroups(
    guarded: BotHarness, kibana_fake: KibanaFake, slack_fake: SlackFake
) -> None:
    """`assign: {groups: [S0SOC]}`: membership comes from usergroups.users.list; outsiders are refused, members act."""
    kibana_fake.add_alert("g1")
    resp = await guarded.command("assign kibana:g1 to me", user=BOB)
    assert "S0SOC" in resp.text, resp.text
    await guarded.settle()
    assert kibana_fake.writes() == []
    assert slack_fake.calls_to("usergroups.users.list")
    resp = await guarded.command("assign kibana:g1 to me", user=ALICE)
    assert "On it" in resp.text, resp.text
    await guarded.settle()
    assert kibana_fake.assignees("g1") == [KB_ALICE]
    assert await refusals(guarded) == [(BOB, "assign", "kibana:g1")]


async def test_channel_rule_allows_only_in_that_channel(guarded: BotHarness, kibana_fake: KibanaFake) -> None:
    """`unassign: {channels: [C0SOC]}`: refused in another channel, allowed in the named one."""
    kibana_fake.add_alert("c1", assignees=[KB_ALICE])
    resp = await guarded.command("unassign kibana:c1", user=BOB, channel=CHANNEL)
    assert SOC_CHANNEL in resp.text, resp.text
    await guarded.settle()
    assert kibana_fake.writes() == []
    assert await refusals(guarded) == [(BOB, "unassign", "kibana:c1")]
    resp = await guarded.command("unassign kibana:c1", user=BOB, channel=SOC_CHANNEL)
    assert "On it" in resp.text, resp.text
    await guarded.settle()
    assert kibana_fake.assignees("c1") == []


async def test_refused_button_click_gets_an_ephemeral_and_writes_nothing(
    guarded: BotHarness, kibana_fake: KibanaFake, slack_fake: SlackFake
) -> None:
    """A card click the policy refuses is explained to the clicker only and leaves the platform untouched."""
    kibana_fake.add_alert("b1")
    ts = await post_card(guarded, "kibana", {"id": "b1", "title": "Brute force"})
    await guarded.click_on_card(ActionId.ASSIGN_ME, channel=CHANNEL, ts=ts, user=CAROL)
    await guarded.settle()
    texts = [str(r.get("text")) for r in slack_fake.responses]
    assert any("S0SOC" in t for t in texts), slack_fake.responses
    assert all(r.get("response_type") == "ephemeral" for r in slack_fake.responses)
    assert kibana_fake.writes() == []
    assert await refusals(guarded) == [(CAROL, "assign", "kibana:b1")]


async def test_admin_may_hand_off_someone_else(
    guarded: BotHarness, kibana_fake: KibanaFake, slack_fake: SlackFake
) -> None:
    """`handoff_others` is admin-only by default: the admin's request is accepted and previewed."""
    kibana_fake.add_alert("h1", assignees=[KB_ALICE])
    resp = await guarded.command(f"handoff <@{ALICE}> to <@{BOB}>", user=ADMIN)
    assert "Collecting" in resp.text, resp.text
    await guarded.settle()
    assert any("Handoff preview" in str(c.args.get("text")) for c in slack_fake.calls_to("chat.postMessage"))
    resp = await guarded.command(f"handoff <@{ALICE}> to <@{BOB}>", user=CAROL)
    assert "admins" in resp.text.lower(), resp.text
    assert kibana_fake.writes() == []


async def test_refusals_and_changes_appear_in_the_audit_export(
    guarded: BotHarness, kibana_fake: KibanaFake, slack_fake: SlackFake, tmp_path: Path
) -> None:
    """`triage-bot audit export` (a real child process on the same DB) lists the refusal and the change."""
    import csv
    import io
    import json
    import subprocess
    import sys

    from tests.scenario.proc_bot import REPO, bot_env

    kibana_fake.add_alert("a1")
    await guarded.command("resolve kibana:a1", user=BOB)
    await guarded.command("resolve kibana:a1", user=ALICE)
    await guarded.settle()
    env = bot_env(db=guarded.settings.triage_db, slack=slack_fake)
    out = {}
    for fmt in ("jsonl", "csv"):
        proc = subprocess.run(  # noqa: ASYNC221 - a short, bounded CLI run
            [sys.executable, "-m", "bot", "audit", "export", "--since", "1d", "--format", fmt],
            cwd=REPO,
            env=env,
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr.decode()
        out[fmt] = proc.stdout.decode()
    lines = [json.loads(line) for line in out["jsonl"].splitlines()]
    assert [(e["actor_id"], e["verb"], e["outcome"]) for e in lines] == [
        (BOB, "resolve", "refused"),
        (ALICE, "resolve", "done"),
    ]
    assert lines[1]["before"] == "open" and lines[1]["after"] == "closed" and lines[1]["job_id"]
    rows = list(csv.DictReader(io.StringIO(out["csv"])))
    assert [r["outcome"] for r in rows] == ["refused", "done"]
