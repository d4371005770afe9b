"""The one HTTP layer every platform client uses.

A long-lived ``httpx.AsyncClient`` per platform with explicit timeouts, a
concurrency limit, an optional client-side rate limit, and retries (stamina)
for 429, 5xx, timeouts and connection errors, honouring ``Retry-After`` and
Datadog's ``X-RateLimit-Reset``. Other 4xx are never retried, nor a 5xx the platform's
``refusal`` hook recognises as a business error (Xpanse answers those 500). Failures leave
as the ``PlatformError`` subclasses of ``bot.errors``: a 401/402/403 worded with the
operation's row of ``bot.permissions`` (what the key lacks), a spent retry budget with the
host and the number of tries ("could not reach Xpanse at api-x.example (connection
refused); gave up after 3 tries").
"""

from __future__ import annotations

import asyncio
import email.utils
import socket
import ssl
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx
import stamina
import structlog
from aiolimiter import AsyncLimiter

from bot.errors import (
    PlatformAuthError,
    PlatformError,
    PlatformNotFound,
    PlatformRateLimited,
    PlatformRejected,
    PlatformUnavailable,
)
from bot.logging import Redactor
from bot.metrics import PLATFORM_LATENCY, PLATFORM_RETRIES
from bot.models import Platform
from bot.permissions import Permission, refusal
from bot.settings import HttpPolicy
from bot.tls import client_context

log = structlog.get_logger(__name__)

ErrorParser = Callable[[httpx.Response], str]


