"""The Slack Web API client the services call through (Bolt's listeners keep Bolt's own).

One long-lived ``httpx.AsyncClient`` per process, the HTTP library the platform clients
use, so a process that only runs and reports jobs loads neither aiohttp nor the Slack SDK.
Calls go out the way Slack documents them: write methods (``chat.postMessage``,
``chat.update``, ``chat.unfurl``, ``views.publish``) as JSON, reads as GET query strings,
the rest as form posts, with the bot token in the ``Authorization`` header only.

Retries (stamina): a connection that failed before the request went out or a 5xx twice, a
429 up to five times, each after the ``Retry-After`` Slack asked for; a request that may have
landed (the answer timed out or broke off) is not sent again. A client made with ``rate_limit_retries=0`` gives a 429
straight back to its caller, which honours it per channel (``bot.core.intake``). What Slack
refuses leaves as ``SlackApiError`` carrying the answer (``error``, status, headers); what
never got an answer leaves as ``SlackRequestError``.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Mapping
from typing import Any

import httpx
import stamina

from bot.tls import client_context

TIMEOUT_S = 30.0
CONNECTION_RETRIES = 2
SERVER_ERROR_RETRIES = 2
RATE_LIMIT_RETRIES = 5


class SlackAnswer(Mapping[str, Any]):
    """One Web API answer: its JSON (``answer["ts"]``, ``answer.get("error")``), status and headers."""

    def __init__(self, data: dict[str, Any], *, status_code: int, headers: Mapping[str, str], method: str) -> None:
        self.data = data
        self.status_code = status_code
        self.headers = httpx.Headers(headers)
        self.method = method

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        return f"SlackAnswer({self.method}, {self.status_code}, error={self.data.get('error')!r})"


class SlackError(Exception):
    """A Web API call that did not succeed."""


class SlackApiError(SlackError):
    """Slack answered, and refused: ``response`` has its ``error`` (``ok: false``), status and headers."""

    def __init__(self, message: str, response: SlackAnswer) -> None:
        super().__init__(message)
        self.response = response


class SlackRequestError(SlackError):
    """No answer from Slack: the connection failed or timed out (after the retries)."""


# Failures before Slack could have acted: safe to send again. (A kept-alive connection the
# server closed answers RemoteProtocolError before any byte of the request was read.)
_UNSENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.RemoteProtocolError)


class _Again(Exception):
    def __init__(self, answer: SlackAnswer | None = None, error: httpx.TransportError | None = None) -> None:
        super().__init__(answer.status_code if answer is not None else type(error).__name__)
        self.answer = answer
        self.error = error


def _form(values: Mapping[str, Any]) -> dict[str, str]:
    """Form or query values as Slack reads them: no ``None``s, booleans as 1/0, lists as JSON."""
    out: dict[str, str] = {}
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[key] = "1" if value else "0"
        elif isinstance(value, (dict, list)):
            out[key] = json.dumps(value)
        else:
            out[key] = str(value)
    return out


class SlackWeb:
    """``await slack.chat_postMessage(channel=..., text=...)``: the Web API methods the bot uses."""

    def __init__(
        self,
        token: str | None,
        base_url: str,
        *,
        timeout: float = TIMEOUT_S,
        rate_limit_retries: int = RATE_LIMIT_RETRIES,
        server_error_retries: int = SERVER_ERROR_RETRIES,
        connection_retries: int = CONNECTION_RETRIES,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.token = token
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.timeout = timeout
        self.retries = {"rate": rate_limit_retries, "server": server_error_retries, "connection": connection_retries}
        self._owned = http is None
        self._http = http or httpx.AsyncClient(
            limits=httpx.Limits(max_keepalive_connections=20), verify=client_context()
        )

    def with_options(self, *, timeout: float, rate_limit_retries: int, server_error_retries: int) -> SlackWeb:
        """The same token and connection pool with another timeout and retry policy."""
        return SlackWeb(
            self.token,
            self.base_url,
            timeout=timeout,
            rate_limit_retries=rate_limit_retries,
            server_error_retries=server_error_retries,
            connection_retries=self.retries["connection"],
            http=self._http,
        )

    async def aclose(self) -> None:
        if self._owned:
            await self._http.aclose()

    # ---- the one way out -------------------------------------------------------------

    async def call(
        self,
        method: str,
        *,
        json_body: Mapping[str, Any] | None = None,
        form: Mapping[str, Any] | None = None,
        query: Mapping[str, Any] | None = None,
    ) -> SlackAnswer:
        """Call ``method`` (e.g. ``chat.postMessage``); its answer when ``ok``, else ``SlackApiError``."""
        if json_body is not None:
            body = {k: v for k, v in json_body.items() if v is not None}
            request: dict[str, Any] = {"method": "POST", "json": body}
        elif query is not None:
            request = {"method": "GET", "params": _form(query)}
        else:
            request = {"method": "POST", "data": _form(form or {})}
        answer = await self._send(method, request)
        if not answer.get("ok"):
            raise SlackApiError(f"Slack refused {method}: {answer.get('error')}", answer)
        return answer

    async def _send(self, method: str, request: dict[str, Any]) -> SlackAnswer:
        spent = {"connection": 0, "server": 0, "rate": 0}

        def again(exc: Exception) -> bool | float:
            if not isinstance(exc, _Again):
                return False
            kind = "connection" if exc.answer is None else "rate" if exc.answer.status_code == 429 else "server"
            spent[kind] += 1
            if spent[kind] > self.retries[kind]:
                return False
            if exc.answer is not None and kind == "rate":
                return (retry_after_seconds_of(exc.answer) or 1.0) + random.random()
            return True

        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        url = self.base_url + method
        try:
            async for attempt in stamina.retry_context(
                on=again, attempts=None, timeout=None, wait_initial=0.5, wait_max=4.0
            ):
                with attempt:
                    answer = await self._once(method, url, headers, request)
                    if answer.status_code == 429 or answer.status_code >= 500:
                        raise _Again(answer=answer)
                    return answer
        except _Again as exc:
            if exc.answer is not None:
                return exc.answer
            raise SlackRequestError(f"could not reach Slack for {method}: {type(exc.error).__name__}") from exc.error
        raise AssertionError("unreachable")  # pragma: no cover

    async def _once(self, method: str, url: str, headers: dict[str, str], request: dict[str, Any]) -> SlackAnswer:
        try:
            response = await self._http.request(url=url, headers=headers, timeout=self.timeout, **request)
        except _UNSENT as exc:
            raise _Again(error=exc) from exc
        except httpx.TransportError as exc:  # it may have landed: retrying could post twice
            raise SlackRequestError(f"no answer from Slack for {method}: {type(exc).__name__}") from exc
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            data = {"ok": False, "error": f"http_{response.status_code}"}
        return SlackAnswer(data, status_code=response.status_code, headers=response.headers, method=method)

    async def respond(self, response_url: str, message: Mapping[str, Any]) -> int:
        """Post ``message`` to a request's ``response_url`` (no token: the URL is the credential);
        returns the HTTP status. A refusal (an expired URL answers 404) is the caller's to judge:
        nothing is retried, since a retried post could show the message twice."""
        body = {k: v for k, v in message.items() if v is not None}
        try:
            response = await self._http.post(response_url, json=body, timeout=self.timeout)
        except httpx.TransportError as exc:
            raise SlackRequestError(f"could not reach the response_url: {type(exc).__name__}") from exc
        return response.status_code

    async def __aenter__(self) -> SlackWeb:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # ---- the methods the bot calls -----------------------------------------------------

    async def auth_test(self) -> SlackAnswer:
        return await self.call("auth.test", form={})

    async def chat_postMessage(self, **args: Any) -> SlackAnswer:
        return await self.call("chat.postMessage", json_body=args)

    async def chat_update(self, **args: Any) -> SlackAnswer:
        return await self.call("chat.update", json_body=args)

    async def chat_unfurl(self, **args: Any) -> SlackAnswer:
        return await self.call("chat.unfurl", json_body=args)

    async def views_publish(self, **args: Any) -> SlackAnswer:
        return await self.call("views.publish", json_body=args)

    async def conversations_open(self, **args: Any) -> SlackAnswer:
        return await self.call("conversations.open", form=args)

    async def conversations_history(self, **args: Any) -> SlackAnswer:
        return await self.call("conversations.history", query=args)

    async def users_info(self, **args: Any) -> SlackAnswer:
        return await self.call("users.info", query=args)

    async def users_lookupByEmail(self, **args: Any) -> SlackAnswer:
        return await self.call("users.lookupByEmail", query=args)

    async def usergroups_users_list(self, **args: Any) -> SlackAnswer:
        return await self.call("usergroups.users.list", query=args)

    async def files_upload_v2(
        self,
        *,
        channel: str,
        content: str,
        filename: str,
        title: str,
        thread_ts: str | None = None,
        initial_comment: str | None = None,
    ) -> SlackAnswer:
        """Share ``content`` as a file in the channel (or thread), the way Slack now requires:
        ``files.getUploadURLExternal``, a POST of the bytes to the URL it gives, then
        ``files.completeUploadExternal`` (the retired ``files.upload`` is never called)."""
        data = content.encode()
        ticket = await self.call("files.getUploadURLExternal", form={"filename": filename, "length": len(data)})
        try:
            uploaded = await self._http.post(str(ticket["upload_url"]), content=data, timeout=self.timeout)
        except httpx.TransportError as exc:
            raise SlackRequestError(f"could not upload {filename}: {type(exc).__name__}") from exc
        if uploaded.status_code != 200:
            answer = SlackAnswer(
                {"ok": False, "error": f"upload_http_{uploaded.status_code}"},
                status_code=uploaded.status_code,
                headers=uploaded.headers,
                method="upload",
            )
            raise SlackApiError(f"Slack refused the upload of {filename}", answer)
        return await self.call(
            "files.completeUploadExternal",
            form={
                "files": [{"id": ticket["file_id"], "title": title}],
                "channel_id": channel,
                "thread_ts": thread_ts,
                "initial_comment": initial_comment,
            },
        )


def retry_after_seconds_of(answer: SlackAnswer) -> float | None:
    """The wait a 429 asked for: Slack's ``Retry-After`` is a whole number of seconds."""
    try:
        return max(0.0, float(answer.headers.get("retry-after", "")))
    except ValueError:
        return None
