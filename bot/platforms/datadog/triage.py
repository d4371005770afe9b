"""Datadog's triage vocabulary beyond assignment: mute, unmute, detach from a case.

* ``PATCH /api/v2/security/findings/mute`` (NOTES §6.1): at most 100 findings per
  request, a reason from the action's own list (upper case on the wire), a description
  of at most 280 characters and an optional ``expire_at`` in Unix ms that must be in the
  future. Success is 202 with no ``meta.failures``; one unknown finding fails the whole
  request with 404, so a failed batch is retried one finding at a time to isolate it.
* ``DELETE /api/v2/security/findings/cases`` (BEHAVIOUR §1.4, not in the contract): at
  most 50 findings, 204 with an empty body, 404 ``finding not found`` for an unknown id.

The card's mute state is read from ``workflow.mute`` (under ``attributes.attributes.custom``) of the
findings search (the recorded searches carry ``{"is_muted": false}`` there; the fields
of a muted finding mirror the request and are unconfirmed, NOTES §6.6).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import structlog

from bot import rules
from bot.errors import PlatformError, PlatformNotFound
from bot.models import BatchResult, ItemResult, ItemState, Outcome, Target, Verb
from bot.platforms.datadog.client import DatadogFindings
from bot.platforms.datadog.wire import all_failed, as_dict, chunks, failed_detail, finding_fields
from bot.settings import DatadogConfig

log = structlog.get_logger(__name__)

MUTE_PATH = "/api/v2/security/findings/mute"
DETACH_PATH = "/api/v2/security/findings/cases"
MUTE_CHUNK = rules.DATADOG_MUTE_MAX
DETACH_CHUNK = rules.DATADOG_DETACH_MAX


def mute_of(finding: dict[str, Any]) -> dict[str, Any] | None:
    """``workflow.mute`` of one search result (under ``attributes.attributes.custom`` as
    recorded), or None when the answer has none."""
    mute = as_dict(finding_fields(finding).get("workflow")).get("mute")
    return mute if isinstance(mute, dict) else None


def with_mute(state: ItemState, mute: dict[str, Any] | None) -> ItemState:
    """``state`` with the finding's mute: whether, why (lower case) and until when."""
    if mute is None:
        return state
    muted = mute.get("is_muted") is True
    reason = mute.get("reason")
    until = mute.get("expire_at")
    return state.model_copy(
        update={
            "muted": muted,
            "mute_reason": str(reason).lower() if muted and isinstance(reason, str) and reason else None,
            "mute_until": until if muted and isinstance(until, int) and not isinstance(until, bool) else None,
        }
    )


