"""The Datadog client: validation, then the requests ``shared/contracts/datadog.yaml`` names."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Sequence
from typing import Any
from urllib.parse import quote

import structlog

from bot import rules
from bot.errors import PlatformError, PlatformNotFound, UsageError
from bot.models import (
    BatchResult,
    ItemState,
    Platform,
    PlatformUser,
    Target,
    Verb,
)
from bot.platforms.base import BasePlatformClient
from bot.platforms.datadog.wire import (
    all_failed,
    as_dict,
    assignee_outcomes,
    attach_outcomes,
    chunks,
    finding_state,
    parse_datadog_error,
    platform_user,
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
USERS_PAGE = 100
# Users pages to scan for get_user before giving up (USERS_PAGE users each).
USER_SCAN_PAGES = 50
# Pages of substring matches to compare for one email (a short email can match many users).
EMAIL_SCAN_PAGES = 10


class DatadogFindings(BasePlatformClient):
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
            data: dict[str, Any] = {
                "type": "assignee",
                "relationships": {"findings": {"data": [{"id": i, "type": "findings"} for i in chunk]}},
            }
            # Unassigning omits assignee_id: the schema's string is not nullable.
            if assignee is not None:
                data["attributes"] = {"assignee_id": assignee}
            try:
                response = await self._http.request(
                    "PATCH",
                    "/api/v2/security/findings/assignee",
                    operation="update_findings_assignee",
                    json={"data": data},
                )
            except PlatformError as exc:
                log.warning(
                    "datadog_assign_chunk_failed",
                    findings=len(chunk),
                    status=exc.status,
                    reason=exc.reason,
                )
                result.extend(all_failed(unique, chunk, exc))
                continue
            result.extend(assignee_outcomes(unique, chunk, response, assignee))
        return result

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
        ids = list(unique)
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
        except PlatformNotFound as exc:
            raise UsageError(
                f"Datadog case {case_key or case_uuid} not found ({exc.reason}).",
                verb=Verb.ATTACH.value,
            ) from exc
        except PlatformError as exc:
            log.warning("datadog_attach_failed", findings=len(ids), status=exc.status, reason=exc.reason)
            return all_failed(unique, ids, exc)
        return attach_outcomes(unique, ids, response, case_key or case_uuid)

    async def _resolve_case_key(self, key: str) -> str:
        """The UUID of the case with this key; ``UsageError`` when Datadog has no such case."""
        try:
            response = await self._http.request("GET", f"/api/v2/cases/{quote(key)}", operation="get_case")
        except PlatformNotFound as exc:
            raise UsageError(f"Datadog case {key} not found.", verb=Verb.ATTACH.value) from exc
        body = json_or_none(response)
        data = body.get("data") if isinstance(body, dict) else None
        case_uuid = data.get("id") if isinstance(data, dict) else None
        if not isinstance(case_uuid, str) or not rules.is_uuid(case_uuid):
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
            if not cursor or not data:
                return

    def finding_link(self, finding_id: str) -> str:
        """A link to the finding in the Datadog app of the configured site.

        The contract documents no app URL for one finding, so this opens the findings explorer
        filtered on ``@finding_id`` (the same query ``fetch`` uses) rather than guessing a
        per-category page; the path is to be confirmed on a live tenant.
        """
        query = quote(f"@finding_id:{quote_query_value(finding_id)}", safe="")
        return f"https://{rules.app_host(self._site)}/security/findings?query={query}"

    # ---- identities ----------------------------------------------------------------------

    async def find_user_by_email(self, email: str) -> PlatformUser | None:
        """The active, human Datadog user whose email is exactly ``email`` (case-insensitive).

        The users filter is a substring match, so every page of candidates is compared
        exactly; disabled and service accounts are skipped. Raises ``UsageError`` for a
        malformed email and the ``PlatformError`` met for a failed call.
        """
        rules.normalise_email(email)
        wanted = email.strip()
        folded = wanted.casefold()
        for number in range(EMAIL_SCAN_PAGES):
            page = await self._users_page({"filter": wanted, "filter[status]": "Active"}, number)
            for user in page:
                attrs = as_dict(user.get("attributes"))
                if str(attrs.get("email") or "").casefold() != folded:
                    continue
                if attrs.get("disabled") or attrs.get("service_account"):
                    continue
                if attrs.get("status") not in (None, "Active"):
                    continue
                return platform_user(user, attrs)
            if len(page) < USERS_PAGE:
                break
        return None

    async def get_user(self, user_id: str) -> PlatformUser | None:
        """The active Datadog user with this UUID, or None when it is gone or disabled.

        The contract has no get-by-id for users and the list filter matches text, not ids,
        so this scans the active users page by page (``USERS_PAGE`` each, at most
        ``USER_SCAN_PAGES`` pages). Raises ``UsageError`` for a malformed id, and
        ``PlatformError`` when the organisation is too large to scan or a call fails:
        "could not tell" must never read as "gone".
        """
        uuid = self._require_uuid(user_id, verb=Verb.WHOAMI)
        for number in range(USER_SCAN_PAGES):
            page = await self._users_page({"filter[status]": "Active"}, number)
            for user in page:
                if str(user.get("id", "")).lower() != uuid:
                    continue
                attrs = as_dict(user.get("attributes"))
                if attrs.get("disabled") or attrs.get("status") not in (None, "Active"):
                    return None
                return platform_user(user, attrs)
            if len(page) < USERS_PAGE:
                return None
        raise PlatformError(
            Platform.DATADOG.value,
            f"could not confirm user {uuid}: more than {USERS_PAGE * USER_SCAN_PAGES} active users to scan",
        )

    async def _users_page(self, params: dict[str, str], number: int) -> list[dict[str, Any]]:
        """One page of ``GET /api/v2/users`` (pages start at 0, ``USERS_PAGE`` users each)."""
        response = await self._http.request(
            "GET",
            "/api/v2/users",
            operation="list_users",
            params={**params, "page[size]": USERS_PAGE, "page[number]": number},
        )
        body = json_or_none(response)
        data = body.get("data") if isinstance(body, dict) else None
        return [u for u in data if isinstance(u, dict)] if isinstance(data, list) else []

    async def check(self) -> str:
        """Prove the keys work with the cheapest findings read (one finding, no filter).

        Findings read is the permission every bot feature needs, so this checks the keys and
        that permission in one request. Raises ``PlatformAuthError`` ("403 — Forbidden …")
        for refused keys and other ``PlatformError`` subclasses for other failures.
        """
        await self._http.request("GET", "/api/v2/security/findings", operation="check", params={"page[limit]": 1})
        return f"Datadog ({self._site}): keys accepted, security findings readable"