class _Retryable(Exception):
    """A response or transport failure worth another attempt."""

    def __init__(self, reason: str, *, response: httpx.Response | None = None, wait: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.response = response
        self.wait = wait


def retry_after_seconds(response: httpx.Response) -> float | None:
    """Seconds the vendor asks us to wait: ``Retry-After`` (seconds or date) or ``X-RateLimit-Reset``."""
    for header in ("retry-after", "x-ratelimit-reset"):
        raw = response.headers.get(header)
        if not raw:
            continue
        try:
            return max(0.0, float(raw))
        except ValueError:
            parsed = email.utils.parsedate_to_datetime(raw) if header == "retry-after" else None
            if parsed is not None:
                return max(0.0, parsed.timestamp() - time.time())
    return None


def json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


class Limiter(Protocol):
    """Paces requests: ``acquire`` returns when the next request may go (``aiolimiter``'s interface)."""

    async def acquire(self, amount: float = 1) -> None: ...


class PlatformHttp:
    """Shared request machinery for one platform's API."""

    def __init__(
        self,
        *,
        platform: str,
        base_url: str,
        policy: HttpPolicy,
        headers: Mapping[str, str] | None = None,
        error_parser: ErrorParser,
        rate_limit: float | None = None,
        limiter: Limiter | None = None,
        auth: httpx.Auth | None = None,
        secrets: Iterable[str] = (),
        refusal: Callable[[httpx.Response], bool] | None = None,
        permissions: Mapping[str, Permission] | None = None,
    ) -> None:
        self.platform = platform
        # How people name it ("Datadog", not the "datadog" some clients pass as ``platform``).
        self.label = Platform(platform).label if platform in {p.value for p in Platform} else platform
        self.host = urlsplit(base_url).hostname or base_url
        # Per operation, what the key needs: a 401/402/403 says which one is missing.
        self._permissions: Mapping[str, Permission] = permissions or {}
        # A 5xx for which refusal(response) is true is a final PlatformRejected, never retried.
        self._refusal = refusal
        # A vendor error body may quote a credential back; reasons reach Slack, so the client's own
        # credentials (its auth headers and any extra secrets) are redacted from them.
        credential_values = [
            v for k, v in (headers or {}).items() if any(w in k.lower() for w in ("key", "auth", "token", "secret"))
        ]
        self._redactor = Redactor([*credential_values, *(v.split(" ", 1)[-1] for v in credential_values), *secrets])
        self.policy = policy
        self._parse_error = error_parser
        self._client = httpx.AsyncClient(
            base_url=base_url,
            headers=dict(headers or {}),
            auth=auth,
            timeout=httpx.Timeout(policy.timeout, connect=policy.connect_timeout),
            limits=httpx.Limits(max_connections=policy.concurrency * 2, max_keepalive_connections=policy.concurrency),
            verify=client_context(),
        )
        self._sem = asyncio.Semaphore(policy.concurrency)
        # A leaky bucket with a burst of one: at most `rate_limit` requests per second, evenly spaced.
        # Clients of one tenant can share a `limiter` so that together they stay under its limit
        # (the replicas of one installation share one kept by the database: bot.store.budgets).
        self.limiter: Limiter | None = limiter or (AsyncLimiter(1, 1 / rate_limit) if rate_limit else None)
        self.calls: Counter[str] = Counter()

    async def aclose(self) -> None:
        await self._client.aclose()

    def _backoff(self, exc: Exception) -> bool | float:
        if isinstance(exc, _Retryable):
            PLATFORM_RETRIES.labels(self.platform, exc.reason).inc()
            if exc.wait is not None:
                return min(exc.wait, self.policy.retry_timeout)
            return True
        return False

    async def request(
        self,
        method: str,
        path: str,
        *,
        operation: str,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Send one logical request (retrying transient failures) and return a 2xx/3xx response.

        Raises a ``PlatformError`` subclass for any 4xx, and for 429 / 5xx /
        transport failures once the retry budget (attempts and total time) is spent.
        """
        tries = 0
        try:
            async with self._sem:
                async for attempt in stamina.retry_context(
                    on=self._backoff,
                    attempts=self.policy.retry_attempts,
                    timeout=self.policy.retry_timeout,
                    wait_initial=self.policy.retry_wait_initial,
                    wait_max=self.policy.retry_wait_max,
                    wait_jitter=self.policy.retry_wait_initial,
                ):
                    with attempt:
                        tries += 1
                        return await self._once(method, path, operation, json, params, headers)
        except _Retryable as exc:
            raise self._final_error(exc, tries) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    async def _once(
        self,
        method: str,
        path: str,
        operation: str,
        json: Any,
        params: Mapping[str, Any] | None,
        headers: Mapping[str, str] | None,
    ) -> httpx.Response:
        if self.limiter is not None:
            await self.limiter.acquire()
        self.calls[operation] += 1
        started = time.perf_counter()
        try:
            response = await self._client.request(method, path, json=json, params=params, headers=headers)
        except httpx.TimeoutException as exc:
            PLATFORM_LATENCY.labels(self.platform, operation, "timeout").observe(time.perf_counter() - started)
            raise _Retryable("timeout") from exc
        except httpx.TransportError as exc:
            PLATFORM_LATENCY.labels(self.platform, operation, "error").observe(time.perf_counter() - started)
            raise _Retryable("connection") from exc
        PLATFORM_LATENCY.labels(self.platform, operation, str(response.status_code)).observe(
            time.perf_counter() - started
        )
        status = response.status_code
        if status == 429:
            raise _Retryable("429", response=response, wait=retry_after_seconds(response))
        if status >= 500 and self._refusal is not None and self._refusal(response):
            log.info("platform_refused", platform=self.platform, operation=operation, status=status)
            raise PlatformRejected(self.platform, self._reason(response), status=status)
        if status >= 500:
            raise _Retryable("5xx", response=response, wait=retry_after_seconds(response))
        if status >= 400:
            raise self._client_error(response, operation)
        log.debug("platform_request", platform=self.platform, operation=operation, status=status)
        return response

    def _reason(self, response: httpx.Response) -> str:
        try:
            text = self._parse_error(response)
        except Exception:  # a malformed error body must not hide the status
            text = ""
        return self._redactor.redact_text(text) or response.reason_phrase or "error"

    def _client_error(self, response: httpx.Response, operation: str) -> PlatformError:
        status = response.status_code
        reason = self._reason(response)
        if status in (401, 402, 403):
            need = self._permissions.get(operation)
            log.info("platform_auth_refused", platform=self.platform, operation=operation, status=status, reason=reason)
            return PlatformAuthError(
                self.platform,
                refusal(self.label, status, need, reason),
                status=status,
                missing=need.names if need and status == 403 else (),
            )
        if status == 404:
            return PlatformNotFound(self.platform, reason, status=status)
        return PlatformRejected(self.platform, reason, status=status)

    def _final_error(self, exc: _Retryable, tries: int) -> PlatformError:
        gave_up = f"gave up after {tries} {'try' if tries == 1 else 'tries'}"
        if exc.response is None:
            cause = exc.__cause__
            if exc.reason == "timeout":
                detail = f"{self.label} at {self.host} did not answer in time ({transport_problem(cause)})"
            else:
                detail = f"could not reach {self.label} at {self.host} ({transport_problem(cause)})"
            return PlatformUnavailable(self.platform, f"{detail}; {gave_up}")
        status = exc.response.status_code
        reason = f"{self._reason(exc.response)} ({gave_up})"
        if status == 429:
            return PlatformRateLimited(
                self.platform, reason, status=status, retry_after=retry_after_seconds(exc.response)
            )
        return PlatformUnavailable(self.platform, reason, status=status)


def transport_problem(cause: BaseException | None) -> str:
    """A transport failure in a few words: "connection refused", "host name not found", …

    Looks down the chain httpx → httpcore → the socket error (anyio hides a refused
    connection behind "All connection attempts failed").
    """
    if isinstance(cause, httpx.ConnectTimeout):
        return "connection timed out"
    if isinstance(cause, httpx.ReadTimeout):
        return "read timed out"
    if isinstance(cause, httpx.TimeoutException):
        return "timed out"
    chain: list[BaseException] = []
    seen = cause
    while seen is not None and len(chain) < 10:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    if any(isinstance(e, ConnectionRefusedError) for e in chain):
        return "connection refused"
    if any(isinstance(e, socket.gaierror) for e in chain):
        return "host name not found"
    if any(isinstance(e, ssl.SSLError) for e in chain):
        return "TLS handshake failed"
    if isinstance(cause, httpx.ConnectError):
        return "connection failed"
    return "connection dropped"