class DatadogClient(DatadogFindings):
    """The Datadog client: findings assignment, cases and reads, plus mute, unmute and detach."""

    def __init__(self, config: DatadogConfig) -> None:
        super().__init__(config)
        # finding id -> workflow.mute, seen by a fetch's search and taken by that fetch.
        self._mutes: dict[str, dict[str, Any] | None] = {}

    # ---- reads: the mute state rides along the findings search --------------------------

    async def _search(self, query: str, *, limit: int, operation: str) -> AsyncIterator[dict[str, Any]]:
        async for finding in super()._search(query, limit=limit, operation=operation):
            if operation == "fetch_findings":
                self._mutes[str(finding.get("id"))] = mute_of(finding)
            yield finding

    async def fetch(self, targets: Sequence[Target]) -> dict[Target, ItemState]:
        """Current state of each finding (``DatadogFindings.fetch``) with its mute."""
        try:
            states = await super().fetch(targets)
        finally:
            seen = {t.id: self._mutes.pop(t.id, None) for t in targets}
        return {t: with_mute(s, seen.get(t.id)) for t, s in states.items()}

    # ---- mute and unmute -----------------------------------------------------------------

    async def mute(
        self, targets: Sequence[Target], *, reason: str, description: str | None = None, expire_at: int | None = None
    ) -> BatchResult:
        """Mute each finding; ``UsageError`` before any call for a bad reason, description or expiry.

        Vendor failures come back per item: NOT_FOUND for an unknown finding, FAILED otherwise.
        """
        value = rules.normalise_mute_reason(reason, mute=True)
        text = rules.check_description(description, verb=Verb.RESOLVE)
        rules.check_expiry(expire_at)
        unique = self._unique_targets(targets, verb=Verb.RESOLVE)
        mute: dict[str, Any] = {"is_muted": True, "reason": value.upper()}
        if text:
            mute["description"] = text
        if expire_at is not None:
            mute["expire_at"] = expire_at
        until = f" until {rules.vocabulary.expiry_text(expire_at)}" if expire_at is not None else ""
        return await self._set_mute(unique, mute, done=f"muted ({value}){until}", after=f"muted:{value}")

    async def reopen(
        self, targets: Sequence[Target], *, reason: str | None = None, comment: str | None = None
    ) -> BatchResult:
        """Unmute each finding (reason ``other`` unless given); the comment is the description."""
        value = rules.normalise_mute_reason(reason, mute=False)
        text = rules.check_description(comment, verb=Verb.REOPEN)
        unique = self._unique_targets(targets, verb=Verb.REOPEN)
        mute: dict[str, Any] = {"is_muted": False, "reason": value.upper()}
        if text:
            mute["description"] = text
        return await self._set_mute(unique, mute, done=f"unmuted ({value})", after="unmuted")

    async def _set_mute(self, unique: dict[str, Target], mute: dict[str, Any], *, done: str, after: str) -> BatchResult:
        result = BatchResult()
        for chunk in chunks(list(unique), MUTE_CHUNK):
            result.extend(await self._mute_chunk(unique, chunk, mute, done=done, after=after))
        return result

    async def _mute_chunk(
        self, unique: dict[str, Target], chunk: list[str], mute: dict[str, Any], *, done: str, after: str
    ) -> BatchResult:
        body = {
            "data": {
                "type": "mute",
                "attributes": {"mute": mute},
                "relationships": {"findings": {"data": [{"id": i, "type": "findings"} for i in chunk]}},
            }
        }
        try:
            await self._http.request("PATCH", MUTE_PATH, operation="mute_findings", json=body)
        except PlatformNotFound as exc:
            if len(chunk) == 1:
                target = unique[chunk[0]]
                return BatchResult.of(
                    [ItemResult(target=target, outcome=Outcome.NOT_FOUND, detail=exc.reason, status=exc.status)]
                )
            # One unknown finding fails the whole request: find it, one finding at a time.
            log.info("datadog_mute_isolating", findings=len(chunk))
            result = BatchResult()
            for finding_id in chunk:
                result.extend(await self._mute_chunk(unique, [finding_id], mute, done=done, after=after))
            return result
        except PlatformError as exc:
            log.warning("datadog_mute_failed", findings=len(chunk), status=exc.status, reason=exc.reason)
            return all_failed(unique, chunk, exc)
        # 202: accepted and queued; a search straight afterwards may still show the old state.
        return BatchResult.of(
            ItemResult(target=unique[i], outcome=Outcome.DONE, detail=done, after=after) for i in chunk
        )

    # ---- detach --------------------------------------------------------------------------

    async def detach_case(self, targets: Sequence[Target]) -> BatchResult:
        """Take each finding out of its case (findings in none are left as they are, by Datadog).

        Raises ``UsageError`` before any call for a bad finding id; vendor failures come back
        per item, NOT_FOUND for an unknown finding (isolated as for mutes).
        """
        unique = self._unique_targets(targets, verb=Verb.DETACH)
        result = BatchResult()
        for chunk in chunks(list(unique), DETACH_CHUNK):
            result.extend(await self._detach_chunk(unique, chunk))
        return result

    async def _detach_chunk(self, unique: dict[str, Target], chunk: list[str]) -> BatchResult:
        body = {
            "data": {
                "type": "cases",
                "relationships": {"findings": {"data": [{"id": i, "type": "findings"} for i in chunk]}},
            }
        }
        try:
            await self._http.request("DELETE", DETACH_PATH, operation="detach_case", json=body)
        except PlatformNotFound as exc:
            if len(chunk) == 1:
                return BatchResult.of(
                    [
                        ItemResult(
                            target=unique[chunk[0]], outcome=Outcome.NOT_FOUND, detail=exc.reason, status=exc.status
                        )
                    ]
                )
            result = BatchResult()
            for finding_id in chunk:
                result.extend(await self._detach_chunk(unique, [finding_id]))
            return result
        except PlatformError as exc:
            log.warning("datadog_detach_failed", findings=len(chunk), status=exc.status, reason=failed_detail(exc))
            return all_failed(unique, chunk, exc)
        return BatchResult.of(
            ItemResult(target=unique[i], outcome=Outcome.DONE, detail="detached from its case", after="") for i in chunk
        )
