"""``triage-bot shell``: the sandbox tenants, every verb through the real app, and real mode."""

from __future__ import annotations

import asyncio
import io
import os
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from bot.errors import PlatformAuthError
from bot.models import Outcome, Platform, Target
from bot.ops.shell import run_shell
from bot.platforms import build_clients
from bot.platforms.base import PlatformClient
from bot.sandbox import PEOPLE, SEED, Sandbox
from bot.sandbox.render import mrkdwn, render_blocks
from bot.settings import Settings, load_settings
from tests.fakes.datadog import DatadogFake
from tests.fakes.kibana import ElasticsearchFake, KibanaFake
from tests.fakes.slack import SlackFake
from tests.fakes.xpanse import XpanseFake
from tests.scenario.conftest import ALICE, DD_ALICE, seed_people
from tests.scenario.harness import fake_settings

Tenants = tuple[Sandbox, dict[Platform, PlatformClient]]

ROOT = Path(__file__).resolve().parents[2]
ALICE_S, BOB_S, CAROL_S = PEOPLE
F0, F1, F2 = SEED.findings


@pytest_asyncio.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[tuple[Sandbox, dict[Platform, PlatformClient]]]:
    """The sandbox tenants with the real platform clients pointed at them."""
    tenants = await Sandbox().start()
    clients = build_clients(load_settings(**tenants.settings_overrides(str(tmp_path / "t.db"))))
    try:
        yield tenants, clients
    finally:
        for client in clients.values():
            await client.aclose()
        await tenants.stop()


async def shell_session(script: str, **kwargs: object) -> str:
    """Run a scripted shell session (bounded) and return everything it printed."""
    out = io.StringIO()
    status = await asyncio.wait_for(run_shell(stdin=io.StringIO(script), stdout=out, **kwargs), 60)  # type: ignore[arg-type]
    assert status == 0
    return out.getvalue()


# ---- the sandbox tenants behave like the vendors under the real clients -----------------------


async def test_sandbox_tenants_pass_the_real_clients_checks(sandbox: Tenants) -> None:
    """Each real client's cheapest authenticated call succeeds against its sandbox tenant."""
    _, clients = sandbox
    assert set(clients) == set(Platform)
    assert "keys accepted" in await clients[Platform.DATADOG].check()
    assert "2 alerts in space default" in await clients[Platform.KIBANA].check()
    assert "3 incidents visible" in await clients[Platform.XPANSE].check()


async def test_datadog_sandbox_refuses_an_unknown_finding_whole(
    sandbox: Tenants,
) -> None:
    """Assigning a known and an unknown finding: 404 for the batch, then the known one alone changes."""
    tenants, clients = sandbox
    dd = clients[Platform.DATADOG]
    known, unknown = Target(platform=Platform.DATADOG, id=F0), Target(platform=Platform.DATADOG, id="bm9wZQ==")
    result = await dd.assign([known, unknown], ALICE_S.datadog or "")
    outcomes = {i.target.id: i for i in result.items}
    assert outcomes[F0].outcome is Outcome.DONE and outcomes[F0].status == 202
    assert outcomes["bm9wZQ=="].outcome is Outcome.NOT_FOUND and outcomes["bm9wZQ=="].status == 404
    assert tenants.datadog.findings[F0]["assignee_id"] == ALICE_S.datadog
    attached = await dd.attach_case([known], SEED.case_key)
    assert attached.items[0].outcome is Outcome.DONE and attached.items[0].after == SEED.case_key
    state = (await dd.fetch([known]))[known]
    assert state.case == SEED.case_key and state.assignees == [ALICE_S.datadog]
    assert [s.target.id for s in await dd.list_assigned(BOB_S.datadog or "")] == [F1]
    found = await dd.find_user_by_email(BOB_S.email)
    assert found is not None and found.id == BOB_S.datadog


