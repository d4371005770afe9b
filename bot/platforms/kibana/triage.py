"""Kibana's triage vocabulary beyond assign and close: open and acknowledged, tags, notes.

* ``reopen`` and ``acknowledge`` are the same ``signals/status`` write as a close, with
  ``open`` or ``acknowledged`` (read first, confirmed after, already-there SKIPPED).
* ``tag`` is ``POST [/s/<space>]/api/detection_engine/signals/tags`` (NOTES §6.4):
  ``{"ids", "tags": {"tags_to_add", "tags_to_remove"}}``, an update-by-query answer.
* ``add_notes`` is ``PATCH [/s/<space>]/api/note`` with a note on the alert and no
  Timeline (``timelineId: ""``): an API key writes as nobody, so the note says who asked
  from Slack. Both answer shapes are read (``{"note"}`` and the older
  ``{"data":{"persistNote":{"code","message"}}}``, where a 200 can carry code 403).
  ``KIBANA_NOTES=off`` (``KibanaConfig.notes``) turns notes off.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import structlog

from bot import rules
from bot.errors import PlatformError
from bot.models import BatchResult, ItemResult, Outcome, Target
from bot.platforms.http import json_or_none
from bot.platforms.kibana.client import KibanaWriter
from bot.platforms.kibana.wire import STATUS_PATH, alert_ids, chunks

log = structlog.get_logger(__name__)

TAGS_PATH = "/api/detection_engine/signals/tags"
NOTE_PATH = "/api/note"
NOTE_MAX = 2000


def note_problem(body: Any) -> str | None:
    """Why a 200 PersistNote answer did not create the note (None: it did)."""
    if not isinstance(body, dict):
        return "Kibana answered the note with no JSON"
    if isinstance(body.get("note"), dict):
        return None
    persist = body.get("data", {}).get("persistNote") if isinstance(body.get("data"), dict) else None
    if isinstance(persist, dict):
        code = persist.get("code")
        if code in (None, 200) and isinstance(persist.get("note"), dict):
            return None
        return f"Kibana refused the note ({code}: {persist.get('message') or 'no message'})"
    return "Kibana's note answer carries no note"


class KibanaClient(KibanaWriter):
    """Kibana detection alerts: assign, close, reopen, acknowledge, tag, and attribution notes."""

    # ---- status ------------------------------------------------------------------------

    async def reopen(
        self, targets: Sequence[Target], *, reason: str | None = None, comment: str | None = None
    ) -> BatchResult:
        """Set each alert back to ``open``; alerts already open are SKIPPED (the comment stays in Slack)."""
        return await self._set_status(targets, rules.vocabulary.KIBANA_OPEN, done="reopened", comment=comment)

    async def acknowledge(self, targets: Sequence[Target]) -> BatchResult:
        """Set each alert to ``acknowledged``; alerts already acknowledged are SKIPPED."""
        return await self._set_status(targets, rules.vocabulary.KIBANA_ACKNOWLEDGED, done="acknowledged")

    async def _set_status(
        self, targets: Sequence[Target], status: str, *, done: str, comment: str | None = None
    ) -> BatchResult:
        note = "; comment kept in Slack only" if comment and comment.strip() else ""
        groups = self._group(targets)
        states = await self._read_all(groups)
        results: dict[Target, ItemResult] = {}
        for space, group in groups.items():
            to_write: list[Target] = []
            for t in group:
                state = states.get(t)
                if state is None:
                    results[t] = ItemResult(
                        target=t, outcome=Outcome.NOT_FOUND, detail=f"no such alert in space {space!r}"
                    )
                elif (state.status or "").lower() == status:
                    results[t] = ItemResult(
                        target=t, outcome=Outcome.SKIPPED, detail=f"already {status}{note}", before=status, after=status
                    )
                else:
                    to_write.append(t)
            for batch in chunks(to_write, self.batch_size):
                body: dict[str, Any] = {"signal_ids": alert_ids(batch), "status": status}
                data, error = await self._write(space, STATUS_PATH, body, operation="status")
                for item in await self._confirm(
                    space,
                    batch,
                    data,
                    error,
                    reached=lambda s: (s.status or "").lower() == status,
                    describe=lambda s: s.status or "",
                    before={t: states[t].status or "" for t in batch},
                    after=status,
                    done=done + note,
                ):
                    results[item.target] = item
        return BatchResult.of(results[t] for t in dict.fromkeys(targets))

    # ---- tags --------------------------------------------------------------------------

    async def tag(self, targets: Sequence[Target], *, add: Sequence[str], remove: Sequence[str]) -> BatchResult:
        """Add and remove workflow tags; ``UsageError`` before any call for a bad tag or one in both lists.

        Alerts the space does not hold are NOT_FOUND and never sent; a request that fails is
        FAILED per item; fewer updated (or no-op) than sent is FAILED for the batch.
        """
        adding, removing = rules.check_tags(list(add), list(remove))
        groups = self._group(targets)
        states = await self._read_all(groups)
        change = " ".join([*(f"+{t}" for t in adding), *(f"-{t}" for t in removing)])
        results: dict[Target, ItemResult] = {}
        for space, group in groups.items():
            present = [t for t in group if t in states]
            for t in group:
                if t not in states:
                    results[t] = ItemResult(
                        target=t, outcome=Outcome.NOT_FOUND, detail=f"no such alert in space {space!r}"
                    )
            for batch in chunks(present, self.batch_size):
                body = {"ids": alert_ids(batch), "tags": {"tags_to_add": adding, "tags_to_remove": removing}}
                data, error = await self._write(space, TAGS_PATH, body, operation="tags")
                for item in _tag_results(batch, data, error, change):
                    results[item.target] = item
        return BatchResult.of(results[t] for t in dict.fromkeys(targets))

    # ---- attribution notes -------------------------------------------------------------

    async def add_notes(self, notes: Mapping[Target, str]) -> dict[Target, str | None]:
        """One note per alert saying who acted from Slack: per alert, None or why it failed.

        Never raises for a vendor failure: a note is attribution, not the action. Nothing is
        sent (and nothing returned) when notes are off (``KIBANA_NOTES=off``).
        """
        if not self.config.notes or not notes:
            return {}
        problems: dict[Target, str | None] = dict.fromkeys(notes)

        async def one(target: Target, text: str) -> None:
            body = {"note": {"eventId": target.id, "timelineId": "", "note": text[:NOTE_MAX]}}
            path = self._prefix(self._space_of(target)) + NOTE_PATH
            try:
                response = await self._kibana.request("PATCH", path, operation="note", json=body)
            except PlatformError as exc:
                log.warning("kibana_note_failed", status=exc.status, reason=exc.reason)
                problems[target] = f"{exc.status or ''} {exc.reason}".strip()
                return
            problem = note_problem(json_or_none(response))
            if problem:
                problems[target] = problem

        await asyncio.gather(*(one(t, text) for t, text in notes.items()))
        return problems


def _tag_results(
    batch: list[Target], data: Mapping[str, Any] | None, error: PlatformError | None, change: str
) -> list[ItemResult]:
    if error is not None:
        return [ItemResult(target=t, outcome=Outcome.FAILED, detail=error.reason, status=error.status) for t in batch]
    assert data is not None
    updated = data.get("updated")
    noops = data.get("noops") or 0
    sent = len(alert_ids(batch))
    if isinstance(updated, int) and updated + (noops if isinstance(noops, int) else 0) >= sent:
        return [ItemResult(target=t, outcome=Outcome.DONE, detail=f"tagged {change}", after=change) for t in batch]
    detail = f"Kibana updated {updated} of {sent} alerts; check their tags"
    return [ItemResult(target=t, outcome=Outcome.FAILED, detail=detail) for t in batch]


__all__ = ["NOTE_PATH", "TAGS_PATH", "KibanaClient", "note_problem"]
