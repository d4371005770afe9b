"""The HTTP server: Slack events (HTTP mode), alert webhooks, health, readiness and metrics.

One aiohttp application serves every route in both modes; in Socket Mode the
Slack traffic arrives over the WebSocket instead and ``/slack/events`` is
simply not mounted.
"""

from __future__ import annotations

import contextvars
import hashlib
import hmac
import json
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from bot.app import hot_routes
from bot.core.service import ActionRequest, Source
from bot.errors import UsageError
from bot.ingest import SIGNATURE_HEADER, authenticate, parse_alerts, route, to_state
from bot.metrics import REGISTRY, SLACK_ACK_LATENCY, SLACK_REJECTED
from bot.models import Platform, Verb
from bot.runtime import Services
from bot.slack.inbound import Inbound, Kind, Unusable, read
from bot.store.intake import Accepted

log = structlog.get_logger(__name__)

SERVICES_KEY = web.AppKey("services", Services)

# Slack's payloads are far smaller (a block_actions payload carries one message of at most
# 50 blocks); a bigger body is refused before its signature is even computed.
SLACK_BODY_MAX = 1024 * 1024
SIGNATURE_MAX_AGE = 60 * 5  # seconds, as Slack's SDKs check


# True while ``slack_events`` dispatches to Bolt (Socket Mode keeps Bolt's own warnings).
_HTTP_DISPATCH: contextvars.ContextVar[bool] = contextvars.ContextVar("http_dispatch", default=False)