async def test_kibana_sandbox_counts_updates_per_space(sandbox: Tenants) -> None:
    """Writes report updated counts: an id from another space is NOT_FOUND, a second close is SKIPPED."""
    tenants, clients = sandbox
    kb = clients[Platform.KIBANA]
    in_secops = Target(platform=Platform.KIBANA, id=SEED.alerts_secops[0], space="secops")
    wrong_space = Target(platform=Platform.KIBANA, id=SEED.alerts_secops[1])  # lives in secops, not default
    result = await kb.assign([in_secops, wrong_space], ALICE_S.kibana or "")
    outcomes = {i.target: i.outcome for i in result.items}
    assert outcomes == {in_secops: Outcome.DONE, wrong_space: Outcome.NOT_FOUND}
    assert tenants.kibana.alerts["secops"][in_secops.id]["kibana.alert.workflow_assignee_ids"] == [ALICE_S.kibana]
    assert (await kb.resolve([in_secops], reason="false_positive")).items[0].outcome is Outcome.DONE
    assert (await kb.resolve([in_secops])).items[0].outcome is Outcome.SKIPPED
    assert tenants.kibana.alerts["secops"][in_secops.id]["kibana.alert.workflow_reason"] == "false_positive"
    user = await kb.find_user_by_email(ALICE_S.email)
    assert user is not None and user.id == ALICE_S.kibana
    assert await kb.find_user_by_email(CAROL_S.email) is None  # her profile has no e-mail
    assert [s.target.id for s in await kb.list_assigned(BOB_S.kibana or "")] == [SEED.alerts_default[1]]


async def test_xpanse_sandbox_uses_the_reply_envelope(sandbox: Tenants) -> None:
    """update_incident answers {"reply": true}; an unknown assignee is the 500 error envelope; a bad key 401."""
    tenants, clients = sandbox
    xp = clients[Platform.XPANSE]
    incident = Target(platform=Platform.XPANSE, id=SEED.incidents[0])
    assert (await xp.assign([incident], ALICE_S.email)).items[0].outcome is Outcome.DONE
    # Bob leaves the tenant after the client cached the user list: the tenant itself refuses.
    del tenants.xpanse.users[BOB_S.email]
    failed = (await xp.assign([incident], BOB_S.email)).items[0]
    assert failed.outcome is Outcome.FAILED and failed.status == 500
    assert "does not exist in this tenant" in (failed.detail or "")
    assert (await xp.comment(incident, "checked")).outcome is Outcome.DONE
    assert (await xp.set_severity([incident], "low")).items[0].outcome is Outcome.DONE
    assert (await xp.resolve([incident], reason="resolved_-_no_risk", comment="ok")).items[0].outcome is Outcome.DONE
    stored = tenants.xpanse.incidents[incident.id]
    assert (
        stored.assigned_user_mail,
        stored.comments,
        stored.manual_severity,
        stored.status,
        stored.resolve_comment,
    ) == (ALICE_S.email, ["checked"], "low", "resolved_-_no_risk", "ok")
    tenants.xpanse.keys["7"] = ("standard", "rotated-key-the-client-does-not-have")
    with pytest.raises(PlatformAuthError) as exc:
        await xp.check()
    assert exc.value.status == 401 and "API key does not match (code 401)" in exc.value.reason


def test_block_kit_renders_as_readable_text() -> None:
    """Header, section text and fields, link accessory, context and buttons become plain lines."""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": "Datadog: Public bucket"}},
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": "Datadog `dd:abc` for <@U0BOB|bob>"},
            "fields": [
                {"type": "mrkdwn", "text": "*Severity*\nhigh"},
                {"type": "mrkdwn", "text": "*Assignee*\n_unassigned_"},
            ],
            "accessory": {
                "type": "button",
                "text": {"type": "plain_text", "text": "Open"},
                "url": "https://x.test/1",
                "action_id": "open_link",
            },
        },
        {"type": "context", "elements": [{"type": "mrkdwn", "text": ":white_check_mark: by <@U0ALICE> &amp; co"}]},
        {
            "type": "actions",
            "elements": [
                {"type": "button", "text": {"type": "plain_text", "text": "Assign…"}, "action_id": "assign_open"}
            ],
        },
    ]
    lines = render_blocks(blocks, name_of=lambda u: {"U0ALICE": "alice"}.get(u))
    assert lines == [
        "DATADOG: PUBLIC BUCKET",
        "Datadog `dd:abc` for @bob",
        "  Severity: high",
        "  Assignee: unassigned",
        "  ↗ Open: https://x.test/1",
        "  · ✔ by @alice & co",
        "[Assign…]",
    ]
    assert mrkdwn("<https://a.test|the doc> <!date^1|Jan 1> <!here>") == "the doc (https://a.test) Jan 1 @here"


