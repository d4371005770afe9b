"""Structured logging: structlog for our code and stdlib loggers alike, with secrets redacted.

``configure_logging`` installs one root handler whose ``ProcessorFormatter`` renders
every record, ours (``structlog.get_logger(__name__)``) and libraries' (slack_bolt,
slack_sdk, httpx, aiohttp …), as JSON lines or readable console lines. Just before
rendering, and once more on the rendered text, a ``Redactor`` replaces

* every configured secret value (``secret_values(settings)``: each ``SecretStr`` of the
  settings), in any value, nested container or formatted traceback;
* anything shaped like a Slack token (``xoxb-…``, ``xoxp-…``, ``xapp-…`` …);
* the value after a credential-bearing header or parameter name (``Authorization``,
  ``DD-API-KEY``, ``DD-APPLICATION-KEY``, ``x-xdr-auth-id``, ``api_key=`` …) and the
  password of a ``user:password@`` URL

with ``[redacted]``. The second pass on the rendered text catches objects whose
``repr`` only exists at render time (exceptions, custom objects).

``request_id`` and ``job_id`` travel in ``structlog.contextvars``: ``bind_request``
or ``request_context`` bind them and every line logged in that context, library lines
included, carries them.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import IO, Any, Final, Literal
from urllib.parse import quote, unquote, urlsplit

import structlog
from pydantic import BaseModel, SecretBytes, SecretStr
from structlog.typing import EventDict, Processor, WrappedLogger

REDACTED: Final = "[redacted]"
# A "secret" shorter than this would redact ordinary words from every line; no real
# token, key or signing secret is this short.
MIN_SECRET_LENGTH: Final = 4
LogFormat = Literal["auto", "json", "console"]

_LEVELS: Final = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
                  "error": logging.ERROR, "critical": logging.CRITICAL}  # fmt: skip
# Chatty at DEBUG (every socket event / every SQL statement) and never carry anything
# we need: keep them at INFO at least even when the bot logs at DEBUG.
_QUIET_LOGGERS: Final = ("httpcore", "hpack", "aiosqlite", "asyncio")

# Slack tokens: bot/user/app/config tokens, incl. rotating "xoxe.xoxp-…" ones.
_SLACK_TOKEN = re.compile(r"\bxox[a-z](?:\.xox[a-z])?-[A-Za-z0-9-]+|\bxapp-[A-Za-z0-9-]+")
# Credential-bearing header / parameter names; lower case, for the dict-key check too.
_SENSITIVE_NAMES: Final = (
    "authorization", "proxy-authorization", "dd-api-key", "dd-application-key",
    "x-xdr-auth-id", "x-api-key", "api-key", "api_key", "apikey", "application-key",
    "application_key", "x-slack-signature", "cookie", "set-cookie", "access_token",
    "refresh_token", "client_secret", "signing_secret",
)  # fmt: skip
# "<name>" then ":", "=" or a quoted "," (a header tuple's repr), optional quotes/b'', an optional
# auth scheme, then the value up to a delimiter.
_SENSITIVE_PAIR = re.compile(
    r"(?P<prefix>(?<![A-Za-z0-9])(?:"
    + "|".join(re.escape(n) for n in sorted(_SENSITIVE_NAMES, key=len, reverse=True))
    + r")(?![A-Za-z0-9_-])(?:[\"']?\s*[:=]|[\"']\s*,)\s*(?:(?-i:b)?[\"'])?"
    # Possessive: once a scheme word is seen it stays in the prefix, so a second pass
    # does not take the scheme itself for the value.
    r"(?:(?:bearer|basic|apikey|token|digest)\s+)?+)"
    # Not again over an earlier "[redacted]": redaction runs twice and must be idempotent.
    r"(?!\[redacted\])(?P<value>[^\s\"',;&}\])>]+)",
    re.IGNORECASE,
)
# https://user:password@host
_URL_PASSWORD = re.compile(
    r"(?P<prefix>\b[a-z][a-z0-9+.-]*://[^/\s:@]+:)(?!\[redacted\])(?P<value>[^@\s/]+)(?=@)", re.I
)


class Redactor:
    """Replaces secrets in log events and rendered lines with ``[redacted]``.

    Used as a structlog processor (it redacts the event dict in place and returns it)
    and, through ``wrap``, around a renderer to redact its output. Never raises on
    odd values: anything it does not understand is left to the output pass.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        literals: set[str] = set()
        for secret in secrets:
            if not secret or len(secret) < MIN_SECRET_LENGTH:
                continue
            # The value as given, URL-encoded (query strings) and JSON-escaped (rendered lines).
            literals.update({secret, quote(secret, safe=""), json.dumps(secret)[1:-1]})
        # Longest first so that a secret containing another is redacted whole.
        ordered = sorted(literals, key=len, reverse=True)
        self._literals = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def redact_text(self, text: str) -> str:
        """Return ``text`` with every configured secret and credential-shaped value redacted."""
        if self._literals is not None:
            text = self._literals.sub(REDACTED, text)
        text = _SLACK_TOKEN.sub(REDACTED, text)
        text = _SENSITIVE_PAIR.sub(lambda m: m["prefix"] + REDACTED, text)
        return _URL_PASSWORD.sub(lambda m: m["prefix"] + REDACTED, text)

    def redact(self, value: Any, _depth: int = 0) -> Any:
        """Return ``value`` with strings redacted throughout nested dicts, lists, tuples and sets.

        A dict entry whose key names a credential (``Authorization``, ``DD-API-KEY`` …)
        loses its whole value. Other objects are returned as they are.
        """
        if isinstance(value, str):
            return self.redact_text(value)
        if _depth > 32:  # a cycle or absurd nesting: the output pass still applies
            return value
        if isinstance(value, Mapping):
            out = {}
            for key, item in value.items():
                if isinstance(key, str) and key.lower() in _SENSITIVE_NAMES and item:
                    out[self.redact(key, _depth + 1)] = REDACTED
                else:
                    out[self.redact(key, _depth + 1)] = self.redact(item, _depth + 1)
            return out
        if isinstance(value, (list, tuple, set, frozenset)):
            items = [self.redact(v, _depth + 1) for v in value]
            return items if isinstance(value, list) else type(value)(items)
        if isinstance(value, (SecretStr, SecretBytes)):
            return REDACTED
        if isinstance(value, bytes):
            return self.redact_text(value.decode("utf-8", "backslashreplace"))
        return value

    def __call__(self, logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
        """Processor: redact every key and value of the event dict."""
        for key in list(event_dict):
            if key in ("_record", "_from_structlog"):  # ProcessorFormatter's own bookkeeping
                continue
            value = event_dict[key]
            if key.lower() in _SENSITIVE_NAMES and value:
                event_dict[key] = REDACTED
            else:
                event_dict[key] = self.redact(value)
        return event_dict

    def wrap(self, renderer: Callable[..., Any]) -> Processor:
        """Return ``renderer`` followed by a redaction of the text it renders."""

        def render(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> str:
            out = renderer(logger, method_name, event_dict)
            return self.redact_text(out if isinstance(out, str) else out.decode("utf-8"))

        return render


def secret_values(settings: BaseModel) -> list[str]:
    """Every non-empty ``SecretStr``/``SecretBytes`` value in ``settings`` (nested models too).

    Walks the model's declared fields rather than a list of names, so a secret added
    to the settings later is redacted without touching this module. Never raises.
    """
    found: list[str] = []

    def walk(value: Any, depth: int) -> None:
        if depth > 16:
            return
        if isinstance(value, SecretStr):
            found.append(value.get_secret_value())
        elif isinstance(value, SecretBytes):
            found.append(value.get_secret_value().decode("utf-8", "replace"))
        elif isinstance(value, str) and "://" in value:
            # A URL setting may carry a password (TRIAGE_DB=postgresql://user:password@host/db).
            try:
                password = urlsplit(value).password
            except ValueError:
                password = None
            if password:
                found.extend(dict.fromkeys((password, unquote(password))))
        elif isinstance(value, BaseModel):
            for name in type(value).model_fields:
                walk(getattr(value, name, None), depth + 1)
        elif isinstance(value, Mapping):
            for item in value.values():
                walk(item, depth + 1)
        elif isinstance(value, (list, tuple, set, frozenset)):
            for item in value:
                walk(item, depth + 1)

    walk(settings, 0)
    return list(dict.fromkeys(v for v in found if v))


def _isatty(stream: IO[str]) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


# The root handler we installed last, so that reconfiguring replaces it instead of
# doubling every line (other handlers, e.g. pytest's, are left alone).
_handler: logging.Handler | None = None


def configure_logging(
    *,
    level: str = "info",
    fmt: LogFormat = "auto",
    secrets: Iterable[str] = (),
    stream: IO[str] | None = None,
) -> Redactor:
    """Route structlog and stdlib logging through one redacting handler on ``stream``.

    ``fmt="auto"`` renders for humans when ``stream`` (default ``sys.stderr``) is a
    TTY and as JSON lines otherwise. Safe to call again: the previous handler is
    replaced. Returns the ``Redactor`` (to redact text outside logging, e.g. error
    replies). Raises ``ValueError`` for an unknown level or format.
    """
    numeric = _LEVELS.get(level.lower())
    if numeric is None:
        raise ValueError(f"unknown log level {level!r}; use one of {', '.join(_LEVELS)}")
    if fmt not in ("auto", "json", "console"):
        raise ValueError(f"unknown log format {fmt!r}; use auto, json or console")
    stream = stream if stream is not None else sys.stderr
    if fmt == "auto":
        fmt = "console" if _isatty(stream) else "json"

    redactor = Redactor(secrets)
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    renderer: Processor = (
        structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=_isatty(stream))
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            # Tracebacks become plain text *before* redaction, so exception messages and
            # the source lines they quote are redacted like any other value.
            structlog.processors.format_exc_info,
            redactor,
            redactor.wrap(renderer),
        ],
    )

    global _handler
    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
    _handler = logging.StreamHandler(stream)
    _handler.setFormatter(formatter)
    root.addHandler(_handler)
    root.setLevel(numeric)
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(numeric, logging.INFO))
    # httpx logs every request at INFO; the platform layer logs its own requests (with the
    # operation name) at DEBUG, so httpx's lines are kept for DEBUG only. At INFO they cost
    # a formatted, redacted log line per vendor call for nothing.
    logging.getLogger("httpx").setLevel(numeric if numeric <= logging.DEBUG else logging.WARNING)

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Module-level loggers are created at import, before configure_logging runs;
        # caching would pin them to whatever configuration was current then.
        cache_logger_on_first_use=False,
    )
    return redactor


def new_request_id() -> str:
    """A short random id for one request or job, to quote to users and find in logs."""
    return uuid.uuid4().hex[:12]


def bind_request(**kv: Any) -> str:
    """Bind ``kv`` (e.g. ``request_id``, ``job_id``, ``user``) to every log line of this context.

    A ``request_id`` is generated when none is given; it is returned. The binding
    lasts for the current context (an asyncio task copies its parent's at creation),
    so call ``clear_request`` or use ``request_context`` where a context is reused.
    """
    kv.setdefault("request_id", new_request_id())
    structlog.contextvars.bind_contextvars(**kv)
    return str(kv["request_id"])


def clear_request() -> None:
    """Forget every value bound with ``bind_request`` in this context."""
    structlog.contextvars.clear_contextvars()


@contextmanager
def request_context(**kv: Any) -> Iterator[str]:
    """Bind ``kv`` (plus a generated ``request_id`` if absent) for the ``with`` block only."""
    kv.setdefault("request_id", new_request_id())
    with structlog.contextvars.bound_contextvars(**kv):
        yield str(kv["request_id"])
