"""The Datadog client: validation, then the requests ``shared/contracts/datadog.yaml`` names."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Sequence
from typing import Any
from urllib.parse import quote

import structlog

from bot import permissions, rules
from bot.errors import PlatformError, PlatformNotFound, UsageError
from bot.models import (
    BatchResult,
    ItemState,
    Platform,
    Target,
    Verb,
)
from bot.platforms.base import BasePlatformClient
from bot.platforms.datadog.partial import without_unknown
from bot.platforms.datadog.users import DatadogUsers
from bot.platforms.datadog.wire import (
    all_failed,
    as_dict,
    assignee_outcomes,
    attach_outcomes,
    case_uuid_of,
    chunks,
    finding_state,
    is_unknown_finding,
    parse_datadog_error,
    quote_query_value,
)
from bot.platforms.http import PlatformHttp, json_or_none
from bot.settings import DatadogConfig

log = structlog.get_logger(__name__)

# Limits that live only in the endpoint descriptions (the schemas have no maxItems).
ASSIGN_CHUNK = 100
ATTACH_MAX = rules.DATADOG_ATTACH_MAX
# Findings per search page: the contract allows 1..150; 100 keeps responses modest.
SEARCH_PAGE = 100
# Ids per fetch query: keeps the OR-list (and the request body) small.
FETCH_CHUNK = 50


class DatadogFindings(DatadogUsers, BasePlatformClient):
    """The Datadog client behind the ``PlatformClient`` Protocol.

    ``resolve``, ``comment`` and ``set_severity`` keep the ``BasePlatformClient`` defaults
    (``UnsupportedError``): the contract has no such Datadog finding operations.
    """

    platform = Platform.DATADOG

    def __init__(self, config: DatadogConfig) -> None:
        self._config = config
        self._site = config.site
        self._http = PlatformHttp(
            # The Platform value, so that ``exc.platform == Platform.DATADOG`` holds.
            platform=Platform.DATADOG.value,
            base_url=config.api_url,
            policy=config.http,
            headers={
                "DD-API-KEY": config.api_key.get_secret_value(),
                "DD-APPLICATION-KEY": config.app_key.get_secret_value(),
                "Accept": "application/json",
            },
            error_parser=parse_datadog_error,
            permissions=permissions.DATADOG,
        )

    # ---- housekeeping --------------------------------------------------------------------

    def call_counts(self) -> Counter[str]:
        """Requests sent so far, per operation name (every retry attempt counts)."""
        return self._http.calls

    async def aclose(self) -> None:
        """Close the underlying HTTP client; the client cannot be used afterwards."""
        await self._http.aclose()

    # ---- validation ----------------------------------------------------------------------

    def validate_id(self, item_id: str) -> str:
        """Return the finding id stripped; raise ``UsageError`` if it cannot be a finding id."""
        return rules.normalise_datadog_finding_id(item_id)

    def _unique_targets(self, targets: Sequence[Target], *, verb: Verb) -> dict[str, Target]:
        """Validated, de-duplicated targets keyed by normalised id, in first-seen order."""
        unique: dict[str, Target] = {}
        for target in targets:
            if target.platform is not Platform.DATADOG:
                raise UsageError(f"{target.key} is not a Datadog finding.", verb=verb.value)
            item_id = self.validate_id(target.id)
            unique.setdefault(item_id, target)
        return unique

    @staticmethod
    def _require_uuid(user_id: str, *, verb: Verb) -> str:
        return rules.normalise_datadog_user_id(user_id, verb=verb)

    # ---- assignment ----------------------------------------------------------------------

    async def assign(self, targets: Sequence[Target], user_id: str, *, user_name: str | None = None) -> BatchResult:
        """Make ``user_id`` (a Datadog user UUID) the assignee of each finding.

        Raises ``UsageError`` before any call for a malformed user id or finding id. Vendor
        failures never raise: they come back as ``FAILED`` items, per finding (``meta.failures``
        of a 202) or per chunk of 100 (a whole request failing after retries). ``user_name`` is
        accepted for the Protocol; Datadog derives the display name from the id itself.
        """
        assignee = self._require_uuid(user_id, verb=Verb.ASSIGN)
        unique = self._unique_targets(targets, verb=Verb.ASSIGN)
        return await self._set_assignee(unique, assignee)

    async def unassign(self, targets: Sequence[Target]) -> BatchResult:
        """Remove the assignee of each finding; vendor failures come back as ``FAILED`` items."""
        unique = self._unique_targets(targets, verb=Verb.UNASSIGN)
        return await self._set_assignee(unique, None)

    async def _set_assignee(self, unique: dict[str, Target], assignee: str | None) -> BatchResult:
        result = BatchResult()
        for chunk in chunks(list(unique), ASSIGN_CHUNK):
            result.extend(await self._assign_chunk(unique, chunk, assignee, first=True))
        return result

    async def _assign_chunk(
        self, unique: dict[str, Target], chunk: list[str], assignee: str | None, *, first: bool
    ) -> BatchResult:
        """One assignment request; after a whole-request ``finding not found`` (``first``
        only) the known ids are sent once more and the unknown ones are NOT_FOUND."""
        data: dict[str, Any] = {
            "type": "assignee",
            "relationships": {"findings": {"data": [{"id": i, "type": "findings"} for i in chunk]}},
        }
        # Unassigning omits assignee_id: the schema's string is not nullable.
        if assignee is not None:
            data["attributes"] = {"assignee_id": assignee}
        try:
            response = await self._http.request(
                "PATCH", "/api/v2/security/findings/assignee", operation="update_findings_assignee", json={"data": data}
            )
        except PlatformError as exc:
            log.warning("datadog_assign_chunk_failed", findings=len(chunk), status=exc.status, reason=exc.reason)
            if first and is_unknown_finding(exc):

                async def resend(ids: list[str]) -> BatchResult:
                    return await self._assign_chunk(unique, ids, assignee, first=False)

                return await without_unknown(unique, chunk, exc, known=self._known_ids, send=resend)
            return all_failed(unique, chunk, exc)
        return assignee_outcomes(unique, chunk, response, assignee)

    # ---- cases ---------------------------------------------------------------------------

    async def attach_case(self, targets: Sequence[Target], case: str) -> BatchResult:
        """Attach the findings to a case given by UUID or key (``SEC-123``).

        Raises ``UsageError`` before any call for more than 50 findings, a bad finding id or a
        malformed case reference, and ``UsageError`` when Datadog says the case does not exist
        (nothing was attached, and the analyst can fix the reference). Other vendor failures
        come back as ``FAILED`` items. Findings already in another case are moved (vendor rule).
        """
        unique = self._unique_targets(targets, verb=Verb.ATTACH)
        if not unique:
            raise UsageError("Name at least one Datadog finding to attach to the case.", verb=Verb.ATTACH.value)
        if len(unique) > ATTACH_MAX:
            raise UsageError(
                f"Datadog attaches at most {ATTACH_MAX} findings to a case; "
                f"you named {len(unique)}. Split them across cases or attach fewer.",
                verb=Verb.ATTACH.value,
            )
        reference = rules.normalise_case(case)
        if rules.is_uuid(reference):
            case_uuid, case_key = reference, None
        else:
            case_key = reference
            try:
                case_uuid = await self._resolve_case_key(case_key)
            except PlatformError as exc:
                return all_failed(unique, list(unique), exc)
        return await self._attach_ids(unique, list(unique), case_uuid, case_key or case_uuid, first=True)

    async def _attach_ids(
        self, unique: dict[str, Target], ids: list[str], case_uuid: str, case_ref: str, *, first: bool
    ) -> BatchResult:
        try:
            response = await self._http.request(
                "PATCH",
                f"/api/v2/security/findings/cases/{case_uuid}",
                operation="attach_case",
                json={
                    "data": {
                        # The recorded examples send the same UUID in the path and the body.
                        "id": case_uuid,
                        "type": "cases",
                        "relationships": {"findings": {"data": [{"id": i, "type": "findings"} for i in ids]}},
                    }
                },
            )
        except PlatformError as exc:
            log.warning("datadog_attach_failed", findings=len(ids), status=exc.status, reason=exc.reason)
            if first and is_unknown_finding(exc):

                async def resend(valid: list[str]) -> BatchResult:
                    return await self._attach_ids(unique, valid, case_uuid, case_ref, first=False)

                return await without_unknown(unique, ids, exc, known=self._known_ids, send=resend)
            if isinstance(exc, PlatformNotFound) and first:
                raise UsageError(f"Datadog case {case_ref} not found ({exc.reason}).", verb=Verb.ATTACH.value) from exc
            return all_failed(unique, ids, exc)
        return attach_outcomes(unique, ids, response, case_ref)

    async def _resolve_case_key(self, key: str) -> str:
        """The UUID of the case with this key; ``UsageError`` when Datadog has no such case."""
        try:
            response = await self._http.request("GET", f"/api/v2/cases/{quote(key)}", operation="get_case")
        except PlatformNotFound as exc:
            raise UsageError(f"Datadog case {key} not found.", verb=Verb.ATTACH.value) from exc
        case_uuid = case_uuid_of(json_or_none(response))
        if case_uuid is None or not rules.is_uuid(case_uuid):
            raise PlatformError(
                Platform.DATADOG.value,
                f"the answer for case {key} carries no case UUID",
                status=response.status_code,
            )
        return case_uuid.lower()

    # ---- reads ---------------------------------------------------------------------------

    async def fetch(self, targets: Sequence[Target]) -> dict[Target, ItemState]:
        """Current state of each finding; findings Datadog does not return are absent.

        The contract has no get-by-id for findings. The most defensible read is the findings
        search with ``@finding_id:("id1" OR "id2" …)``: ``finding_id`` is the findings-schema
        core attribute "Unique identifier of the finding", and quoting keeps the base64
        ``= ~ - /`` characters literal. Results are keyed by ``data[].id`` (the id the write
        endpoints take) and anything not asked for is dropped. Raises ``UsageError`` for a bad
        id and the ``PlatformError`` met for a failed search.
        """
        unique = self._unique_targets(targets, verb=Verb.SHOW)
        states: dict[Target, ItemState] = {}
        for chunk in chunks(list(unique), FETCH_CHUNK):
            query = "@finding_id:(" + " OR ".join(quote_query_value(i) for i in chunk) + ")"
            async for finding in self._search(query, limit=len(chunk), operation="fetch_findings"):
                target = unique.get(str(finding.get("id")))
                if target is not None:
                    states[target] = finding_state(target, finding, link=self.finding_link(target.id))
        return states

    async def _known_ids(self, ids: list[str]) -> set[str]:
        """Which of ``ids`` the findings search returns (one search per ``SEARCH_PAGE`` ids)."""
        found: set[str] = set()
        for chunk in chunks(ids, SEARCH_PAGE):
            query = "@finding_id:(" + " OR ".join(quote_query_value(i) for i in chunk) + ")"
            async for finding in self._search(query, limit=len(chunk), operation="known_findings"):
                found.add(str(finding.get("id")))
        return found

    async def list_assigned(self, user_id: str, *, limit: int = 1000) -> list[ItemState]:
        """Open findings assigned to ``user_id`` (a UUID), newest first, at most ``limit``.

        Raises ``UsageError`` for a malformed user id and the ``PlatformError`` met for a
        failed search; a search that timed out server-side returns its partial results and
        logs a warning.
        """
        uuid = self._require_uuid(user_id, verb=Verb.MINE)
        query = f"@workflow.triage.assignee.id:{uuid} @status:open"
        states: list[ItemState] = []
        async for finding in self._search(query, limit=max(0, limit), operation="list_assigned"):
            finding_id = finding.get("id")
            if isinstance(finding_id, str) and finding_id:
                target = Target(platform=Platform.DATADOG, id=finding_id)
                states.append(finding_state(target, finding, link=self.finding_link(target.id)))
        return states

    async def _search(self, query: str, *, limit: int, operation: str) -> AsyncIterator[dict[str, Any]]:
        """Findings matching ``query``, following ``meta.page.after`` until ``limit`` or the end."""
        returned = 0
        cursor: str | None = None
        while returned < limit:
            page: dict[str, Any] = {"limit": min(SEARCH_PAGE, limit - returned)}
            if cursor:
                page["cursor"] = cursor
            response = await self._http.request(
                "POST",
                "/api/v2/security/findings/search",
                operation=operation,
                # SecurityFindingsSearchRequest: data has attributes only, no type.
                json={
                    "data": {
                        "attributes": {
                            "filter": query,
                            "page": page,
                            "sort": "-@detection_changed_at",
                        }
                    }
                },
            )
            body = json_or_none(response)
            body = body if isinstance(body, dict) else {}
            meta = as_dict(body.get("meta"))
            if meta.get("status") == "timeout":
                log.warning("datadog_search_partial", operation=operation, returned=returned)
            raw_data = body.get("data")
            data: list[Any] = raw_data if isinstance(raw_data, list) else []
            for finding in data:
                if returned >= limit:
                    return
                if isinstance(finding, dict):
                    returned += 1
                    yield finding
            page_meta = as_dict(meta.get("page"))
            after = page_meta.get("after")
            cursor = after if isinstance(after, str) else None
            # A finished page shorter than its limit is the last, cursor or not (the recorded
            # pages carry meta.page.after whatever their length).
            short = len(data) < page["limit"] and meta.get("status") != "timeout"
            if not cursor or not data or short:
                return

    def finding_link(self, finding_id: str) -> str:
        """A link to the finding in the Datadog app of the configured site.

        The contract documents no app URL for one finding, so this opens the findings explorer
        filtered on ``@finding_id`` (the same query ``fetch`` uses) rather than guessing a
        per-category page; the path is to be confirmed on a live tenant.
        """
        query = quote(f"@finding_id:{quote_query_value(finding_id)}", safe="")
        return f"https://{rules.app_host(self._site)}/security/findings?query={query}"

    async def check(self) -> str:
        """Prove the keys work with the cheapest findings read (one finding, no filter).

        Findings read is the permission every bot feature needs, so this checks the keys and
        that permission in one request. Raises ``PlatformAuthError`` ("403 — Forbidden …")
        for refused keys and other ``PlatformError`` subclasses for other failures.
        """
        await self._http.request("GET", "/api/v2/security/findings", operation="check", params={"page[limit]": 1})
        return f"Datadog ({self._site}): keys accepted, security findings readable"
