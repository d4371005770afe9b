"""Platform clients, built from the settings; a platform without credentials is left out."""

from __future__ import annotations

from collections.abc import Mapping

from bot.models import Platform
from bot.platforms.base import PlatformClient
from bot.platforms.http import Limiter
from bot.platforms.oncall import ScheduleSource
from bot.settings import Settings


def build_clients(
    settings: Settings, *, limiters: Mapping[Platform, Limiter] | None = None
) -> dict[Platform, PlatformClient]:
    """One long-lived client per configured platform; ``limiters`` pace a tenant's requests
    together with other processes' (its rate limit is for all of them)."""
    from bot.platforms.datadog import DatadogClient
    from bot.platforms.kibana import KibanaClient
    from bot.platforms.xpanse import XpanseClient

    clients: dict[Platform, PlatformClient] = {}
    if (dd := settings.datadog) is not None:
        clients[Platform.DATADOG] = DatadogClient(dd)
    if (kb := settings.kibana) is not None:
        clients[Platform.KIBANA] = KibanaClient(kb)
    if (xp := settings.xpanse) is not None:
        clients[Platform.XPANSE] = XpanseClient(xp, limiter=(limiters or {}).get(Platform.XPANSE))
    return clients


def build_sources(settings: Settings) -> dict[str, ScheduleSource]:
    """One on-call schedule source per schedule API that has credentials (PagerDuty; Datadog keys)."""
    from bot.platforms.datadog.oncall import DatadogOnCall
    from bot.platforms.pagerduty import PagerDutySource

    sources: dict[str, ScheduleSource] = {}
    if (pd := settings.pagerduty) is not None:
        sources["pagerduty"] = PagerDutySource(pd)
    if (dd := settings.datadog) is not None:
        sources["datadog"] = DatadogOnCall(dd)
    return sources
