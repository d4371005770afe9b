"""Kibana and Elasticsearch on the wire: paths, alert fields, and the reading of their
answers (error bodies, alert sources, update-by-query failures, user profiles). Pure."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import httpx

from bot import rules
from bot.models import ItemState, Platform, PlatformUser, Target
from bot.platforms.http import json_or_none

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
# A concurrent write aborts update-by-query (no conflicts=proceed): Kibana answers 409.
CONFLICT = 409
# Kibana's 400 text for a closing reason neither default nor configured for the space.
INVALID_REASON = "is an invalid closing reason"
# Elasticsearch on Serverless: POST /_security/profile/_suggest exists but answers 410.
GONE = 410


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


def field(source: Mapping[str, Any], dotted: str) -> Any:
    """A field of an alert ``_source``, stored flat (``a.b.c``) or nested (``{a:{b:…}}``)."""
    if dotted in source:
        return source[dotted]
    head, _, rest = dotted.partition(".")
    while rest:
        inner = source.get(head)
        if isinstance(inner, Mapping):
            found = field(inner, rest)
            if found is not None:
                return found
        nxt, _, rest = rest.partition(".")
        head = f"{head}.{nxt}"
    return None


def as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return [str(v) for v in value if v]
    return [str(value)]


def alert_ids(batch: Sequence[Target]) -> list[str]:
    """The distinct alert ids of a batch, in order (a space holds each id once)."""
    return list(dict.fromkeys(t.id for t in batch))


def chunks(items: Sequence[Target], size: int) -> Iterator[list[Target]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def update_failures(data: Mapping[str, Any]) -> dict[str, str]:
    """Per-id reasons from an update-by-query ``failures`` list."""
    reasons: dict[str, str] = {}
    for failure in data.get("failures") or []:
        if isinstance(failure, Mapping):
            cause = failure.get("cause")
            reason = cause.get("reason") or cause.get("type") if isinstance(cause, Mapping) else None
            reasons[str(failure.get("id"))] = str(reason or failure.get("status") or "failed")
    return reasons


def profile_user(profile: Mapping[str, Any]) -> PlatformUser:
    raw = profile.get("user")
    user: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    return PlatformUser(
        platform=Platform.KIBANA,
        id=str(profile.get("uid")),
        email=user.get("email") or None,
        name=user.get("full_name") or user.get("username") or None,
        active=profile.get("enabled") is not False,
    )


def alert_state(target: Target, source: Mapping[str, Any], *, link: str) -> ItemState:
    """The ``ItemState`` of one alert from its ``_source``."""
    status = field(source, F_STATUS)
    severity = field(source, F_SEVERITY)
    return ItemState(
        target=target,
        title=str(field(source, F_RULE) or ""),
        severity=str(severity) if severity is not None else None,
        status=str(status) if status is not None else None,
        assignees=as_list(field(source, F_ASSIGNEES)),
        link=link,
    )
