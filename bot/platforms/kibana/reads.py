"""Reading Kibana alerts (per space) and Elasticsearch user profiles; the base of the client."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import structlog

from bot import permissions, rules
from bot.errors import ConfigError, NotMappedError, PlatformError, PlatformNotFound, UsageError
from bot.models import ItemState, Platform, PlatformUser, Target
from bot.platforms.base import BasePlatformClient
from bot.platforms.http import PlatformHttp, json_or_none
from bot.platforms.kibana.wire import (
    API_VERSION,
    F_ASSIGNEES,
    F_STATUS,
    F_UUID,
    GONE,
    MAX_BATCH,
    OPEN_STATUSES,
    SEARCH_PATH,
    SOURCE_FIELDS,
    alert_state,
    chunks,
    field,
    parse_error,
    profile_user,
)
from bot.settings import KibanaConfig

log = structlog.get_logger(__name__)

SERVERLESS_NO_SUGGEST = (
    "Elasticsearch has no profile suggestions here (Kibana Serverless answers 410 to "
    "_security/profile/_suggest), so no Kibana profile can be found for {email}: on Serverless "
    "Kibana identities come only from explicit mappings; an admin can map the user with "
    f"`/triage map <@user> kibana={rules.IDENTITY_EXAMPLE[Platform.KIBANA]}`"
)


class KibanaReader(BasePlatformClient):
    """Detection alerts over Kibana's Security Detections API, per space: validation and reads."""

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
            permissions=permissions.KIBANA,
        )
        self._es: PlatformHttp | None = None
        if config.es_url and config.es_api_key:
            self._es = PlatformHttp(
                platform="Elasticsearch",
                base_url=config.es_url.rstrip("/"),
                policy=config.http,
                headers={"Authorization": f"ApiKey {config.es_api_key.get_secret_value()}"},
                error_parser=parse_error,
                permissions=permissions.ELASTICSEARCH,
            )
        # Set once _suggest answered 410 (Serverless): look-ups by email are explicit only.
        self._no_suggest = False

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

    async def _fetch_space(self, space: str, targets: Sequence[Target]) -> dict[Target, ItemState]:
        found: dict[Target, ItemState] = {}
        for batch in chunks(targets, self.batch_size):
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
                    found[target] = alert_state(target, hit.get("_source") or {}, link=self.link(space, target.id))
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
                    items.append(alert_state(target, hit.get("_source") or {}, link=self.link(space, target.id)))
                if len(hits) < size:
                    break
                last = str(field(hits[-1].get("_source") or {}, F_UUID) or hits[-1].get("_id"))
            if len(items) >= limit:
                break
        return items[:limit]

    # ---- identities -----------------------------------------------------------------

    async def find_user_by_email(self, email: str) -> PlatformUser | None:
        """The enabled profile whose ``user.email`` is ``email`` (case-insensitive), via ES.

        Returns ``None`` when Elasticsearch is not configured or nothing matches exactly;
        raises ``UsageError`` for a malformed email and ``PlatformError`` when ES fails.
        """
        rules.normalise_email(email)
        wanted = email.strip()
        if self._es is None:
            return None
        if self._no_suggest:
            raise NotMappedError(SERVERLESS_NO_SUGGEST.format(email=wanted))
        try:
            response = await self._es.request(
                "POST",
                "/_security/profile/_suggest",
                operation="es.profile_suggest",
                json={"name": wanted, "size": 5},
            )
        except PlatformError as exc:
            if exc.status != GONE:
                raise
            # Serverless: the route exists but is not available (recorded 410). Remembered,
            # so later look-ups go straight to the explicit mappings.
            log.warning("kibana_profile_suggest_gone", reason=exc.reason)
            self._no_suggest = True
            raise NotMappedError(SERVERLESS_NO_SUGGEST.format(email=wanted)) from exc
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
                return profile_user(profile)
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
        except PlatformError as exc:
            if exc.status != GONE:
                raise
            # Not available (Serverless): as without Elasticsearch, the uid stands unverified.
            return PlatformUser(platform=Platform.KIBANA, id=uid)
        data = json_or_none(response)
        profiles = data.get("profiles") if isinstance(data, dict) else None
        for profile in profiles or []:
            if isinstance(profile, Mapping) and profile.get("uid") == uid:
                return profile_user(profile)
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
