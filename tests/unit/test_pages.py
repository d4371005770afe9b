"""bot.slack.blocks.pages and the sandbox upload: 1,000 worst-case items, paged within limits, none lost."""

from __future__ import annotations

import csv
import io
import json

import pytest

from bot.models import BatchResult, ItemResult, Outcome, Platform, Target, Verb
from bot.slack.blocks.pages import needs_csv, result_csv, result_pages
from bot.slack_web import SlackApiError, SlackWeb
from tests.blockkit import assert_valid_message, text_length
from tests.fakes.slack import SlackFake

OUTCOMES = [Outcome.DONE, Outcome.FAILED, Outcome.SKIPPED, Outcome.NOT_FOUND, Outcome.WARNING]


def big_result(n: int = 1000) -> BatchResult:
    """``n`` items over the three platforms with long ids and 300-character vendor reasons."""
    items = []
    for i in range(n):
        platform = (Platform.DATADOG, Platform.KIBANA, Platform.XPANSE)[i % 3]
        item_id = {Platform.DATADOG: f"{i:0>110}", Platform.KIBANA: f"alert-{i:0>100}", Platform.XPANSE: str(i)}
        target = Target(platform=platform, id=item_id[platform], space="soc" if platform is Platform.KIBANA else None)
        outcome = OUTCOMES[i % len(OUTCOMES)]
        items.append(ItemResult(target=target, outcome=outcome, detail="=cmd|' <x> & " + "r" * 300, status=403))
    return BatchResult(items=items)


def keys_in(pages: list[list[dict[str, object]]], result: BatchResult) -> set[str]:
    """Item keys listed in the pages."""
    text = json.dumps(pages)
    return {i.target.key for i in result.items if f"`{i.target.key}`" in text}


def test_a_thousand_worst_case_items_page_within_limits_and_all_are_listed() -> None:
    """Without a CSV every item is on some page; each page ≤ 50 blocks, ≤ 3,000 a section, ≤ 8,000 in all."""
    result = big_result()
    pages = result_pages(Verb.ASSIGN, result, actor_id="U1", summary="assigned 1000 items")
    for blocks in pages:
        assert_valid_message(blocks, "fallback")
        assert len(blocks) <= 50 and text_length(blocks) <= 8000
    assert keys_in(pages, result) == {i.target.key for i in result.items}
    first = json.dumps(pages[0])
    assert "*Failed (200)*" in first and "*Done (200)*" not in first


def test_with_a_csv_one_message_keeps_the_summary_and_the_failures() -> None:
    """With the CSV attached, one message: summary, failures first, and how many are only in the CSV."""
    result = big_result()
    assert needs_csv(result) and not needs_csv(BatchResult(items=result.items[:200]))
    (page,) = result_pages(Verb.ASSIGN, result, actor_id="U1", summary="assigned", csv_attached=True)
    assert_valid_message(page, "fallback")
    listed = keys_in([page], result)
    assert listed and all(i.outcome is Outcome.FAILED for i in result.items if i.target.key in listed)
    assert f"The attached CSV has all 1000 items; {1000 - len(listed)} more are only there." in json.dumps(page)


def test_csv_has_every_item_and_defuses_formulas() -> None:
    """The CSV has a row per item, and a vendor reason starting with = is kept as text."""
    result = big_result(10)
    rows = list(csv.DictReader(io.StringIO(result_csv(result))))
    assert [r["key"] for r in rows] == [i.target.key for i in result.items]
    assert all(r["detail"].startswith("'=cmd") for r in rows)


async def test_files_upload_v2_against_the_sandbox_shares_the_file_in_the_thread(
    slack_fake: SlackFake, slack_client: SlackWeb
) -> None:
    """files_upload_v2 takes the three steps and the thread gets the file; files.upload is retired."""
    client = slack_client
    posted = await client.chat_postMessage(channel="C1", text="parent")
    resp = await client.files_upload_v2(
        channel="C1", thread_ts=posted["ts"], content="a,b\n1,2\n", filename="x.csv", title="X"
    )
    assert resp["files"][0]["title"] == "X"
    (file,) = slack_fake.files.values()
    assert file["content"] == "a,b\n1,2\n" and file["shares"]["channel"] == "C1"
    share = slack_fake.messages_in("C1")[-1]
    assert share["thread_ts"] == posted["ts"] and share["files"][0]["id"] == file["id"]
    with pytest.raises(SlackApiError) as info:
        await client.call("files.upload", form={"channels": "C1"})
    assert info.value.response["error"] == "method_deprecated"
