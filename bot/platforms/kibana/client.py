"""The Kibana client: the writes (assignees, close), each read first and confirmed after.

Kibana's update-by-query answers count an alert already in the requested state as
``updated`` (its scripts never set ``ctx.op = noop``; ``noops`` stays 0), so the count
cannot tell "changed" from "already so": the read before each write is what makes an
alert already assigned or closed SKIPPED, and only the alerts that need a change are sent.
``total`` below the ids sent (unknown ids give an all-zero body) is the not-found signal.
A concurrent write aborts the update with 409: the batch is sent once more, and when it
conflicts again the alerts are re-read and reported one by one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import structlog

from bot import rules
from bot.errors import PlatformError
from bot.models import BatchResult, ItemResult, ItemState, Outcome, Target
from bot.platforms.http import json_or_none
from bot.platforms.kibana.reads import KibanaReader
from bot.platforms.kibana.wire import (
    ASSIGNEES_PATH,
    CLOSE_REASONS,
    CONFLICT,
    INVALID_REASON,
    STATUS_PATH,
    alert_ids,
    chunks,
    update_failures,
)

log = structlog.get_logger(__name__)


class KibanaWriter(KibanaReader):
    """Detection alerts over Kibana's Security Detections API, per space."""

    async def _read_all(self, groups: Mapping[str, list[Target]]) -> dict[Target, ItemState]:
        """Read every space before writing any, so a failed read leaves nothing half-done."""
        states: dict[Target, ItemState] = {}
        for space, group in groups.items():
            states.update(await self._fetch_space(space, group))
        return states

    async def _write(
        self, space: str, path: str, body: dict[str, Any], *, operation: str
    ) -> tuple[dict[str, Any] | None, PlatformError | None]:
        """One write, sent a second time after a 409 version conflict (both are idempotent)."""
        for attempt in (1, 2):
            try:
                response = await self._kibana.request(
                    "POST", self._prefix(space) + path, operation=operation, json=body
                )
            except PlatformError as exc:
                log.warning(
                    "kibana_write_failed",
                    operation=operation,
                    space=space,
                    status=exc.status,
                    reason=exc.reason,
                    attempt=attempt,
                )
                if exc.status == CONFLICT and attempt == 1:
                    continue
                return None, exc
            data = json_or_none(response)
            return (data if isinstance(data, dict) else {}), None
        raise AssertionError("unreachable")  # pragma: no cover

    async def _confirm(
        self,
        space: str,
        batch: list[Target],
        data: Mapping[str, Any] | None,
        error: PlatformError | None,
        *,
        reached: Callable[[ItemState], bool],
        describe: Callable[[ItemState], str],
        before: Mapping[Target, str],
        after: str,
        done: str,
    ) -> list[ItemResult]:
        """Per-item results of one write: trust it only when ``updated`` covers the whole batch.

        ``reached(state)`` says whether a re-read state is the one the write aimed at;
        ``describe(state)`` renders it for the ledger. A write that conflicted twice (409)
        may have changed some alerts before it aborted, so those are re-read too.
        """
        conflict = error is not None and error.status == CONFLICT
        if error is not None and not conflict:
            return [
                ItemResult(
                    target=t,
                    outcome=Outcome.FAILED,
                    detail=error.reason,
                    status=error.status,
                    before=before[t],
                    after=before[t],
                )
                for t in batch
            ]
        if conflict:
            assert error is not None
            data = {
                "failures": [],
                "conflict": "version conflict (409) twice, another write changed the alert: " + error.reason,
            }
        assert data is not None
        updated = data.get("updated")
        failures = update_failures(data)
        conflicts = data.get("version_conflicts") or 0
        if (
            not conflict
            and isinstance(updated, int)
            and updated >= len(alert_ids(batch))
            and not failures
            and not conflicts
        ):
            return [
                ItemResult(target=t, outcome=Outcome.DONE, detail=done, before=before[t], after=after) for t in batch
            ]
        # The vendor confirmed fewer than were sent: find out which, from the alerts themselves.
        log.warning(
            "kibana_partial_update",
            space=space,
            sent=len(alert_ids(batch)),
            updated=updated,
            total=data.get("total"),
            conflicts=conflicts,
            failures=len(failures),
        )
        try:
            now = await self._fetch_space(space, batch)
        except PlatformError as exc:
            return [
                ItemResult(
                    target=t,
                    outcome=Outcome.FAILED,
                    status=exc.status,
                    detail=f"Kibana updated {updated} of {len(alert_ids(batch))}; re-read failed: " + exc.reason,
                    before=before[t],
                )
                for t in batch
            ]
        results: list[ItemResult] = []
        for t in batch:
            state = now.get(t)
            if state is None:
                results.append(
                    ItemResult(
                        target=t,
                        outcome=Outcome.NOT_FOUND,
                        detail="alert no longer found",
                        before=before[t],
                    )
                )
            elif reached(state):
                results.append(ItemResult(target=t, outcome=Outcome.DONE, detail=done, before=before[t], after=after))
            else:
                reason = failures.get(t.id) or str(data.get("conflict") or "Kibana did not update it")
                results.append(
                    ItemResult(
                        target=t,
                        outcome=Outcome.FAILED,
                        detail=reason,
                        before=before[t],
                        after=describe(state),
                    )
                )
        return results

    async def _reassign(self, targets: Sequence[Target], add: list[str], *, skip_detail: str, done: str) -> BatchResult:
        groups = self._group(targets)
        states = await self._read_all(groups)
        results: dict[Target, ItemResult] = {}
        after = ",".join(add)
        for space, group in groups.items():
            to_write: list[Target] = []
            for t in group:
                state = states.get(t)
                if state is None:
                    results[t] = ItemResult(
                        target=t,
                        outcome=Outcome.NOT_FOUND,
                        detail=f"no such alert in space {space!r}",
                    )
                elif state.assignees == add:
                    results[t] = ItemResult(
                        target=t,
                        outcome=Outcome.SKIPPED,
                        detail=skip_detail,
                        before=",".join(state.assignees),
                        after=after,
                    )
                else:
                    to_write.append(t)
            for batch in chunks(to_write, self.batch_size):
                current = {a for t in batch for a in states[t].assignees}
                # Kibana refuses a uid in both lists; removals are applied before additions.
                remove = sorted(current - set(add))
                body = {"assignees": {"add": add, "remove": remove}, "ids": alert_ids(batch)}
                data, error = await self._write(space, ASSIGNEES_PATH, body, operation="assignees")
                before = {t: ",".join(states[t].assignees) for t in batch}
                for item in await self._confirm(
                    space,
                    batch,
                    data,
                    error,
                    reached=lambda s: s.assignees == add,
                    describe=lambda s: ",".join(s.assignees),
                    before=before,
                    after=after,
                    done=done,
                ):
                    results[item.target] = item
        return BatchResult.of(results[t] for t in dict.fromkeys(targets))

    async def assign(self, targets: Sequence[Target], user_id: str, *, user_name: str | None = None) -> BatchResult:
        """Make ``user_id`` the only assignee of each alert: one request per space and batch.

        Alerts the space does not hold are NOT_FOUND (never written); alerts already
        assigned to exactly ``user_id`` are SKIPPED. Raises ``UsageError`` for bad input
        and ``PlatformError`` if the preliminary read fails.
        """
        uid = self._validate_uid(user_id)
        who = user_name or uid
        return await self._reassign(targets, [uid], skip_detail=f"already assigned to {uid}", done=f"assigned to {who}")

    async def unassign(self, targets: Sequence[Target]) -> BatchResult:
        """Remove every assignee of each alert; alerts with none are SKIPPED.

        Raises ``UsageError`` for bad input and ``PlatformError`` if the preliminary read fails.
        """
        return await self._reassign(targets, [], skip_detail="already unassigned", done="unassigned")

    @staticmethod
    def normalise_reason(reason: str | None) -> str | None:
        """A default close reason (case, spaces, dashes forgiven) or a custom one as given."""
        return rules.normalise_kibana_reason(reason)

    async def resolve(
        self, targets: Sequence[Target], *, reason: str | None = None, comment: str | None = None
    ) -> BatchResult:
        """Close each alert (with ``reason`` when given); already-closed alerts are SKIPPED.

        Kibana has no comment API, so a comment is never sent: each result says it is
        kept in Slack only. A reason the space does not know is Kibana's 400 ("<reason> is
        an invalid closing reason."), reported on each alert with the default reasons.
        """
        close_reason = self.normalise_reason(reason)
        note = "; comment kept in Slack only" if comment and comment.strip() else ""
        groups = self._group(targets)
        states = await self._read_all(groups)
        results: dict[Target, ItemResult] = {}
        done = ("closed" + (f" ({close_reason})" if close_reason else "")) + note
        for space, group in groups.items():
            to_write: list[Target] = []
            for t in group:
                state = states.get(t)
                if state is None:
                    results[t] = ItemResult(
                        target=t,
                        outcome=Outcome.NOT_FOUND,
                        detail=f"no such alert in space {space!r}",
                    )
                elif (state.status or "").lower() == "closed":
                    results[t] = ItemResult(
                        target=t,
                        outcome=Outcome.SKIPPED,
                        detail="already closed" + note,
                        before="closed",
                        after="closed",
                    )
                else:
                    to_write.append(t)
            for batch in chunks(to_write, self.batch_size):
                body: dict[str, Any] = {"signal_ids": alert_ids(batch), "status": "closed"}
                if close_reason:
                    body["reason"] = close_reason
                data, error = await self._write(space, STATUS_PATH, body, operation="status")
                if error is not None and INVALID_REASON in error.reason:
                    error = type(error)(
                        error.platform,
                        f"{error.reason} Kibana's default reasons are {', '.join(CLOSE_REASONS)}; "
                        "a custom one must be in the space's closing-reasons setting",
                        status=error.status,
                    )
                before = {t: states[t].status or "" for t in batch}
                for item in await self._confirm(
                    space,
                    batch,
                    data,
                    error,
                    reached=lambda s: (s.status or "").lower() == "closed",
                    describe=lambda s: s.status or "",
                    before=before,
                    after="closed",
                    done=done,
                ):
                    results[item.target] = item
        return BatchResult.of(results[t] for t in dict.fromkeys(targets))