class _DropBoltUnhandled(logging.Filter):
    """Bolt's multi-line "Unhandled request" warning on HTTP: ``slack_events`` logs its own one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (_HTTP_DISPATCH.get() and str(record.msg).startswith("Unhandled request"))


_BOLT_LOGGER = logging.getLogger("slack_bolt.AsyncApp")
if not any(isinstance(f, _DropBoltUnhandled) for f in _BOLT_LOGGER.filters):
    _BOLT_LOGGER.addFilter(_DropBoltUnhandled())


def _signed(secret: bytes | None, body: bytes, request: web.Request) -> bool:
    """Whether Slack signed ``body``: v0 HMAC-SHA256 over ``v0:<timestamp>:<raw body bytes>``
    with a timestamp within five minutes. Computed over the bytes as received, so a body
    that is not UTF-8 can still be recognised as signed (and then refused as unusable)."""
    stamp = request.headers.get("X-Slack-Request-Timestamp", "")
    signature = request.headers.get("X-Slack-Signature", "")
    if secret is None or not stamp.isdigit() or abs(time.time() - int(stamp)) > SIGNATURE_MAX_AGE:
        return False
    expected = "v0=" + hmac.new(secret, b"v0:" + stamp.encode() + b":" + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)


class _ParsedBoltRequest(AsyncBoltRequest):
    """A Bolt request for a body ``bot.slack.inbound.read`` has already checked and parsed.

    ``AsyncBoltRequest`` parses the text of an HTTP request itself; handed the parsed body
    (as Bolt's Socket Mode adapter hands it a payload) it builds the request's context from
    that, so no body is parsed twice. The raw text is kept and the mode is HTTP, as for a
    request Bolt parsed itself.
    """

    def __init__(self, inbound: Inbound, *, query: str, headers: dict[str, str]) -> None:
        super().__init__(body=inbound.body, query=query, headers=headers, mode="socket_mode")  # type: ignore[arg-type]
        self.raw_body = inbound.text
        self.mode = "http"


_CHARSET = re.compile(r";\s*charset=utf-8")


async def _response(bolt_response: BoltResponse) -> web.Response:
    """Bolt's answer as aiohttp's, as ``to_aiohttp_response`` makes it; built here when it carries
    nothing but a content type (every acknowledgement), which skips the adapter's cookie handling."""
    headers = bolt_response.headers
    if headers.keys() - {"content-type"}:
        return await to_aiohttp_response(bolt_response)
    body = bolt_response.body
    found = headers.get("content-type")
    content_type = found[0] if found else "application/json" if body.startswith("{") else "text/plain"
    return web.Response(status=bolt_response.status, body=body, content_type=_CHARSET.sub("", content_type))


def _unusable(kind: Kind, reason: str, detail: str, *, status: int = 400) -> web.Response:
    """The answer to a signed request the bot cannot use: counted, one warning line, a 4xx."""
    SLACK_REJECTED.labels(kind, reason).inc()
    log.warning("slack_request_unusable", kind=kind, reason=reason, detail=detail[:300], status=status)
    return web.json_response({"error": f"unusable {kind} request: {reason}"}, status=status)


async def read_limited(request: web.Request, limit: int) -> bytes | None:
    """The whole request body, or None once it exceeds ``limit`` bytes.

    ``StreamReader.read(n)`` returns whatever has arrived, which may be less than the
    body, so read until EOF (a chunked body has no Content-Length to trust).
    """
    body = bytearray()
    while True:
        chunk = await request.content.read(limit + 1 - len(body))
        if not chunk:
            return bytes(body)
        body += chunk
        if len(body) > limit:
            return None


class IngestRefused(Exception):
    """An authenticated webhook body the bot cannot accept: the HTTP status and the reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


async def ingest(
    services: Services, platform: Platform, body: bytes, *, default_channel: str | None = None
) -> list[Accepted]:
    """Parse, route and store one authenticated webhook body; raises ``IngestRefused``.

    Every alert is routed before any is stored, so a misrouted batch stores nothing.
    Stored (deduplicated on platform + id + space) means accepted: from here on nothing
    Slack does can lose it, and the channel's poster posts it at Slack's pace.
    """
    settings = services.settings
    try:
        parsed = parse_alerts(platform, json.loads(body))
    except UsageError as exc:
        raise IngestRefused(400, exc.message) from None
    except ValueError as exc:
        raise IngestRefused(400, f"body is not valid JSON: {exc}") from None
    routed = [(alert, route(settings, platform, alert.severity) or default_channel) for alert in parsed]
    if any(channel is None for _, channel in routed):
        raise IngestRefused(503, "no channel: set TRIAGE_ALERT_CHANNEL or TRIAGE_ALERT_ROUTES")
    states = [(to_state(platform, alert, default_space=settings.kibana_space), str(ch)) for alert, ch in routed]
    # Through the one door, as every request: the webhook edge may only show (post cards).
    await services.core.handle(
        ActionRequest(
            verb=Verb.SHOW,
            team_id="",
            actor_id="webhook",
            targets=[state.target for state, _ in states],
            source=Source.WEBHOOK,
        )
    )
    accepted = await services.intake.accept(states)
    services.poster.wake()
    return accepted


def build_web_app(
    services: Services,
    *,
    bolt: AsyncApp | None,
    socket_connected: Callable[[], Awaitable[bool]] | None = None,
    job_runners: Callable[[], dict[str, bool]] | None = None,
) -> web.Application:
    """The aiohttp application; ``bolt`` is mounted at ``/slack/events`` in HTTP mode.

    ``job_runners`` names what runs this process's jobs for ``/readyz`` (a worker child
    process, or nothing in the web role); by default the in-process worker pool.
    """
    settings = services.settings
    app = web.Application(client_max_size=max(settings.triage_webhook_max_bytes, 1024 * 1024))
    app[SERVICES_KEY] = services

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        checks: dict[str, bool] = {}
        checks["store"] = await services.store.ping()
        if job_runners is not None:  # jobs and alert posting run in another process (its readiness is here)
            checks |= job_runners()
        else:
            checks |= {"workers": services.workers.running, "poster": services.poster.running}
        if socket_connected is not None:
            checks["slack_socket"] = await socket_connected()
        ready = all(checks.values())
        body: dict[str, object] = {"ready": ready, "checks": checks}
        if services.oncall.status:  # the schedule sources' last poll: detail, not readiness
            body["detail"] = {"oncall": dict(services.oncall.status)}
        return web.json_response(body, status=200 if ready else 503)

    async def metrics(_: web.Request) -> web.Response:
        await services.workers.update_metrics()
        await services.poster.update_metrics()
        body = generate_latest(REGISTRY)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def alerts(request: web.Request) -> web.Response:
        name = request.match_info["platform"]
        try:
            platform = Platform(name)
        except ValueError:
            return web.json_response({"error": f"unknown platform {name!r}"}, status=404)
        limit = settings.triage_webhook_max_bytes
        too_large = web.json_response({"error": f"body too large (limit {limit} bytes)"}, status=413)
        if request.content_length and request.content_length > limit:
            return too_large
        body = await read_limited(request, limit)
        if body is None:
            return too_large
        if not authenticate(
            settings,
            authorization=request.headers.get("Authorization"),
            signature=request.headers.get(SIGNATURE_HEADER),
            body=body,
        ):
            return web.json_response({"error": "unauthorized"}, status=401)
        try:
            accepted = await ingest(services, platform, body)
        except IngestRefused as exc:
            return web.json_response({"error": exc.reason}, status=exc.status)
        return web.json_response(
            {"accepted": [{"id": a.target.id, "channel": a.channel, "outcome": a.outcome} for a in accepted]},
            status=202,
        )

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_post("/alerts/{platform}", alerts)

    if bolt is not None:
        signing = settings.slack_signing_secret
        secret = signing.get_secret_value().encode() if signing else None
        hot = hot_routes(bolt)
        ack_latency = SLACK_ACK_LATENCY.labels("http")

        async def slack_events(request: web.Request) -> web.Response:
            """Verify, check the shape, then answer (a hot request) or hand to Bolt; nothing signed is a 500.

            Unsigned or badly signed: 401, as Bolt answers. Signed but unusable (not UTF-8,
            not JSON, not an object, an unknown type, a field of the wrong type, a request no
            listener takes, or one Bolt itself cannot read): a 4xx, one warning line without
            a traceback and ``triage_slack_requests_rejected_total`` counted.
            """
            started = time.perf_counter()
            structlog.contextvars.bind_contextvars(request_id=secrets.token_hex(6))
            try:
                length = request.content_length
                if length is not None and length <= SLACK_BODY_MAX:  # aiohttp reads exactly that many bytes
                    body: bytes | None = await request.read()
                else:
                    body = await read_limited(request, SLACK_BODY_MAX)
                if body is None:
                    return web.json_response({"error": "body too large"}, status=413)
                if not _signed(secret, body, request):
                    return web.json_response({"error": "invalid request"}, status=401)
                try:
                    inbound = read(body, request.content_type)
                except Unusable as exc:
                    return _unusable(exc.kind, exc.reason, exc.detail)
                kind = inbound.kind
                try:
                    # /triage and the job buttons skip Bolt's dispatch (bot.slack.hot); the rest is Bolt's.
                    if hot is not None and (hot_response := await hot.answer(inbound.body)) is not None:
                        return await _response(hot_response)
                    bolt_request = _ParsedBoltRequest(
                        inbound,
                        query=request.query_string,
                        headers=request.headers,  # type: ignore[arg-type]
                    )
                    token = _HTTP_DISPATCH.set(True)
                    try:
                        bolt_response = await bolt.async_dispatch(bolt_request)
                    finally:
                        _HTTP_DISPATCH.reset(token)
                except Exception as exc:  # Bolt's own parsing; listener errors never get here (both answer those)
                    return _unusable(kind, "bolt_error", f"{type(exc).__name__}: {exc}")
                if bolt_response.status == 404:
                    return _unusable(kind, "unhandled", "no listener takes this request", status=404)
                return await _response(bolt_response)
            finally:
                ack_latency.observe(time.perf_counter() - started)
                structlog.contextvars.unbind_contextvars("request_id")

        app.router.add_post("/slack/events", slack_events)
    return app
