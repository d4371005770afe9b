"""Datadog's bulk finding writes fail whole when one finding id is unknown.

Recorded for mute, detach and jira_issues (the assignee endpoint is their unrecorded
sibling, attach most likely the same): one unknown id turns the whole request into a 404
``finding not found`` and nothing is applied. The answer does not say which id, so the
client asks the findings search which of the ids exist (one search for up to 100 ids)
and sends the write once more with only those: two extra calls for a failing request,
one when none of the ids exist. Pure orchestration over two callables.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog

from bot.errors import PlatformError
from bot.models import BatchResult, ItemResult, Outcome, Target
from bot.platforms.datadog.wire import all_failed

log = structlog.get_logger(__name__)

NOT_FOUND_DETAIL = "Datadog has no such finding (finding not found)"


async def without_unknown(
    unique: dict[str, Target],
    ids: list[str],
    refused: PlatformError,
    *,
    known: Callable[[list[str]], Awaitable[set[str]]],
    send: Callable[[list[str]], Awaitable[BatchResult]],
) -> BatchResult:
    """Results for ``ids`` after ``refused`` (the whole-request 404): unknown ids NOT_FOUND,
    the rest sent again with ``send``. When the search cannot tell (it fails, or finds every
    id), every id is FAILED with the vendor's reason rather than guessed at."""
    try:
        found = await known(ids)
    except PlatformError as exc:
        log.warning("datadog_known_ids_failed", findings=len(ids), status=exc.status, reason=exc.reason)
        return all_failed(unique, ids, refused)
    missing = [i for i in ids if i not in found]
    if not missing:
        return all_failed(unique, ids, refused)
    valid = [i for i in ids if i in found]
    log.info("datadog_unknown_findings", unknown=len(missing), resent=len(valid))
    results = {
        i: ItemResult(target=unique[i], outcome=Outcome.NOT_FOUND, detail=NOT_FOUND_DETAIL, status=refused.status)
        for i in missing
    }
    if valid:
        id_of = {unique[i]: i for i in valid}
        for item in (await send(valid)).items:
            results[id_of[item.target]] = item
    return BatchResult.of(results[i] for i in ids if i in results)