# ---- the shell --------------------------------------------------------------------------------

EVERY_VERB = f"""\
/triage help
show dd:{F0}
press "Assign to me" 1
show kibana:secops/{SEED.alerts_secops[0]}
press assign 2
nobody
bob
show xpanse:{SEED.incidents[0]}
press resolve #3
2
host retired
assign dd:{F2} xpanse:{SEED.incidents[2]} to @bob
unassign dd:{F2}
attach dd:{F0} to case {SEED.case_key}
resolve kibana:secops/{SEED.alerts_secops[1]} reason false_positive -- noisy rule
comment xpanse:{SEED.incidents[1]} owner confirmed
severity xpanse:{SEED.incidents[1]} low
assign kibana:{SEED.alerts_default[0]} to @carol
map @carol kibana={CAROL_S.kibana}
assign kibana:{SEED.alerts_default[0]} to @carol
mine @bob
whoami
history dd:{F0}
handoff @bob to @alice
press confirm
unmap @carol kibana
shortcut please look at xpanse:{SEED.incidents[1]}
press refresh 1
cards
as @bob
press unassign 1
quit
"""


async def test_every_verb_works_in_a_scripted_sandbox_session(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A script drives commands, buttons, three modals, the shortcut and handoff; each shows its result."""
    monkeypatch.chdir(tmp_path)
    out = await shell_session(EVERY_VERB, sandbox=True)
    assert "=== SANDBOX" in out and out.rstrip().endswith("bye")
    assert "card #1 [SANDBOX]" in out and "[Assign to me] [Assign…] [Unassign] [Attach to case…]" in out
    # Every card shown carries the SANDBOX label.
    assert all("[SANDBOX]" in line for line in out.splitlines() if line.startswith("┌ card #"))
    sections = out.split("triage(@")

    def after(command: str) -> str:
        return next(s for s in sections if s.split("> ", 1)[-1].startswith(command))

    assert "/triage` commands" in after("/triage help")
    assert "Assignee: @alice" in after('press "Assign to me" 1')
    modal = after("press assign 2")
    assert "form: Assign" in modal and "pick a person" in modal and "Assignee: @bob" in modal
    resolved = after("press resolve #3")
    assert "Status: resolved_-_no_longer_observed" in resolved and "[Resolve…]" not in resolved.split("updated")[-1]
    assert "2 done" in after(f"assign dd:{F2}")
    assert "1 done" in after(f"unassign dd:{F2}")
    assert "1 done" in after("attach dd:") and "closed (false_positive)" in after("resolve kibana:")
    assert "comment added" in after("comment xpanse:") and "severity set to low" in after("severity xpanse:")
    unmapped, mapped = [s for s in sections if s.split("> ", 1)[-1].startswith("assign kibana:")]
    assert "/triage map" in unmapped and "1 done" in mapped
    assert "Mapped @carol" in after("map @carol")
    assert "@bob holds" in after("mine @bob") and "Identities of @alice" in after("whoami")
    assert "History of" in after("history dd:")
    assert "Handoff preview" in after("handoff @bob") and "Confirmed by @alice" in after("press confirm")
    assert "Removed @carol's Kibana mapping" in after("unmap @carol")
    assert f"xpanse:{SEED.incidents[1]}" in after("shortcut ")
    assert "#1 DATADOG: PUBLIC S3 BUCKET" in after("cards")
    assert "You are now @bob" in out and "Assignee: unassigned" in after("press unassign 1")


async def test_shell_explains_what_it_cannot_do(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Unknown buttons, cards, people and commands get a sentence; a cancelled form sends nothing."""
    monkeypatch.chdir(tmp_path)
    script = f"""\
help
press refresh
show dd:{F0}
press launch 1
press refresh 7
as @mallory
/deploy now
frobnicate dd:{F0}
press "Attach to case…" 1
cancel
card 1
"""
    out = await shell_session(script, sandbox=True)  # EOF ends it, no quit needed
    assert "press <button> [#]<n>" in out
    assert "No button 'refresh' on any card" in out
    assert "No button 'launch' on card #1" in out and "There is no card #7" in out
    assert "Who is '@mallory'?" in out and "Only /triage exists here, not /deploy" in out
    assert "Unknown command `frobnicate`" in out
    assert "form closed; nothing was sent" in out and "Case: —" in out.split("> card 1")[-1]
    assert "Traceback" not in out


async def test_piped_shell_runs_as_a_script_and_exits_on_eof(tmp_path: Path) -> None:
    """`printf '/triage help\\n/triage show dd:…\\n' | triage-bot shell --sandbox` prints both answers, exit 0."""
    env = {k: v for k, v in os.environ.items() if k.upper() not in {n.upper() for n in Settings.model_fields}}
    env["PYTHONPATH"] = str(ROOT)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "shell",
        "--sandbox",
        cwd=tmp_path,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(f"/triage help\n/triage show dd:{F1}\n".encode()), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
    text = out.decode()
    assert proc.returncode == 0, err.decode()
    assert "=== SANDBOX" in text and "/triage` commands" in text
    assert "IAM ACCESS KEY OLDER THAN 90 DAYS" in text and "Assignee: Bob Builder" in text
    assert text.rstrip().endswith("bye") and "Traceback" not in err.decode()


async def test_shell_acts_on_configured_platforms(
    tmp_path: Path,
    slack_fake: SlackFake,
    datadog_fake: DatadogFake,
    kibana_fake: KibanaFake,
    elasticsearch_fake: ElasticsearchFake,
    xpanse_fake: XpanseFake,
) -> None:
    """With credentials configured the shell uses those platforms and the workspace's user look-ups."""
    seed_people(slack_fake, datadog_fake, elasticsearch_fake, xpanse_fake)
    finding = "ZGVmLTAwcC1pZXJ-aS0wZjhjNjMyZDNmMzRlZTgzNw=="
    datadog_fake.add_finding(finding, title="Real-mode finding")
    settings = fake_settings(
        db=str(tmp_path / "triage.db"),
        slack=slack_fake,
        datadog=datadog_fake,
        kibana=kibana_fake,
        es=elasticsearch_fake,
        xpanse=xpanse_fake,
    )
    out = await shell_session(
        f"show dd:{finding}\npress 'assign to me' 1\nquit\n", sandbox=False, settings=settings, user=ALICE
    )
    assert "REAL platforms: Datadog, Kibana, Xpanse" in out and "SANDBOX" not in out
    assert "REAL-MODE FINDING" in out
    assert datadog_fake.findings[finding]["assignee_id"] == DD_ALICE
    # Alice's e-mail came from the workspace (users.info forwarded), not from a sandbox directory.
    assert slack_fake.calls_to("users.info")
    assert slack_fake.calls_to("chat.postMessage") == []  # messages stay in the console


async def test_storm_shows_digests_and_their_buttons_work(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`storm 200` in the sandbox posts digests at Slack's pace, loses nothing, and "Assign all to me" works."""
    monkeypatch.chdir(tmp_path)
    out = await shell_session("storm 200\npress assign-all-to-me\nquit\n", sandbox=True)
    summary = next(line for line in out.splitlines() if line.startswith("storm: 200 alerts"))
    assert "0 lost, 0 duplicated" in summary and " 0 digests" not in summary, summary
    assert "Severity | Platform | Title | Id" in out and "[Assign all to me]" in out
    pressed = out.split("press assign-all-to-me", 1)[1]
    assert re.search(r"assigned \d+ items to @alice", pressed), pressed[-3000:]


async def test_shell_home_paste_and_undo(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`home` prints the Home tab with its buttons, `paste <link>` the unfurled card, and `undo` presses Undo."""
    monkeypatch.chdir(tmp_path)
    incident = SEED.incidents[2]
    link = f"https://app.datadoghq.com/security/findings?finding_id={F0}"
    script = f"assign xpanse:{incident} to me\nundo\nhome\npaste {link}\npaste https://example.org/x\nquit\n"
    out = await shell_session(script, sandbox=True)
    sections = out.split("triage(@")

    def after(command: str) -> str:
        return next(s for s in sections if s.split("> ", 1)[-1].startswith(command))

    assert "[Undo]" in after("assign xpanse:")
    assert "assignee put back" in after("undo")
    home = after("home")
    assert "Home tab:" in home and "YOUR OPEN ITEMS" in home and "[Assign…] [Resolve…]" in home and "[Refresh]" in home
    pasted = after(f"paste {link}")
    assert "Datadog" in pasted and "Severity" in pasted and "[Assign to me]" in pasted
    assert "Not unfurled" in after("paste https://example.org")
