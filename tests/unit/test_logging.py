"""Structured logging: secrets never reach the output, whatever path they take."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import httpx
import pytest
import structlog
from aiohttp import web

from bot.logging import (
    REDACTED,
    Redactor,
    bind_request,
    clear_request,
    configure_logging,
    request_context,
    secret_values,
)
from bot.settings import Settings

SLACK_BOT = "xoxb-1111111111-2222222222-AbCdEfGhIjKlMnOpQrStUvWx"
SIGNING = "8f742231b10e8888abcd99yyyzzz85a5"
DD_API = "0123456789abcdef0123456789abcdef"
DD_APP = "fedcba9876543210fedcba9876543210fedcba98"
KIBANA = "VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw=="
XPANSE = "Xp4nse+Key/With=Odd&Chars"
SECRETS = [SLACK_BOT, SIGNING, DD_API, DD_APP, KIBANA, XPANSE]
# Never configured: must be caught by shape (Slack token pattern, header names).
UNCONFIGURED_TOKEN = "xoxp-9999999999-8888888888-ZyXwVuTsRqPoNmLk"
UNCONFIGURED_HEADER = "hdr-only-0a1b2c3d4e5f"
NEVER = [*SECRETS, UNCONFIGURED_TOKEN, UNCONFIGURED_HEADER]


class TtyStringIO(io.StringIO):
    """A string buffer that claims to be a terminal, to drive fmt="auto"."""

    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Undo configure_logging's global changes so other tests see the defaults."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    quiet = {n: logging.getLogger(n).level for n in ("httpcore", "hpack", "aiosqlite", "asyncio")}
    yield
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
    for name, lvl in quiet.items():
        logging.getLogger(name).setLevel(lvl)
    clear_request()
    structlog.reset_defaults()


def emit_everything() -> None:
    """Log every kind of event that could carry a secret, at DEBUG and above."""
    log = structlog.get_logger("bot.test")
    with request_context(request_id="req-42", job_id="job-7", token=SLACK_BOT):
        log.debug("plain_value", dd_api_key_value=DD_API, note="nothing secret here")
        log.debug("nested", payload={"outer": [{"inner": ("x", f"key={DD_APP}")}], "n": 1})
        log.debug(f"formatted event with {KIBANA} inside")
        log.debug("header_dict", headers={"DD-API-KEY": UNCONFIGURED_HEADER, "Accept": "json"})
        log.info("header_text", detail=f"sent Authorization: Bearer {UNCONFIGURED_HEADER} ok")
        log.info("slack_token_by_shape", text=f"token was {UNCONFIGURED_TOKEN}")
        try:
            raise RuntimeError(f"Xpanse refused key {XPANSE} and {SIGNING}")
        except RuntimeError:
            log.exception("traceback_structlog")
        httpx_log = logging.getLogger("httpx")
        httpx_log.info(
            'HTTP Request: %s %s "%s %d %s"',
            "GET", f"https://api.datadoghq.com/api/v2/x?api_key={DD_API}", "HTTP/1.1", 200, "OK",
        )  # fmt: skip
        std = logging.getLogger("slack_sdk.web.async_base_client")
        std.debug("Sending a request - headers: {'Authorization': 'Bearer %s'}", SLACK_BOT)
        try:
            raise ValueError(f"bad signing secret {SIGNING}")
        except ValueError:
            std.error("traceback_stdlib", exc_info=True)


def assert_clean(output: str) -> None:
    for secret in NEVER:
        assert secret not in output, f"secret {secret[:6]}… leaked"
    assert REDACTED in output


EXPECTED_EVENTS = [
    "plain_value",
    "nested",
    "formatted event with",
    "header_dict",
    "header_text",
    "slack_token_by_shape",
    "traceback_structlog",
    "HTTP Request: GET https://api.datadoghq.com/api/v2/x?api_key=",
    "Sending a request",
    "traceback_stdlib",
]


def test_json_output_redacts_every_secret_and_keeps_the_rest() -> None:
    """JSON lines redact secrets in values, nesting, f-strings, tracebacks and stdlib logs."""
    out = io.StringIO()
    configure_logging(level="debug", fmt="json", secrets=SECRETS, stream=out)
    emit_everything()
    text = out.getvalue()
    assert_clean(text)
    lines = [json.loads(line) for line in text.splitlines()]
    events = [line["event"] for line in lines]
    for expected in EXPECTED_EVENTS:
        assert any(e.startswith(expected) for e in events), f"{expected!r} was not logged"
    by_event = {line["event"].split(" ")[0]: line for line in lines}
    assert by_event["plain_value"]["dd_api_key_value"] == REDACTED
    assert by_event["plain_value"]["note"] == "nothing secret here"
    assert by_event["nested"]["payload"] == {"outer": [{"inner": ["x", f"key={REDACTED}"]}], "n": 1}
    assert by_event["header_dict"]["headers"] == {"DD-API-KEY": REDACTED, "Accept": "json"}
    assert by_event["formatted"]["event"] == f"formatted event with {REDACTED} inside"
    assert f"Xpanse refused key {REDACTED} and {REDACTED}" in by_event["traceback_structlog"]["exception"]
    assert "ValueError: bad signing secret [redacted]" in by_event["traceback_stdlib"]["exception"]
    # Context variables reach library lines too, and are themselves redacted.
    httpx_line = next(line for line in lines if line["logger"] == "httpx")
    assert httpx_line["level"] == "info"
    assert (httpx_line["request_id"], httpx_line["job_id"], httpx_line["token"]) == (
        "req-42", "job-7", REDACTED,
    )  # fmt: skip


def test_console_output_redacts_every_secret() -> None:
    """The human-readable renderer gets the same redaction, tracebacks included."""
    out = io.StringIO()
    configure_logging(level="debug", fmt="console", secrets=SECRETS, stream=out)
    emit_everything()
    text = out.getvalue()
    assert_clean(text)
    for expected in EXPECTED_EVENTS:
        assert expected in text, f"{expected!r} was not logged"
    assert "Traceback (most recent call last)" in text
    assert not text.lstrip().startswith("{")


def test_auto_format_is_console_on_a_tty_and_json_otherwise() -> None:
    """fmt="auto" renders coloured console lines on a TTY, JSON lines elsewhere, both redacted."""
    tty = TtyStringIO()
    configure_logging(level="debug", fmt="auto", secrets=SECRETS, stream=tty)
    emit_everything()
    assert "\x1b[" in tty.getvalue()  # ANSI colours: the console renderer
    assert_clean(tty.getvalue())
    pipe = io.StringIO()
    configure_logging(level="debug", fmt="auto", secrets=SECRETS, stream=pipe)
    emit_everything()
    assert all(json.loads(line) for line in pipe.getvalue().splitlines())
    assert_clean(pipe.getvalue())
    # Reconfiguring replaced the handler: nothing more went to the first stream.
    before = tty.getvalue()
    structlog.get_logger("bot.test").info("after_reconfigure")
    assert tty.getvalue() == before


def test_level_filters_structlog_and_stdlib_alike() -> None:
    """At info level, debug lines from structlog and stdlib loggers are dropped."""
    out = io.StringIO()
    configure_logging(level="info", fmt="json", stream=out)
    structlog.get_logger("bot.test").debug("hidden_structlog")
    logging.getLogger("httpx").debug("hidden_stdlib")
    structlog.get_logger("bot.test").info("shown")
    events = [json.loads(line)["event"] for line in out.getvalue().splitlines()]
    assert events == ["shown"]


def test_bind_request_generates_an_id_and_clear_forgets_it() -> None:
    """bind_request binds a generated request_id (returned) to later lines until cleared."""
    out = io.StringIO()
    configure_logging(level="info", fmt="json", stream=out)
    rid = bind_request(job_id="job-1")
    structlog.get_logger("bot.test").info("bound")
    clear_request()
    structlog.get_logger("bot.test").info("unbound")
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert len(rid) == 12 and first["request_id"] == rid and first["job_id"] == "job-1"
    assert "request_id" not in second and "job_id" not in second


def test_invalid_level_or_format_is_refused() -> None:
    """An unknown level or format raises ValueError naming it."""
    with pytest.raises(ValueError, match="unknown log level 'loud'"):
        configure_logging(level="loud")
    with pytest.raises(ValueError, match="unknown log format 'xml'"):
        configure_logging(fmt="xml")  # type: ignore[arg-type]


async def test_real_httpx_request_lines_are_redacted() -> None:
    """httpx's own INFO line for a real local request has the secret query value redacted."""

    async def ok(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/api/v2/items", ok)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    out = io.StringIO()
    configure_logging(level="debug", fmt="json", secrets=SECRETS, stream=out)
    try:
        async with httpx.AsyncClient(timeout=2) as client:
            resp = await client.get(
                f"http://127.0.0.1:{port}/api/v2/items",
                params={"api_key": DD_API, "filter": "open"},
                headers={"DD-APPLICATION-KEY": DD_APP},
            )
        assert resp.status_code == 200
    finally:
        await runner.cleanup()
    text = out.getvalue()
    assert_clean(text)
    [line] = [json.loads(x) for x in text.splitlines() if json.loads(x)["logger"] == "httpx"]
    assert line["event"].startswith(
        f"HTTP Request: GET http://127.0.0.1:{port}/api/v2/items?api_key={REDACTED}&filter=open"
    )


def test_secret_values_collects_every_secret_field_of_the_settings() -> None:
    """secret_values finds every SecretStr value of Settings and no plain value."""
    secret_fields = {
        "slack_bot_token": SLACK_BOT,
        "slack_signing_secret": SIGNING,
        "slack_app_token": "xapp-1-A111-222-abcdef",
        "dd_api_key": DD_API,
        "dd_app_key": DD_APP,
        "kibana_api_key": KIBANA,
        "elasticsearch_api_key": "es-key-value-1234",
        "xpanse_api_key": XPANSE,
        "triage_webhook_token": "webhook-token-5678",
        "triage_webhook_secret": "webhook-secret-9012",
    }
    settings = Settings(
        _env_file=None,
        kibana_url="https://kibana.example.com",
        elasticsearch_url="https://es.example.com",
        xpanse_api_url="https://api.xpanse.example.com",
        xpanse_api_key_id="42",
        **secret_fields,  # type: ignore[arg-type]
    )
    found = secret_values(settings)
    assert set(secret_fields.values()) <= set(found)
    assert "https://kibana.example.com" not in found and "42" not in found
    assert len(found) == len(set(found))


def test_redactor_is_idempotent_and_ignores_too_short_secrets() -> None:
    """Redacting twice changes nothing more, and 1-3 character 'secrets' do not shred text."""
    redactor = Redactor([DD_API, "ab"])
    once = redactor.redact_text(f"GET /x?api_key={DD_API}&y=abc Authorization: Bearer t0k3n")
    assert once == "GET /x?api_key=[redacted]&y=abc Authorization: Bearer [redacted]"
    assert redactor.redact_text(once) == once


def test_a_database_url_password_is_a_secret_value() -> None:
    """TRIAGE_DB's password (as written and percent-decoded) is redacted like any secret; the URL's other parts stay."""
    settings = Settings(_env_file=None, triage_db="postgresql://triage:pa%40ss-word-77@db.internal:5432/triage")
    found = secret_values(settings)
    assert "pa%40ss-word-77" in found and "pa@ss-word-77" in found
    assert not any("db.internal" in value for value in found)
    assert len(found) == len(set(found))
