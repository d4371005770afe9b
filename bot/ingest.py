"""Alert ingestion: platform webhooks become alert cards in the routed Slack channel.

``POST /alerts/{datadog|kibana|xpanse}`` is authenticated either with
``Authorization: Bearer <TRIAGE_WEBHOOK_TOKEN>`` or with
``X-Triage-Signature: sha256=<hex HMAC-SHA256 of the raw body with TRIAGE_WEBHOOK_SECRET>``
(both compared in constant time). The body is the documented shape
``{"id", "title", "severity", "status", "link", "space"}``, a list of them,
or ``{"alerts": [...]}``; the field names the platforms' own webhook
templates produce (``_id``, ``kibana.alert.rule.name``, ``incident_id``,
``xdr_url``, ``alert_id`` …) are accepted as aliases.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from bot import rules
from bot.errors import UsageError
from bot.models import ItemState, Platform, Target
from bot.settings import Settings
from bot.targets import parse_target

SIGNATURE_HEADER = "X-Triage-Signature"

_ALIASES: dict[str, tuple[str, ...]] = {
    "id": ("id", "_id", "alert_id", "finding_id", "incident_id", "kibana.alert.uuid"),
    "title": ("title", "name", "rule_name", "kibana.alert.rule.name", "description", "event_title"),
    "severity": ("severity", "kibana.alert.severity", "manual_severity", "priority"),
    "status": ("status", "kibana.alert.workflow_status"),
    "link": ("link", "url", "xdr_url", "link_url"),
    "space": ("space", "space_id", "kibana.space_ids"),
}


class IncomingAlert(BaseModel):
    """One alert as the webhook documents it, after aliases are applied."""

    id: str = Field(min_length=1, max_length=512)
    title: str = Field(default="", max_length=2000)
    severity: str | None = Field(default=None, max_length=50)
    status: str | None = Field(default=None, max_length=50)
    link: str | None = Field(default=None, max_length=3000)
    space: str | None = Field(default=None, max_length=100)


def authenticate(settings: Settings, *, authorization: str | None, signature: str | None, body: bytes) -> bool:
    """True when the request carries the webhook token or a valid body signature."""
    token = settings.triage_webhook_token
    if token is not None and authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(
            value.strip().encode(), token.get_secret_value().encode()
        ):
            return True
    secret = settings.triage_webhook_secret
    if secret is not None and signature:
        expected = hmac.new(secret.get_secret_value().encode(), body, hashlib.sha256).hexdigest()
        given = signature.strip().removeprefix("sha256=")
        return hmac.compare_digest(given.encode(), expected.encode())
    return False


def _pick(raw: dict[str, Any], field: str) -> Any:
    for name in _ALIASES[field]:
        value = raw.get(name)
        if value in (None, ""):
            # Kibana templates may nest "kibana.alert.rule.name" as kibana → alert → rule → name.
            node: Any = raw
            for part in name.split("."):
                node = node.get(part) if isinstance(node, dict) else None
            value = node
        if value not in (None, ""):
            if isinstance(value, list):
                value = value[0] if value else None
            return str(value) if value is not None else None
    return None


def parse_alerts(platform: Platform, payload: Any) -> list[IncomingAlert]:
    """The alerts in a webhook body; ``UsageError`` says exactly what is wrong with it."""
    if isinstance(payload, dict) and isinstance(payload.get("alerts"), list):
        payload = payload["alerts"]
    items = payload if isinstance(payload, list) else [payload]
    if not items:
        raise UsageError("the body holds no alerts")
    if len(items) > 50:
        raise UsageError(f"at most 50 alerts per request, got {len(items)}")
    alerts: list[IncomingAlert] = []
    for n, raw in enumerate(items):
        if not isinstance(raw, dict):
            raise UsageError(f"alert #{n + 1} is not a JSON object")
        data = {f: _pick(raw, f) for f in _ALIASES}
        if not data["id"]:
            raise UsageError(f"alert #{n + 1} has no id (expected one of: {', '.join(_ALIASES['id'])})")
        try:
            alerts.append(IncomingAlert.model_validate({k: v for k, v in data.items() if v is not None}))
        except ValidationError as exc:
            first = exc.errors()[0]
            raise UsageError(f"alert #{n + 1}: {first['loc'][0]}: {first['msg']}") from None
        if platform is Platform.XPANSE:
            try:
                rules.normalise_xpanse_incident_id(alerts[-1].id)
            except UsageError:
                raise UsageError(f"alert #{n + 1}: an Xpanse incident id is a number, got {alerts[-1].id!r}") from None
        # The card's buttons carry the target as text; refuse what could not be read back.
        key = Target(platform=platform, id=alerts[-1].id, space=alerts[-1].space).key
        try:
            parse_target(key, default_space=None)
        except UsageError as exc:
            raise UsageError(f"alert #{n + 1}: {exc.message}") from None
    return alerts


def to_state(platform: Platform, alert: IncomingAlert, *, default_space: str) -> ItemState:
    """The card state of one incoming alert (a Kibana alert keeps its space unless it is the default)."""
    space = alert.space if platform is Platform.KIBANA and alert.space != default_space else None
    return ItemState(
        target=Target(platform=platform, id=alert.id, space=space),
        title=alert.title or f"{platform.label} alert {alert.id}",
        severity=alert.severity,
        status=alert.status or "open",
        link=alert.link,
    )


def route(settings: Settings, platform: Platform, severity: str | None) -> str | None:
    """The channel for an alert: platform:severity, then platform, then the default channel."""
    routes = {k.lower(): v for k, v in settings.triage_alert_routes.items()}
    if severity and f"{platform.value}:{severity.lower()}" in routes:
        return routes[f"{platform.value}:{severity.lower()}"]
    return routes.get(platform.value) or settings.triage_alert_channel
