"""Slack's acknowledgement comes only after the job is in the store: an acked click is never lost."""

from __future__ import annotations

import asyncio
import logging

import pytest
import structlog

from tests.fakes.datadog import DatadogFake
from tests.fakes.slack import SlackFake
from tests.scenario.harness import CHANNEL, BotHarness
from tests.sql import scalar

FINDING = "YWNrLW9yZGVyLWZpbmRpbmc="


@pytest.mark.parametrize("button", ["assign_me", "unassign", "refresh"])
async def test_button_ack_waits_for_the_durable_write(
    bot: BotHarness, slack_fake: SlackFake, datadog_fake: DatadogFake, button: str
) -> None:
    """While the store is busy the click is not acked; once it acks, its job is already stored."""
    datadog_fake.add_finding(FINDING, title="Key in repo")
    await bot.command(f"show dd:{FINDING}")
    await bot.settle()
    card = slack_fake.calls_to("chat.postMessage")[-1]
    ts = slack_fake.messages_in(CHANNEL)[-1]["ts"]
    assert card.args["channel"] == CHANNEL
    before = await _count_jobs(bot)

    release = asyncio.Event()
    held = asyncio.Event()

    async def hold_store() -> None:
        async with bot.svc.store.transaction():
            held.set()
            await release.wait()

    holder = asyncio.create_task(hold_store())
    await held.wait()
    click = asyncio.create_task(bot.click_on_card(button, channel=CHANNEL, ts=ts))
    done, _ = await asyncio.wait({click}, timeout=0.5)
    assert not done, "the click was acknowledged before its job could be stored"
    release.set()
    await holder
    resp = await asyncio.wait_for(click, 5)
    assert resp.status_code == 200
    assert await _count_jobs(bot) == before + 1  # stored by the time Slack saw the ack
    await bot.settle()


async def _count_jobs(bot: BotHarness) -> int:
    return int(await scalar(bot.svc.store, "SELECT COUNT(*) FROM jobs"))


async def test_a_job_is_logged_once_at_info_when_it_finishes_not_on_the_ack_path(
    bot: BotHarness, datadog_fake: DatadogFake
) -> None:
    """Storing and acking a command writes no INFO line; the job's one INFO line comes when it has run."""
    datadog_fake.add_finding(FINDING, title="Key in repo")
    with structlog.testing.capture_logs() as logs:
        resp = await bot.command(f"assign dd:{FINDING} to me")
        assert resp.status_code == 200
        # The worker runs in this process too and may finish first: only its line may be there yet.
        assert [e["event"] for e in logs if e["log_level"] != "debug"] in ([], ["job_finished"])
        await bot.settle()
    (line,) = [e for e in logs if e["event"] == "job_finished"]
    assert (line["log_level"], line["verb"], line["state"], line["source"]) == ("info", "assign", "done", "slash")
    # The ack path's own line is DEBUG, and is not even built while DEBUG is off.
    assert [e for e in logs if e["event"] == "job_queued"] == []


async def test_the_ack_paths_job_queued_line_is_written_at_debug(
    bot: BotHarness, datadog_fake: DatadogFake, caplog: pytest.LogCaptureFixture
) -> None:
    """With DEBUG on for the service, storing a job writes its one DEBUG line."""
    datadog_fake.add_finding(FINDING, title="Key in repo")
    caplog.set_level(logging.DEBUG, logger="bot.core.service")
    with structlog.testing.capture_logs() as logs:
        assert (await bot.command(f"assign dd:{FINDING} to me")).status_code == 200
        await bot.settle()
    assert [e["log_level"] for e in logs if e["event"] == "job_queued"] == ["debug"]
