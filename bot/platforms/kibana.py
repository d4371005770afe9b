"""Elastic Security (Kibana) detection alerts, and the optional Elasticsearch profile look-up.

Every alert lives in one Kibana space (its index is ``.alerts-security.alerts-<space>``),
so a ``Target`` carries its space (``None`` means the configured default space) and
every call goes to that space: no prefix for the space ``default``, ``/s/<space>``
otherwise. An id sent to the wrong space is not an error for Kibana (HTTP 200 with
``updated: 0``), which is why every write here reads the alerts first, sends only
ids the space holds, and checks ``updated`` against what it sent.

Writes are idempotent set operations (assignee add/remove, a target status), so the
shared HTTP layer may retry them safely. Reads that fail raise a ``PlatformError``
before anything is written; a write request that fails is reported per item as
``FAILED`` with the vendor's status and reason, so one space's failure never hides
another space's success.

Kibana has no public API from an email to a user profile uid: when an Elasticsearch
endpoint is configured the client asks ``/_security/profile/_suggest`` and keeps only
an exact email match; without one, ``find_user_by_email`` returns ``None`` (the
caller falls back to a configured mapping) and ``get_user`` cannot verify a uid.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import httpx
import structlog

from bot import rules
from bot.errors import ConfigError, PlatformError, PlatformNotFound, UsageError
from bot.models import BatchResult, ItemResult, ItemState, Outcome, Platform, PlatformUser, Target
from bot.platforms.base import BasePlatformClient
from bot.platforms.http import PlatformHttp, json_or_none
from bot.settings import KibanaConfig

log = structlog.get_logger(__name__)

API_VERSION = "2023-10-31"
SEARCH_PATH = "/api/detection_engine/signals/search"
ASSIGNEES_PATH = "/api/detection_engine/signals/assignees"
STATUS_PATH = "/api/detection_engine/signals/status"

CLOSE_REASONS = rules.KIBANA_CLOSE_REASONS
OPEN_STATUSES = rules.KIBANA_OPEN_STATUSES

F_UUID = "kibana.alert.uuid"
F_RULE = "kibana.alert.rule.name"
F_SEVERITY = "kibana.alert.severity"
F_STATUS = "kibana.alert.workflow_status"
F_ASSIGNEES = "kibana.alert.workflow_assignee_ids"
SOURCE_FIELDS = [F_UUID, F_RULE, F_SEVERITY, F_STATUS, F_ASSIGNEES]

MAX_BATCH = 1000


def parse_error(response: httpx.Response) -> str:
    """The human reason of a Kibana or Elasticsearch error body; empty when there is none.

    Kibana answers ``{statusCode,error,message}`` or ``{status_code,message}`` where
    ``message`` may be a string or an array; Elasticsearch ``{error:{type,reason},status}``.
    """
    body = json_or_none(response)
    if not isinstance(body, dict):
        return response.text.strip()[:300]
    message = body.get("message")
    if isinstance(message, list):
        return "; ".join(str(m) for m in message)[:500]
    if isinstance(message, str) and message:
        return message[:500]
    error = body.get("error")
    if isinstance(error, dict):
        return str(error.get("reason") or error.get("type") or "")[:500]
    if isinstance(error, str):
        return error[:500]
    return ""


def _field(source: Mapping[str, Any], dotted: str) -> Any:
    """A field of an alert ``_source``, stored flat (``a.b.c``) or nested (``{a:{b:…}}``)."""
    if dotted in source:
        return source[dotted]
    head, _, rest = dotted.partition(".")
    while rest:
        inner = source.get(head)
        if isinstance(inner, Mapping):
            found = _field(inner, rest)
            if found is not None:
                return found
        nxt, _, rest = rest.partition(".")
        head = f"{head}.{nxt}"
    return None


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return [str(v) for v in value if v]
    return [str(value)]


def _ids(batch: Sequence[Target]) -> list[str]:
    """The distinct alert ids of a batch, in order (a space holds each id once)."""
    return list(dict.fromkeys(t.id for t in batch))


def _chunks(items: Sequence[Target], size: int) -> Iterator[list[Target]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


class KibanaClient(BasePlatformClient):
    """Detection alerts over Kibana's Security Detections API, per space."""

    platform = Platform.KIBANA

    def __init__(self, config: KibanaConfig, *, batch_size: int = MAX_BATCH, page_size: int = 500) -> None:
        """Build the HTTP clients: ``batch_size`` (≤ 1000) ids a request, ``page_size`` a page.

        Raises ``ConfigError`` when a configured space is not a valid Kibana space id.
        """
        if not 1 <= batch_size <= MAX_BATCH:
            raise ValueError(f"batch_size must be 1..{MAX_BATCH}")
        if page_size < 1:
            raise ValueError("page_size must be positive")
        self.config = config
        self.url = config.url.rstrip("/")
        try:
            self.default_space = self.validate_space(config.default_space)
            configured = config.spaces or [config.default_space]
            self.spaces = [self.validate_space(s) for s in configured]
        except UsageError as exc:
            raise ConfigError([f"KIBANA_SPACE / KIBANA_SPACES: {exc.message}"]) from exc
        self.batch_size = batch_size
        self.page_size = page_size
        self._kibana = PlatformHttp(
            platform=self.platform.label,
            base_url=self.url,
            policy=config.http,
            headers={
                "Authorization": f"ApiKey {config.api_key.get_secret_value()}",
                "kbn-xsrf": "true",
                "elastic-api-version": API_VERSION,
            },
            error_parser=parse_error,
        )
        self._es: PlatformHttp | None = None
        if config.es_url and config.es_api_key:
            self._es = PlatformHttp(
                platform="Elasticsearch",
                base_url=config.es_url.rstrip("/"),
                policy=config.http,
                headers={"Authorization": f"ApiKey {config.es_api_key.get_secret_value()}"},
                error_parser=parse_error,
            )

    # ---- validation -----------------------------------------------------------------

    def validate_id(self, item_id: str) -> str:
        """Return the alert ``_id`` stripped; raise ``UsageError`` if it cannot be one."""
        return rules.normalise_kibana_alert_id(item_id)

    def validate_space(self, space: str) -> str:
        """Return the space id; raise ``UsageError`` unless it is lowercase a-z, 0-9, _ or -."""
        return rules.normalise_kibana_space(space)

    @staticmethod
    def _validate_uid(uid: str) -> str:
        return rules.normalise_kibana_uid(uid, verb=None)

    def _space_of(self, target: Target) -> str:
        if target.platform is not Platform.KIBANA:
            raise UsageError(f"{target} is not a Kibana alert")
        return self.validate_space(target.space) if target.space else self.default_space

    def _group(self, targets: Sequence[Target]) -> dict[str, list[Target]]:
        """Targets by space, validated, duplicates dropped, order kept."""
        groups: dict[str, list[Target]] = defaultdict(list)
        for target in dict.fromkeys(targets):
            space = self._space_of(target)
            if self.validate_id(target.id) != target.id:
                raise UsageError(f"{target.id!r} has surrounding spaces: not a Kibana alert id")
            groups[space].append(target)
        return dict(groups)

    @staticmethod
    def _prefix(space: str) -> str:
        return "" if space == rules.DEFAULT_KIBANA_SPACE else f"/s/{space}"

    def link(self, space: str, alert_id: str) -> str:
        """The Kibana UI address that opens one alert."""
        return (
            f"{self.url}{self._prefix(space)}/app/security/alerts/redirect/{alert_id}"
            f"?index=.alerts-security.alerts-{space}"
        )

    # ---- reads ----------------------------------------------------------------------

    async def _search(self, space: str, body: dict[str, Any], *, operation: str = "search") -> dict[str, Any]:
        response = await self._kibana.request("POST", self._prefix(space) + SEARCH_PATH, operation=operation, json=body)
        data = json_or_none(response)
        if not isinstance(data, dict) or not isinstance(data.get("hits"), dict):
            raise PlatformError(self.platform.label, "search answered without hits", status=response.status_code)
        return data

    def _state(self, target: Target, space: str, source: Mapping[str, Any]) -> ItemState:
        status = _field(source, F_STATUS)
        severity = _field(source, F_SEVERITY)
        return ItemState(
            target=target,
            title=str(_field(source, F_RULE) or ""),
            severity=str(severity) if severity is not None else None,
            status=str(status) if status is not None else None,
            assignees=_as_list(_field(source, F_ASSIGNEES)),
            link=self.link(space, target.id),
        )

    async def _fetch_space(self, space: str, targets: Sequence[Target]) -> dict[Target, ItemState]:
        found: dict[Target, ItemState] = {}
        for batch in _chunks(targets, self.batch_size):
            by_id: dict[str, list[Target]] = defaultdict(list)
            for t in batch:
                by_id[t.id].append(t)
            data = await self._search(
                space,
                {
                    "query": {"ids": {"values": list(by_id)}},
                    "size": len(by_id),
                    "_source": SOURCE_FIELDS,
                },
            )
            for hit in data["hits"].get("hits") or []:
                for target in by_id.get(str(hit.get("_id")), []):
                    found[target] = self._state(target, space, hit.get("_source") or {})
        return found

    async def fetch(self, targets: Sequence[Target]) -> dict[Target, ItemState]:
        """Current state of each alert, searched in its own space; absent ids are absent.

        Raises ``UsageError`` for a malformed id or space and ``PlatformError`` when a search fails.
        """
        result: dict[Target, ItemState] = {}
        for space, group in self._group(targets).items():
            result.update(await self._fetch_space(space, group))
        return result

    async def list_assigned(self, user_id: str, *, limit: int = 1000) -> list[ItemState]:
        """Open, acknowledged or in-progress alerts assigned to ``user_id`` in every space.

        The search body has no ``from``/``search_after``, so pages are keyset-paged: sorted
        by ``kibana.alert.uuid`` (unique, equal to ``_id``) with a ``range`` after the last
        one seen. Raises ``UsageError`` for a malformed uid, ``PlatformError`` on failure.
        """
        uid = self._validate_uid(user_id)
        items: list[ItemState] = []
        for space in self.spaces:
            last: str | None = None
            while len(items) < limit:
                size = min(self.page_size, limit - len(items))
                filters: list[dict[str, Any]] = [
                    {"term": {F_ASSIGNEES: uid}},
                    {"terms": {F_STATUS: list(OPEN_STATUSES)}},
                ]
                if last is not None:
                    filters.append({"range": {F_UUID: {"gt": last}}})
                data = await self._search(
                    space,
                    {
                        "query": {"bool": {"filter": filters}},
                        "sort": [{F_UUID: {"order": "asc"}}],
                        "size": size,
                        "_source": SOURCE_FIELDS,
                    },
                )
                hits = data["hits"].get("hits") or []
                for hit in hits:
                    alert_id = str(hit.get("_id"))
                    target = Target(platform=Platform.KIBANA, id=alert_id, space=space)
                    items.append(self._state(target, space, hit.get("_source") or {}))
                if len(hits) < size:
                    break
                last = str(_field(hits[-1].get("_source") or {}, F_UUID) or hits[-1].get("_id"))
            if len(items) >= limit:
                break
        return items[:limit]

    # ---- writes ---------------------------------------------------------------------

    async def _read_all(self, groups: Mapping[str, list[Target]]) -> dict[Target, ItemState]:
        """Read every space before writing any, so a failed read leaves nothing half-done."""
        states: dict[Target, ItemState] = {}
        for space, group in groups.items():
            states.update(await self._fetch_space(space, group))
        return states

    async def _write(
        self, space: str, path: str, body: dict[str, Any], *, operation: str
    ) -> tuple[dict[str, Any] | None, PlatformError | None]:
        try:
            response = await self._kibana.request("POST", self._prefix(space) + path, operation=operation, json=body)
        except PlatformError as exc:
            log.warning(
                "kibana_write_failed",
                operation=operation,
                space=space,
                status=exc.status,
                reason=exc.reason,
            )
            return None, exc
        data = json_or_none(response)
        return (data if isinstance(data, dict) else {}), None

    @staticmethod
    def _failures(data: Mapping[str, Any]) -> dict[str, str]:
        """Per-id reasons from an update-by-query ``failures`` list."""
        reasons: dict[str, str] = {}
        for failure in data.get("failures") or []:
            if isinstance(failure, Mapping):
                cause = failure.get("cause")
                reason = cause.get("reason") or cause.get("type") if isinstance(cause, Mapping) else None
                reasons[str(failure.get("id"))] = str(reason or failure.get("status") or "failed")
        return reasons

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
        ``describe(state)`` renders it for the ledger.
        """
        if error is not None:
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
        assert data is not None
        updated = data.get("updated")
        failures = self._failures(data)
        conflicts = data.get("version_conflicts") or 0
        if isinstance(updated, int) and updated >= len(_ids(batch)) and not failures and not conflicts:
            return [
                ItemResult(target=t, outcome=Outcome.DONE, detail=done, before=before[t], after=after) for t in batch
            ]
        # The vendor confirmed fewer than were sent: find out which, from the alerts themselves.
        log.warning(
            "kibana_partial_update",
            space=space,
            sent=len(_ids(batch)),
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
                    detail=f"Kibana updated {updated} of {len(_ids(batch))}; re-read failed: " + exc.reason,
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
                reason = failures.get(t.id) or "Kibana did not update it"
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
            for batch in _chunks(to_write, self.batch_size):
                current = {a for t in batch for a in states[t].assignees}
                # Kibana refuses a uid in both lists; removals are applied before additions.
                remove = sorted(current - set(add))
                body = {"assignees": {"add": add, "remove": remove}, "ids": _ids(batch)}
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
        """The contract's close reason for ``reason`` (case, spaces, dashes forgiven) or raise."""
        return rules.normalise_kibana_reason(reason)

    async def resolve(
        self, targets: Sequence[Target], *, reason: str | None = None, comment: str | None = None
    ) -> BatchResult:
        """Close each alert (with ``reason`` when given); already-closed alerts are SKIPPED.

        Kibana has no comment API, so a comment is never sent: each result says it is
        kept in Slack only. Raises ``UsageError`` for an unknown reason before any call.
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
            for batch in _chunks(to_write, self.batch_size):
                body: dict[str, Any] = {"signal_ids": _ids(batch), "status": "closed"}
                if close_reason:
                    body["reason"] = close_reason
                data, error = await self._write(space, STATUS_PATH, body, operation="status")
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

    # ---- identities -----------------------------------------------------------------

    @staticmethod
    def _user(profile: Mapping[str, Any]) -> PlatformUser:
        raw = profile.get("user")
        user: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
        return PlatformUser(
            platform=Platform.KIBANA,
            id=str(profile.get("uid")),
            email=user.get("email") or None,
            name=user.get("full_name") or user.get("username") or None,
            active=profile.get("enabled") is not False,
        )

    async def find_user_by_email(self, email: str) -> PlatformUser | None:
        """The enabled profile whose ``user.email`` is ``email`` (case-insensitive), via ES.

        Returns ``None`` when Elasticsearch is not configured or nothing matches exactly;
        raises ``UsageError`` for a malformed email and ``PlatformError`` when ES fails.
        """
        rules.normalise_email(email)
        wanted = email.strip()
        if self._es is None:
            return None
        response = await self._es.request(
            "POST",
            "/_security/profile/_suggest",
            operation="es.profile_suggest",
            json={"name": wanted, "size": 5},
        )
        data = json_or_none(response)
        profiles = data.get("profiles") if isinstance(data, dict) else None
        # Suggestions are relevance-ranked, not exact: only an exact email on an enabled
        # profile counts.
        for profile in profiles or []:
            if not isinstance(profile, Mapping) or not profile.get("uid"):
                continue
            user = profile.get("user")
            found = user.get("email") if isinstance(user, Mapping) else None
            if isinstance(found, str) and found.lower() == wanted.lower() and profile.get("enabled") is not False:
                return self._user(profile)
        return None

    async def get_user(self, user_id: str) -> PlatformUser | None:
        """The profile ``user_id`` from Elasticsearch, or ``None`` when it does not exist.

        Without Elasticsearch the uid cannot be verified: a syntactically valid uid is
        returned as a ``PlatformUser`` with only its id. Raises ``UsageError`` for a
        malformed uid and ``PlatformError`` when ES fails.
        """
        uid = self._validate_uid(user_id)
        if self._es is None:
            return PlatformUser(platform=Platform.KIBANA, id=uid)
        try:
            response = await self._es.request("GET", f"/_security/profile/{uid}", operation="es.profile_get")
        except PlatformNotFound:
            return None
        data = json_or_none(response)
        profiles = data.get("profiles") if isinstance(data, dict) else None
        for profile in profiles or []:
            if isinstance(profile, Mapping) and profile.get("uid") == uid:
                return self._user(profile)
        return None

    # ---- plumbing -------------------------------------------------------------------

    async def check(self) -> str:
        """Run a size-0 alert search in the default space; raise ``PlatformError`` when it fails."""
        data = await self._search(self.default_space, {"size": 0, "track_total_hits": True}, operation="check")
        total = data["hits"].get("total")
        count = total.get("value") if isinstance(total, Mapping) else total
        es = " (profile look-up via Elasticsearch)" if self._es is not None else ""
        return f"Kibana {self.url}: {count} alerts in space {self.default_space}{es}"

    def call_counts(self) -> Counter[str]:
        """Requests sent so far per operation, Kibana and ES merged (attempts included)."""
        counts: Counter[str] = Counter(self._kibana.calls)
        if self._es is not None:
            counts.update(self._es.calls)
        return counts

    async def aclose(self) -> None:
        """Close the HTTP clients."""
        await self._kibana.aclose()
        if self._es is not None:
            await self._es.aclose()
