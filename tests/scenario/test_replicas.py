"""Three replicas of the real ``triage-bot serve`` on one PostgreSQL, driven over HTTP with signed payloads.

Every replica is a separate process tree (web process plus its worker child) started the
way an operator would, pointed at the same database and the same fake tenants. Slack may
deliver a click to any replica, and a replica may die at any moment.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from bot.sandbox import payloads
from bot.slack.ids import ActionId
from bot.store.db import Store
from tests.fakes.datadog import DatadogFake
from tests.fakes.kibana import ElasticsearchFake
from tests.fakes.slack import SlackFake
from tests.fakes.xpanse import XpanseFake
from tests.scenario.conftest import ALICE, BOB, DD_ALICE, DD_BOB, seed_people
from tests.scenario.harness import CHANNEL, TEAM, BotHarness
from tests.scenario.proc_bot import BotProcess, bot_env, wait_until
from tests.sql import run_sql, scalar

pytestmark = pytest.mark.slow

RATE = 8.0  # the Xpanse tenant's limit, requests a second, for every replica together
N_DD, N_XP = 250, 50
FINDING = base64.b64encode(b"replica-finding-0000001").decode()


def dd_id(n: int) -> str:
    return base64.b64encode(f"replica-finding-{n:05d}".encode()).decode()


class Replicas:
    """Three bot processes on one database, and a harness aimed at each."""

    def __init__(self, procs: list[BotProcess], store: Store) -> None:
        self.procs = procs
        self.bots = [p.harness() for p in procs]
        self.store = store

    def by_worker_pid(self, pid: int) -> BotProcess:
        """The replica whose worker child has process id ``pid``."""
        ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        return next(p for p in self.procs if p.proc is not None and p.proc.pid in (pid, ppid))


@pytest_asyncio.fixture
async def replicas(
    tmp_path: Path,
    postgres_url: str,
    slack_fake: SlackFake,
    datadog_fake: DatadogFake,
    elasticsearch_fake: ElasticsearchFake,
    xpanse_fake: XpanseFake,
) -> AsyncIterator[Replicas]:
    seed_people(slack_fake, datadog_fake, elasticsearch_fake, xpanse_fake)
    xpanse_fake.rate_limit = RATE
    env = bot_env(
        db=postgres_url,
        slack=slack_fake,
        datadog=datadog_fake,
        es=elasticsearch_fake,
        xpanse=xpanse_fake,
        XPANSE_RATE_LIMIT=str(RATE),
        TRIAGE_WORKER_LEASE="3",
    )
    procs = [BotProcess(env, slack=slack_fake, log_dir=tmp_path, name=f"replica{n}") for n in range(3)]
    store = await Store.open(postgres_url)
    started: Replicas | None = None
    try:
        await asyncio.gather(*(p.start(timeout=60) for p in procs))
        started = Replicas(procs, store)
        yield started
    finally:
        for p in procs:
            p.kill()
        for bot in started.bots if started is not None else []:
            await bot.http.aclose()
        await store.close()
        for p in procs:
            if "Traceback" in p.log():
                print(f"--- {p.log_path.name}\n{p.log()}")


def card_ts(slack: SlackFake, action_id: str) -> str | None:
    for message in reversed(slack.messages_in(CHANNEL)):
        for block in message.get("blocks") or []:
            elements = block.get("elements", []) + ([block["accessory"]] if "accessory" in block else [])
            if any(e.get("action_id") == action_id for e in elements):
                return str(message["ts"])
    return None


async def show_card(bot: BotHarness, slack: SlackFake, target: str) -> str:
    resp = await bot.command(f"show {target}")
    assert resp.status_code == 200, resp.text
    await wait_until(lambda: card_ts(slack, ActionId.ASSIGN_ME), timeout=20, what="the card")
    ts = card_ts(slack, ActionId.ASSIGN_ME)
    assert ts is not None
    return ts


def click_body(slack: SlackFake, ts: str, *, user: str, action_ts: str) -> str:
    """The signed-to-be body of one "Assign me" click on the card ``ts``, exactly as Slack sends it."""
    message = slack.message(CHANNEL, ts)
    assert message is not None
    value = next(
        e.get("value", "")
        for b in message.get("blocks", [])
        for e in b.get("elements", []) + ([b["accessory"]] if "accessory" in b else [])
        if e.get("action_id") == ActionId.ASSIGN_ME
    )
    body = payloads.block_actions(
        action=payloads.button(ActionId.ASSIGN_ME, value, ts=action_ts),
        user_id=user,
        team_id=TEAM,
        channel_id=CHANNEL,
        message=message,
        message_ts=ts,
        response_url=slack.webhook_url(f"click-{user}-{action_ts}"),
        trigger_id=f"trigger.{user}.{action_ts}",
    )
    return payloads.interactive_body(body)


def assignee_writes(dd: DatadogFake) -> int:
    return len(dd.calls("/api/v2/security/findings/assignee", method="PATCH"))


async def test_the_same_click_delivered_to_two_replicas_writes_once(
    replicas: Replicas, slack_fake: SlackFake, datadog_fake: DatadogFake
) -> None:
    """Slack retries a click to another replica (or two connections both get it): one job, one write."""
    datadog_fake.add_finding(FINDING, title="Open port")
    ts = await show_card(replicas.bots[0], slack_fake, f"dd:{FINDING}")
    body = click_body(slack_fake, ts, user=ALICE, action_ts=f"{time.time():.6f}")
    first, second = await asyncio.gather(replicas.bots[1].post_raw(body), replicas.bots[2].post_raw(body))
    assert first.status_code == second.status_code == 200
    await wait_until(lambda: datadog_fake.findings[FINDING].get("assignee_id") == DD_ALICE, timeout=20, what="write")
    await asyncio.sleep(1.0)  # a second job, if one had been stored, would have run by now
    assert assignee_writes(datadog_fake) == 1
    assert await scalar(replicas.store, "SELECT count(*) FROM jobs WHERE verb = 'assign'") == 1


async def test_two_people_on_one_card_through_two_replicas_get_one_change(
    replicas: Replicas, slack_fake: SlackFake, datadog_fake: DatadogFake
) -> None:
    """Alice through one replica and Bob through another click "Assign me" together: one write, one "already"."""
    datadog_fake.add_finding(FINDING, title="Open port")
    ts = await show_card(replicas.bots[0], slack_fake, f"dd:{FINDING}")
    now = f"{time.time():.6f}"
    alice = click_body(slack_fake, ts, user=ALICE, action_ts=now + "1")
    bob = click_body(slack_fake, ts, user=BOB, action_ts=now + "2")
    await asyncio.gather(replicas.bots[1].post_raw(alice), replicas.bots[2].post_raw(bob))
    await wait_until(lambda: assignee_writes(datadog_fake) >= 1, timeout=20, what="the write")

    def told() -> list[dict[str, object]]:
        return [r for r in slack_fake.responses if "already" in str(r.get("text", ""))]

    await wait_until(lambda: told(), timeout=20, what='the "already" answer')
    await asyncio.sleep(1.0)
    assert assignee_writes(datadog_fake) == 1
    holder = datadog_fake.findings[FINDING]["assignee_id"]
    assert holder in (DD_ALICE, DD_BOB)
    winner = ALICE if holder == DD_ALICE else BOB
    assert len(told()) == 1 and f"<@{winner}>" in str(told()[0]["text"]), slack_fake.responses


def xpanse_updates(xp: XpanseFake, field: str) -> list[str]:
    return [
        r.body["request_data"]["incident_id"]
        for r in xp.calls("/update_incident/")
        if field in r.body["request_data"]["update_data"]
    ]


def busiest_second(xp: XpanseFake) -> int:
    """The most Xpanse requests the tenant saw inside any one second."""
    times = sorted(r.at for r in xp.calls("/"))
    most, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= 1.0:
            start += 1
        most = max(most, end - start + 1)
    return most


async def test_sigkill_of_the_replica_running_a_300_item_handoff(
    replicas: Replicas,
    slack_fake: SlackFake,
    datadog_fake: DatadogFake,
    xpanse_fake: XpanseFake,
) -> None:
    """The replica running a 300-item handoff is SIGKILLed: another takes it over once the lease lapses;
    every item ends in one terminal state once, no write or comment is doubled, the report is posted
    once, and the tenant never sees more than its rate limit summed over the replicas."""
    for n in range(N_DD):
        datadog_fake.add_finding(dd_id(n), title=f"Finding {n}", assignee_id=DD_ALICE)
    for n in range(N_XP):
        xpanse_fake.add_incident(str(1000 + n), assigned_user_mail="alice@example.com")
    for n in range(3):
        xpanse_fake.add_incident(str(3000 + n))
    xpanse_fake.latency = 0.05
    datadog_fake.latency = 0.3
    a, b, _ = replicas.bots
    resp = await a.command(f"handoff to <@{BOB}|bob>", user=ALICE)
    assert "Collecting" in resp.text, resp.text
    await wait_until(lambda: card_ts(slack_fake, ActionId.HANDOFF_CONFIRM), timeout=40, what="the preview")
    preview = card_ts(slack_fake, ActionId.HANDOFF_CONFIRM)
    assert preview is not None
    await b.click_on_card(ActionId.HANDOFF_CONFIRM, channel=CHANNEL, ts=preview, user=ALICE)
    # Comments through every replica at the same time: their Xpanse traffic competes for one budget.
    for n, bot in enumerate(replicas.bots):
        resp = await bot.command(f'comment xpanse:{3000 + n} "checked from replica {n}"', user=ALICE)
        assert "On it" in resp.text, resp.text
    await wait_until(lambda: len(xpanse_updates(xpanse_fake, "assigned_user_mail")) >= 8, timeout=60, what="writes")
    owner = await scalar(replicas.store, "SELECT claimed_by FROM jobs WHERE verb = 'handoff' AND state = 'running'")
    assert owner, "the handoff finished before the kill: nothing to take over"
    worker_pid = int(str(owner).split(":")[1])  # owners are host:pid:nonce
    victim = replicas.by_worker_pid(worker_pid)
    # Items on the wire at the kill: an idempotent write among them may be sent again on resume.
    in_flight = {t for (t,) in await run_sql(replicas.store, "SELECT target FROM job_items WHERE state = 'running'")}
    killed_at = time.monotonic()
    os.kill(worker_pid, signal.SIGKILL)
    victim.kill()
    survivors = [p for p in replicas.procs if p is not victim]

    async def reported() -> bool:
        return bool(await scalar(replicas.store, "SELECT count(*) FROM jobs WHERE reported_at IS NULL") == 0)

    deadline = time.monotonic() + 120
    while not await reported():
        assert time.monotonic() < deadline, [p.log() for p in survivors]
        await asyncio.sleep(0.2)
    taken_over_after = time.monotonic() - killed_at
    states = await run_sql(replicas.store, "SELECT state FROM jobs")
    assert {s[0] for s in states} <= {"done", "partial", "failed"}, states
    items = await run_sql(
        replicas.store,
        "SELECT i.target, i.state FROM job_items i JOIN jobs j ON j.id = i.job_id WHERE j.verb = 'handoff'",
    )
    assert len(items) == N_DD + N_XP
    assert {i[1] for i in items} <= {"done", "warning", "skipped"}, collections.Counter(i[1] for i in items)
    # One terminal ledger line per item: nothing recorded twice by the two replicas.
    lines = await run_sql(replicas.store, "SELECT target FROM ledger WHERE verb = 'handoff' AND target IS NOT NULL")
    per_target = collections.Counter(t for (t,) in lines)
    assert len(per_target) == N_DD + N_XP and set(per_target.values()) == {1}
    assert {datadog_fake.findings[dd_id(n)]["assignee_id"] for n in range(N_DD)} == {DD_BOB}
    assert {xpanse_fake.incidents[str(1000 + n)].assigned_user_mail for n in range(N_XP)} == {"bob@example.com"}
    assigned = collections.Counter(xpanse_updates(xpanse_fake, "assigned_user_mail"))
    assert set(assigned) == {str(1000 + n) for n in range(N_XP)}
    again = {f"xpanse:{i}" for i, n in assigned.items() if n > 1}
    assert again <= in_flight and max(assigned.values()) <= 2, (again, in_flight)
    commented = xpanse_updates(xpanse_fake, "comment")
    assert sorted(commented) == [str(3000 + n) for n in range(3)]
    # The tenant's limit held for all replicas together. Slots are 10 % further apart than 1/rate, which
    # absorbs a delay of about 100 ms between a slot and its request reaching the tenant; a host as busy as
    # this one (seven bot processes, PostgreSQL and the fakes on two cores, more when other test runs share
    # it) now and then delays a process longer, so a few requests (at most 2 % of them) may land over the
    # limit; each is retried after its 429, and everything above was still applied exactly once. The
    # spacing of the slots themselves across replicas is checked exactly in tests/store/test_postgres.py.
    assert xpanse_fake.throttled <= max(3, len(xpanse_fake.calls("/")) // 50)
    assert busiest_second(xpanse_fake) <= RATE + 2
    times = sorted(r.at for r in xpanse_fake.calls("/"))
    assert len(times) - 1 <= RATE * (times[-1] - times[0]), "over the whole run, more than the rate"
    # The report was posted once, by whichever replica finished: one result message, then (300 items)
    # one page with the summary and the CSV of every item, uploaded once.
    texts = [
        str(call.args.get("text", ""))
        for call in slack_fake.calls_to("chat.postMessage")
        if "handed off" in str(call.args.get("text", "")) and call.args.get("thread_ts") == preview
    ]
    assert len(texts) == 2 and len(set(texts)) == 1, texts
    assert len(slack_fake.calls_to("files.completeUploadExternal")) == 1
    assert taken_over_after < 90
    print(
        f"taken over and finished {taken_over_after:.1f} s after the kill; busiest second {busiest_second(xpanse_fake)}"
    )
