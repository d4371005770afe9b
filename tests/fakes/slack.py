"""A fake Slack Web API server for tests: real HTTP on 127.0.0.1, real-shaped answers.

``AsyncWebClient(token=..., base_url=f"{fake.url}/api/")`` talks to it like to
Slack (keep the trailing slash). It accepts POST JSON, POST form and GET query
strings (merged into one ``args`` dict), checks the bearer token, records every
call in ``calls`` and keeps the state the bot cares about: users (``add_user``),
messages per channel with increasing ``ts``, ephemerals, views, DM channels and
user groups. Faults: ``rate_limit`` (HTTP 429 + ``Retry-After``) and ``fail``
(``{"ok": false, "error": ...}``). POSTs to ``/webhook/<anything>`` stand in for
``response_url`` and land in ``responses``. Response shapes follow
``shared/slack/payloads/web_api_responses.json`` and ``payloads/shapes``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import pytest_asyncio
from aiohttp import WSMsgType, web
from slack_sdk.web.async_client import AsyncWebClient

TOKEN = "xoxb-test-token"
APP_TOKEN = "xapp-test-token"

Json = dict[str, Any]


class SlackCall(NamedTuple):
    """One Web API call as the fake received it (unpacks as ``method, args, headers``)."""

    method: str
    args: dict[str, Any]
    headers: dict[str, str]


@dataclass
class _Fault:
    method: str
    times: int | None  # None: every call
    status: int = 200
    error: str = "ratelimited"
    retry_after: int | None = None


@dataclass
class FakeUser:
    """A Slack user the fake knows."""

    id: str
    team_id: str = "T111"
    email: str | None = None
    real_name: str = ""
    display_name: str = ""
    name: str = ""
    is_bot: bool = False
    deleted: bool = False
    tz: str = "Europe/London"

    def to_json(self) -> Json:
        profile: Json = {
            "real_name": self.real_name,
            "real_name_normalized": self.real_name,
            "display_name": self.display_name,
            "display_name_normalized": self.display_name,
            "first_name": self.real_name.split(" ")[0] if self.real_name else "",
            "last_name": " ".join(self.real_name.split(" ")[1:]),
            "status_text": "",
            "status_emoji": "",
            "avatar_hash": "g000000000",
            "image_48": "https://example.invalid/avatar_48.png",
            "team": self.team_id,
        }
        # Slack omits the key when the user has no email or the token lacks users:read.email.
        if self.email is not None:
            profile["email"] = self.email
        return {
            "id": self.id,
            "team_id": self.team_id,
            "name": self.name or (self.email or self.id).split("@")[0],
            "deleted": self.deleted,
            "color": "9f69e7",
            "real_name": self.real_name,
            "tz": self.tz,
            "tz_label": "Greenwich Mean Time",
            "tz_offset": 0,
            "profile": profile,
            "is_admin": False,
            "is_owner": False,
            "is_primary_owner": False,
            "is_restricted": False,
            "is_ultra_restricted": False,
            "is_bot": self.is_bot,
            "is_app_user": False,
            "updated": 1502138686,
            "is_email_confirmed": self.email is not None,
            "has_2fa": False,
        }


@dataclass
class SlackFake:
    """The fake Web API server; ``await start()`` binds an ephemeral port on 127.0.0.1."""

    token: str = TOKEN
    app_token: str = APP_TOKEN
    team_id: str = "T111"
    bot_user_id: str = "UBOT"
    bot_id: str = "BBOT"
    scopes: str = "chat:write,commands,users:read,users:read.email,im:write,usergroups:read"
    calls: list[SlackCall] = field(default_factory=list)
    responses: list[Json] = field(default_factory=list)
    users: dict[str, FakeUser] = field(default_factory=dict)
    messages: dict[str, list[Json]] = field(default_factory=dict)
    ephemerals: list[Json] = field(default_factory=list)
    views: dict[str, Json] = field(default_factory=dict)
    usergroups: dict[str, list[str]] = field(default_factory=dict)
    dm_channels: dict[str, str] = field(default_factory=dict)
    port: int = 0

    def __post_init__(self) -> None:
        self._faults: list[_Fault] = []
        self._runner: web.AppRunner | None = None
        self._changed = asyncio.Event()
        self._ts_base = int(time.time())
        self._seq = itertools.count(1)
        self._view_seq = itertools.count(1)
        self._envelopes: asyncio.Queue[Json] = asyncio.Queue()
        self.socket_acks: list[Json] = []
        self.socket_connections = 0
        self._handlers: dict[str, Callable[[Json], Awaitable[Json] | Json]] = {
            "auth.test": self._auth_test,
            "users.info": self._users_info,
            "users.lookupByEmail": self._users_lookup_by_email,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "views.open": self._views_open,
            "views.push": self._views_open,
            "views.update": self._views_update,
            "conversations.open": self._conversations_open,
            "usergroups.users.list": self._usergroups_users_list,
            "apps.connections.open": self._apps_connections_open,
        }

    # ---- lifecycle ---------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Root URL: the Web API is under ``/api/``, the response_url sink under ``/webhook/``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        """The ``base_url`` for ``AsyncWebClient`` (with its trailing slash)."""
        return f"{self.url}/api/"

    def webhook_url(self, name: str = "response") -> str:
        """A response_url that lands in ``responses``."""
        return f"{self.url}/webhook/{name}"

    async def start(self) -> SlackFake:
        """Bind 127.0.0.1 on an ephemeral port and serve."""
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_post("/webhook/{tail:.*}", self._webhook)
        app.router.add_get("/link", self._link)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        assert site._server is not None
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        """Stop serving."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def client(self, **kwargs: Any) -> AsyncWebClient:
        """An ``AsyncWebClient`` with the right token pointed at this fake."""
        return AsyncWebClient(token=self.token, base_url=self.api_url, **kwargs)

    # ---- seeding and faults ------------------------------------------------------------

    def add_user(
        self,
        user_id: str,
        *,
        email: str | None = None,
        real_name: str = "",
        team_id: str = "T111",
        display_name: str = "",
        is_bot: bool = False,
        deleted: bool = False,
    ) -> FakeUser:
        """Seed a user for users.info / users.lookupByEmail (no email: the profile has none)."""
        user = FakeUser(
            id=user_id,
            team_id=team_id,
            email=email,
            real_name=real_name or user_id,
            display_name=display_name,
            is_bot=is_bot,
            deleted=deleted,
        )
        self.users[user_id] = user
        return user

    def add_usergroup(self, usergroup_id: str, users: list[str]) -> None:
        """Seed a user group for usergroups.users.list."""
        self.usergroups[usergroup_id] = list(users)

    def rate_limit(self, method: str, times: int | None = 1, retry_after: int = 1) -> None:
        """Answer the next ``times`` calls of ``method`` (None: all) with 429 + Retry-After."""
        self._faults.append(
            _Fault(
                method=method,
                times=times,
                status=429,
                error="ratelimited",
                retry_after=retry_after,
            )
        )

    def fail(self, method: str, error: str = "channel_not_found", *, times: int | None = 1) -> None:
        """Answer the next ``times`` calls of ``method`` (None: all) with ``ok: false, error``."""
        self._faults.append(_Fault(method=method, times=times, error=error))

    def clear_faults(self) -> None:
        self._faults.clear()

    # ---- assertions --------------------------------------------------------------------

    def calls_to(self, method: str) -> list[SlackCall]:
        """Calls received for one Web API method, in order (faulted ones included)."""
        return [c for c in self.calls if c.method == method]

    def messages_in(self, channel: str) -> list[Json]:
        """Messages posted to ``channel`` (as currently stored, updates applied)."""
        return list(self.messages.get(channel, []))

    def message(self, channel: str, ts: str) -> Json | None:
        """The stored message ``ts`` in ``channel``."""
        return next((m for m in self.messages.get(channel, []) if m["ts"] == ts), None)

    # The timeout argument is the point of these helpers (bounded waits in scenario tests).
    async def wait_for(self, method: str, count: int = 1, timeout: float = 5) -> list[SlackCall]:
        """Wait until ``method`` has been called ``count`` times; return those calls or raise
        ``AssertionError`` after ``timeout`` seconds with what was received instead."""
        return await self._wait(lambda: self.calls_to(method), count, timeout, what=method)

    async def wait_for_responses(self, count: int = 1, timeout: float = 5) -> list[Json]:
        """Wait until ``count`` bodies have been posted to a response_url; return them."""
        return await self._wait(lambda: list(self.responses), count, timeout, what="response_url")

    async def _wait(self, get: Callable[[], list[Any]], count: int, timeout: float, *, what: str) -> list[Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(found := get()) < count:
            remaining = deadline - loop.time()
            if remaining <= 0:
                seen = [c.method for c in self.calls]
                raise AssertionError(f"waited {timeout}s for {count} x {what}, got {len(found)}; calls so far: {seen}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                pass
        return found

    # ---- HTTP machinery ----------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        args: Json = dict(request.query)
        content_type = request.content_type
        if request.method == "POST" and request.can_read_body:
            if content_type == "application/json":
                try:
                    body = await request.json()
                except ValueError:
                    return web.json_response({"ok": False, "error": "invalid_json"})
                if isinstance(body, dict):
                    args.update(body)
            else:
                form = await request.post()
                args.update({k: v for k, v in form.items() if isinstance(v, str)})
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.calls.append(SlackCall(method, args, headers))
        self._changed.set()

        expected = self.app_token if method == "apps.connections.open" else self.token
        if headers.get("authorization") != f"Bearer {expected}":
            return web.json_response({"ok": False, "error": "invalid_auth"})
        for fault in self._faults:
            if fault.method == method and (fault.times is None or fault.times > 0):
                if fault.times is not None:
                    fault.times -= 1
                extra = {}
                if fault.retry_after is not None:
                    extra["Retry-After"] = str(fault.retry_after)
                return web.json_response({"ok": False, "error": fault.error}, status=fault.status, headers=extra)
        handler = self._handlers.get(method)
        if handler is None:
            return web.json_response({"ok": False, "error": "unknown_method"})
        result = handler(args)
        body = await result if asyncio.iscoroutine(result) else result
        resp_headers = {"x-oauth-scopes": self.scopes} if method == "auth.test" else {}
        self._changed.set()
        return web.json_response(body, headers=resp_headers)

    async def _webhook(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            return web.Response(status=400, text="invalid_payload")
        self.responses.append(body)
        self._changed.set()
        return web.Response(text="ok")

    async def _link(self, request: web.Request) -> web.StreamResponse:
        """Socket Mode: say hello, push queued envelopes, record the app's acks."""
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self.socket_connections += 1
        await ws.send_json({"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A111"}})

        async def pump() -> None:
            while True:
                envelope = await self._envelopes.get()
                await ws.send_json(envelope)

        sender = asyncio.create_task(pump())
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    self.socket_acks.append(json.loads(msg.data))
                    self._changed.set()
        finally:
            sender.cancel()
        return ws

    async def push_envelope(self, kind: str, payload: Json) -> str:
        """Queue a Socket Mode envelope (``slash_commands`` / ``interactive``); returns its id."""
        envelope_id = f"env-{next(self._seq)}"
        await self._envelopes.put(
            {"envelope_id": envelope_id, "type": kind, "payload": payload, "accepts_response_payload": True}
        )
        return envelope_id

    async def wait_for_ack(self, envelope_id: str, timeout: float = 5) -> Json:
        """Wait until the app acked ``envelope_id`` over the socket; return the ack."""
        acks = await self._wait(
            lambda: [a for a in self.socket_acks if a.get("envelope_id") == envelope_id],
            1,
            timeout,
            what=f"socket ack {envelope_id}",
        )
        return acks[0]

    def _next_ts(self) -> str:
        return f"{self._ts_base}.{next(self._seq):06d}"

    # ---- methods -----------------------------------------------------------------------

    def _auth_test(self, args: Json) -> Json:
        return {
            "ok": True,
            "url": "https://triage-test.slack.com/",
            "team": "Triage Test",
            "user": "triage-bot",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _users_info(self, args: Json) -> Json:
        user = self.users.get(str(args.get("user", "")))
        if user is None:
            return {"ok": False, "error": "user_not_found"}
        return {"ok": True, "user": user.to_json()}

    def _users_lookup_by_email(self, args: Json) -> Json:
        email = str(args.get("email", "")).strip().lower()
        if not email:
            return {"ok": False, "error": "invalid_arguments"}
        for user in self.users.values():
            if user.email and user.email.lower() == email and not user.deleted:
                return {"ok": True, "user": user.to_json()}
        return {"ok": False, "error": "users_not_found"}

    def _channel_of(self, args: Json) -> str | None:
        channel = args.get("channel")
        if not channel:
            return None
        channel = str(channel)
        # Posting to a user id goes to the bot's DM with them, as on Slack.
        if channel[:1] in ("U", "W"):
            return self._dm_for(channel)
        return channel

    def _dm_for(self, user_id: str) -> str:
        return self.dm_channels.setdefault(user_id, f"D{user_id[1:]}")

    @staticmethod
    def _blocks(args: Json) -> Any:
        blocks = args.get("blocks")
        # Form posts carry blocks as a JSON string; JSON posts carry the list itself.
        if isinstance(blocks, str):
            try:
                return json.loads(blocks)
            except ValueError:
                return None
        return blocks

    def _chat_post_message(self, args: Json) -> Json:
        channel = self._channel_of(args)
        if channel is None:
            return {"ok": False, "error": "channel_not_found"}
        blocks = self._blocks(args)
        if not args.get("text") and not blocks and not args.get("attachments"):
            return {"ok": False, "error": "no_text"}
        if args.get("blocks") is not None and blocks is None:
            return {"ok": False, "error": "invalid_blocks"}
        ts = self._next_ts()
        message: Json = {
            "type": "message",
            "subtype": "bot_message",
            "text": args.get("text", ""),
            "ts": ts,
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "team": self.team_id,
        }
        if blocks is not None:
            message["blocks"] = blocks
        if args.get("thread_ts"):
            message["thread_ts"] = str(args["thread_ts"])
        if args.get("metadata"):
            message["metadata"] = args["metadata"]
        self.messages.setdefault(channel, []).append(message)
        return {"ok": True, "channel": channel, "ts": ts, "message": dict(message)}

    def _chat_update(self, args: Json) -> Json:
        channel = self._channel_of(args)
        if channel is None:
            return {"ok": False, "error": "channel_not_found"}
        message = self.message(channel, str(args.get("ts", "")))
        if message is None:
            return {"ok": False, "error": "message_not_found"}
        if "text" in args:
            message["text"] = args["text"]
        if "blocks" in args:
            message["blocks"] = self._blocks(args)
        message["edited"] = {"user": self.bot_user_id, "ts": self._next_ts()}
        return {
            "ok": True,
            "channel": channel,
            "ts": message["ts"],
            "text": message.get("text", ""),
            "message": dict(message),
        }

    def _chat_post_ephemeral(self, args: Json) -> Json:
        channel = self._channel_of(args)
        if channel is None:
            return {"ok": False, "error": "channel_not_found"}
        if not args.get("user"):
            return {"ok": False, "error": "user_not_in_channel"}
        ts = self._next_ts()
        self.ephemerals.append(
            {
                "channel": channel,
                "user": str(args["user"]),
                "text": args.get("text", ""),
                "blocks": self._blocks(args),
                "thread_ts": args.get("thread_ts"),
                "message_ts": ts,
            }
        )
        return {"ok": True, "message_ts": ts}

    def _view_body(self, args: Json) -> Json | None:
        view = args.get("view")
        if isinstance(view, str):
            try:
                view = json.loads(view)
            except ValueError:
                return None
        return view if isinstance(view, dict) else None

    def _views_open(self, args: Json) -> Json:
        if not args.get("trigger_id") and not args.get("interactivity_pointer"):
            return {"ok": False, "error": "invalid_arguments"}
        view = self._view_body(args)
        if view is None:
            return {"ok": False, "error": "invalid_arguments"}
        view_id = f"V{next(self._view_seq):08d}"
        stored = {
            **view,
            "id": view_id,
            "team_id": self.team_id,
            "app_id": "A111",
            "bot_id": self.bot_id,
            "root_view_id": view_id,
            "previous_view_id": None,
            "hash": f"{self._ts_base}.{view_id}",
            "state": {"values": {}},
            "private_metadata": view.get("private_metadata", ""),
            "callback_id": view.get("callback_id", ""),
            "external_id": view.get("external_id", ""),
        }
        self.views[view_id] = stored
        return {"ok": True, "view": dict(stored)}

    def _views_update(self, args: Json) -> Json:
        view = self._view_body(args)
        if view is None:
            return {"ok": False, "error": "invalid_arguments"}
        view_id = args.get("view_id")
        if not view_id and args.get("external_id"):
            view_id = next(
                (k for k, v in self.views.items() if v.get("external_id") == args["external_id"]),
                None,
            )
        if not view_id or view_id not in self.views:
            return {"ok": False, "error": "not_found"}
        stored = {**self.views[view_id], **view, "id": view_id}
        stored["hash"] = f"{self._next_ts()}.{view_id}"
        self.views[view_id] = stored
        return {"ok": True, "view": dict(stored)}

    def _conversations_open(self, args: Json) -> Json:
        users = [u for u in str(args.get("users", "")).split(",") if u]
        if args.get("channel"):
            return {"ok": True, "channel": {"id": str(args["channel"])}}
        if not users:
            return {"ok": False, "error": "users_list_not_supplied"}
        if len(users) > 1:
            return {"ok": True, "channel": {"id": "G" + "".join(u[1:4] for u in users)}}
        return {"ok": True, "channel": {"id": self._dm_for(users[0])}}

    def _usergroups_users_list(self, args: Json) -> Json:
        group = str(args.get("usergroup", ""))
        if group not in self.usergroups:
            return {"ok": False, "error": "no_such_subteam"}
        return {"ok": True, "users": list(self.usergroups[group])}

    def _apps_connections_open(self, args: Json) -> Json:
        return {"ok": True, "url": f"ws://127.0.0.1:{self.port}/link"}


@pytest_asyncio.fixture
async def slack_fake() -> AsyncIterator[SlackFake]:
    """A running ``SlackFake`` with token ``xoxb-test-token``."""
    fake = await SlackFake().start()
    try:
        yield fake
    finally:
        await fake.stop()


@pytest_asyncio.fixture
async def slack_client(slack_fake: SlackFake) -> AsyncWebClient:
    """An ``AsyncWebClient`` pointed at ``slack_fake``."""
    return slack_fake.client()
