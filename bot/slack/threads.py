"""Posting a job's reply as thread messages, with a CSV of every item for big jobs.

``send_result`` applies the rule in ``bot.slack.blocks.pages``: the summary and the items
that need a look first, the rest in follow-up messages of the same thread, each within
Slack's limits; above ``CSV_THRESHOLD`` items a CSV of every outcome goes into the thread
through ``files_upload_v2`` (``files.getUploadURLExternal``, the upload URL, then
``files.completeUploadExternal``; the retired ``files.upload`` is never called) and the
messages stay short. If Slack refuses or fails the upload (no ``files:write``, an error, a
broken connection) the reply degrades to listing every item in messages: no item is lost.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from bot.models import BatchResult, Verb
from bot.slack.blocks.pages import needs_csv, result_csv, result_pages, result_pages_text
from bot.slack_web import SlackApiError, SlackRequestError, SlackWeb

log = structlog.get_logger(__name__)

# Posts one message in the job's thread (``thread_ts``) and returns its ts.
Post = Callable[[str, list[dict[str, Any]], str | None], Awaitable[str | None]]


async def upload_csv(
    slack: SlackWeb, *, channel: str, thread_ts: str, verb: Verb, result: BatchResult, job_id: str
) -> bool:
    """Share every item's outcome as a CSV in the thread; False (logged) when Slack would not take it."""
    try:
        await slack.files_upload_v2(
            channel=channel,
            thread_ts=thread_ts,
            content=result_csv(result),
            filename=f"triage-{verb.value}-{job_id}.csv",
            title=f"/triage {verb.value}: {len(result.items)} items",
            initial_comment=f"Every item's outcome ({len(result.items)} items) as CSV.",
        )
    except SlackApiError as exc:
        log.warning("result_csv_failed", job_id=job_id, error=exc.response.get("error"))
        return False
    except (SlackRequestError, TimeoutError) as exc:
        log.warning("result_csv_failed", job_id=job_id, error=type(exc).__name__)
        return False
    return True


async def send_result(
    slack: SlackWeb,
    post: Post,
    *,
    channel: str | None,
    thread_ts: str | None,
    verb: Verb,
    result: BatchResult,
    actor_id: str,
    summary: str,
    job_id: str,
) -> int:
    """Post the pages of the reply in ``thread_ts`` (the CSV first when the job is big and
    there is a thread to put it in); returns how many messages were posted."""
    attached = False
    if needs_csv(result) and channel and thread_ts:
        attached = await upload_csv(
            slack, channel=channel, thread_ts=thread_ts, verb=verb, result=result, job_id=job_id
        )
    pages = result_pages(verb, result, actor_id=actor_id, summary=summary, csv_attached=attached)
    for number, blocks in enumerate(pages, start=1):
        text = result_pages_text(verb, result, actor_id=actor_id, summary=summary, part=number, total=len(pages))
        await post(text, blocks, thread_ts)
    return len(pages)
