"""A sandbox Slack Web API: it answers like Slack and keeps what the bot posts.

``AsyncWebClient(token=..., base_url=f"{slack.url}/api/")`` talks to it like to Slack
(keep the trailing slash). It accepts POST JSON, POST form and GET query strings
(merged into one ``args`` dict), checks the bearer token, records every call in
``calls`` and keeps the state the bot cares about: users, messages per channel with
increasing ``ts`` (a post to a user id lands in the bot's DM with them), ephemerals,
views, DM channels and user groups; every message, update, ephemeral, modal and
response_url body is also kept in order as a ``SlackEvent`` for ``triage-bot shell`` to
render. POSTs to ``/webhook/<anything>`` stand in for ``response_url`` and land in
``responses``. File uploads take ``files_upload_v2``'s three steps (``bot.sandbox.slack_files``).
User look-ups (users.info, users.lookupByEmail, usergroups.users.list,
auth.test) answer from the sandbox directory or, when ``upstream`` is given (a real bot
token is configured), from the real workspace, so identities resolve as in production.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from urllib.parse import parse_qsl

from aiohttp import web
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.sandbox.server import Recorded, SandboxServer, json_response
from bot.sandbox.slack_files import UPLOAD_PREFIX, SlackFiles
from bot.sandbox.slack_pace import ChannelPace, history
from bot.sandbox.slack_types import Json, SlackCall, SlackEvent, SlackUser, decoded

__all__ = ["SCOPES", "SlackCall", "SlackEvent", "SlackSandbox", "SlackUser"]
# Read-only methods forwarded to the real workspace when there is one.
UPSTREAM_METHODS = frozenset({"users.info", "users.lookupByEmail", "usergroups.users.list", "auth.test"})
SCOPES = (
    "chat:write,commands,users:read,users:read.email,im:write,usergroups:read,files:write,"
    "channels:history,groups:history,links:read,links:write"
)


class SlackSandbox(SlackFiles, SandboxServer):
    """The Web API subset the bot uses, recording every call, message and modal."""

    name = "Slack"

    def __init__(
        self,
        *,
        token: str,
        team_id: str = "T111",
        bot_user_id: str = "UBOT",
        bot_id: str = "BBOT",
        scopes: str = SCOPES,
        upstream: AsyncWebClient | None = None,
    ) -> None:
        super().__init__()
        self.token, self.team_id, self.scopes, self.upstream = token, team_id, scopes, upstream
        self.bot_user_id, self.bot_id = bot_user_id, bot_id
        self.calls: list[SlackCall] = []
        self.responses: list[Json] = []
        self.users: dict[str, SlackUser] = {}
        self.messages: dict[str, list[Json]] = {}
        self._by_ts: dict[tuple[str, str], Json] = {}  # the same messages by (channel, ts)
        self.ephemerals: list[Json] = []
        self.views: dict[str, Json] = {}
        self.homes: dict[str, Json] = {}  # views.publish: each user's Home tab
        self.unfurls: list[Json] = []  # chat.unfurl: {channel, ts, unfurls}
        self.usergroups: dict[str, list[str]] = {}
        self.dm_channels: dict[str, str] = {}
        self.events: list[SlackEvent] = []
        self._ts_base = int(time.time())
        self._seq = itertools.count(1)
        self._view_seq = itertools.count(1)
        self._init_files()
        # Slack's chat.postMessage pace per channel (``pace.rate`` None: unlimited).
        self.pace = ChannelPace()
        self.methods: dict[str, Callable[[Json], Json]] = {
            "auth.test": self._auth_test,
            "users.info": self._users_info,
            "users.lookupByEmail": self._users_lookup_by_email,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "views.open": self._views_open,
            "views.push": self._views_open,
            "views.update": self._views_update,
            "views.publish": self._views_publish,
            "chat.unfurl": self._chat_unfurl,
            "conversations.open": self._conversations_open,
            "conversations.history": lambda args: history(self.messages.get(self._channel_of(args) or "", []), args),
            "usergroups.users.list": self._usergroups_users_list,
            **self.file_methods(),
        }

    @property
    def api_url(self) -> str:
        """The ``base_url`` for ``AsyncWebClient`` (with its trailing slash)."""
        return f"{self.url}/api/"

    def webhook_url(self, name: str = "response") -> str:
        """A response_url that lands in ``responses``."""
        return f"{self.url}/webhook/{name}"

    # ---- the directory ---------------------------------------------------------------------

    def add_user(
        self,
        user_id: str,
        *,
        email: str | None = None,
        real_name: str = "",
        name: str = "",
        team_id: str | None = None,
        display_name: str = "",
        is_bot: bool = False,
        deleted: bool = False,
    ) -> SlackUser:
        """Seed a user for users.info / users.lookupByEmail (no email: the profile has none)."""
        handle = name or (email or user_id).split("@")[0]
        user = SlackUser(
            user_id, team_id or self.team_id, handle, email, real_name or user_id, display_name, is_bot, deleted
        )
        self.users[user_id] = user
        return user

    def add_usergroup(self, usergroup_id: str, users: list[str]) -> None:
        """Seed a user group for usergroups.users.list."""
        self.usergroups[usergroup_id] = list(users)

    def user_named(self, name: str) -> SlackUser | None:
        """The user called ``name`` (id, handle, first name or email), if any."""
        wanted = name.lower().lstrip("@")
        for user in self.users.values():
            first = (user.real_name.split() or [""])[0].lower()
            if wanted in (user.id.lower(), user.name.lower(), (user.email or "").lower(), first):
                return user
        return None

    # ---- reading the state -----------------------------------------------------------------

    def calls_to(self, method: str) -> list[SlackCall]:
        """Calls received for one Web API method, in order (faulted ones included)."""
        return [c for c in self.calls if c.method == method]

    def messages_in(self, channel: str) -> list[Json]:
        """Messages posted to ``channel`` (as currently stored, updates applied)."""
        return list(self.messages.get(channel, []))

    def message(self, channel: str, ts: str) -> Json | None:
        """The stored message ``ts`` in ``channel``."""
        return self._by_ts.get((channel, ts))

    def keep(self, channel: str, message: Json) -> None:
        """Store a new message (its ``ts`` is new)."""
        self.messages.setdefault(channel, []).append(message)
        self._by_ts[(channel, message["ts"])] = message

    # ---- hooks -------------------------------------------------------------------------------

    def token_for(self, method: str) -> str:
        """The bearer token ``method`` wants."""
        return self.token

    def intercept(self, method: str, args: Json) -> web.StreamResponse | None:
        """An answer given instead of the method's own (after the token check); none here."""
        return None

    # ---- HTTP ----------------------------------------------------------------------------------

    async def handle(self, path: str, req: Recorded) -> web.StreamResponse:
        if path.startswith("/webhook/") and req.method == "POST":
            if isinstance(req.body, str) or (req.body is not None and not isinstance(req.body, dict)):
                return web.Response(status=400, text="invalid_payload")
            body: Json = req.body or {}
            self.responses.append(body)
            self.events.append(
                SlackEvent("response", text=str(body.get("text") or ""), blocks=list(body.get("blocks") or []))
            )
            return web.Response(text="ok")
        if path.startswith(UPLOAD_PREFIX):
            return self.upload(path, req)
        if not path.startswith("/api/"):
            return web.Response(status=404)
        method = path.removeprefix("/api/")
        args: Json = dict(req.query)
        if isinstance(req.body, dict):
            args.update(req.body)
        elif isinstance(req.body, str) and req.body:
            args.update(dict(parse_qsl(req.body, keep_blank_values=True)))
        self.calls.append(SlackCall(method, args, req.headers))
        if req.headers.get("authorization") != f"Bearer {self.token_for(method)}":
            return json_response({"ok": False, "error": "invalid_auth"})
        early = self.intercept(method, args)
        if early is not None:
            return early
        if self.upstream is not None and method in UPSTREAM_METHODS:
            return await self._forward(method, args)
        if method == "chat.postMessage" and self.pace.rate:
            retry_after = self.pace.take(self._channel_of(args) or "")
            if retry_after is not None:
                return json_response(
                    {"ok": False, "error": "ratelimited"}, status=429, headers={"Retry-After": str(retry_after)}
                )
        handler = self.methods.get(method)
        if handler is None:
            return json_response({"ok": False, "error": "unknown_method"})
        headers = {"x-oauth-scopes": self.scopes} if method == "auth.test" else None
        return json_response(handler(args), headers=headers)

    async def _forward(self, method: str, args: Json) -> web.Response:
        try:
            answer = await self.upstream.api_call(method, http_verb="GET", params=args)  # type: ignore[union-attr]
            return json_response(dict(answer.data) if isinstance(answer.data, dict) else {"ok": False})
        except SlackApiError as exc:
            return json_response(dict(exc.response.data) if isinstance(exc.response.data, dict) else {"ok": False})

    def next_ts(self) -> str:
        return f"{self._ts_base}.{next(self._seq):06d}"

    def _channel_of(self, args: Json) -> str | None:
        channel = str(args.get("channel") or "")
        # Posting to a user id goes to the bot's DM with them, as on Slack.
        return self._dm_for(channel) if channel[:1] in ("U", "W") else channel or None

    def _dm_for(self, user_id: str) -> str:
        return self.dm_channels.setdefault(user_id, f"D{user_id[1:]}")

    # ---- methods ---------------------------------------------------------------------------

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
        return {"ok": True, "user": user.to_json()} if user else {"ok": False, "error": "user_not_found"}

    def _users_lookup_by_email(self, args: Json) -> Json:
        email = str(args.get("email", "")).strip().lower()
        if not email:
            return {"ok": False, "error": "invalid_arguments"}
        for user in self.users.values():
            if user.email and user.email.lower() == email and not user.deleted:
                return {"ok": True, "user": user.to_json()}
        return {"ok": False, "error": "users_not_found"}

    def _chat_post_message(self, args: Json) -> Json:
        channel = self._channel_of(args)
        if channel is None:
            return {"ok": False, "error": "channel_not_found"}
        blocks = decoded(args.get("blocks"))
        if not args.get("text") and not blocks and not args.get("attachments"):
            return {"ok": False, "error": "no_text"}
        if args.get("blocks") is not None and blocks is None:
            return {"ok": False, "error": "invalid_blocks"}
        ts = self.next_ts()
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
        self.keep(channel, message)
        self.events.append(
            SlackEvent("post", channel, ts, message.get("thread_ts"), message["text"], list(blocks or []))
        )
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
            message["blocks"] = decoded(args["blocks"])
        message["edited"] = {"user": self.bot_user_id, "ts": self.next_ts()}
        ts, text = message["ts"], message.get("text", "")
        self.events.append(
            SlackEvent("update", channel, ts, message.get("thread_ts"), text, list(message.get("blocks") or []))
        )
        return {"ok": True, "channel": channel, "ts": ts, "text": text, "message": dict(message)}

    def _chat_post_ephemeral(self, args: Json) -> Json:
        channel = self._channel_of(args)
        if channel is None:
            return {"ok": False, "error": "channel_not_found"}
        if not args.get("user"):
            return {"ok": False, "error": "user_not_in_channel"}
        ts = self.next_ts()
        blocks = decoded(args.get("blocks"))
        text, thread_ts = args.get("text", ""), args.get("thread_ts")
        self.ephemerals.append(
            {
                "channel": channel,
                "user": str(args["user"]),
                "text": text,
                "blocks": blocks,
                "thread_ts": thread_ts,
                "message_ts": ts,
            }
        )
        self.events.append(SlackEvent("ephemeral", channel, ts, thread_ts, str(text or ""), list(blocks or [])))
        return {"ok": True, "message_ts": ts}

    def _views_open(self, args: Json) -> Json:
        view = decoded(args.get("view"))
        if (not args.get("trigger_id") and not args.get("interactivity_pointer")) or not isinstance(view, dict):
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
        self.events.append(SlackEvent("view", view=stored))
        return {"ok": True, "view": dict(stored)}

    def _views_update(self, args: Json) -> Json:
        view = decoded(args.get("view"))
        if not isinstance(view, dict):
            return {"ok": False, "error": "invalid_arguments"}
        view_id = args.get("view_id")
        if not view_id and args.get("external_id"):
            view_id = next((k for k, v in self.views.items() if v.get("external_id") == args["external_id"]), None)
        if not view_id or view_id not in self.views:
            return {"ok": False, "error": "not_found"}
        stored = {**self.views[view_id], **view, "id": view_id, "hash": f"{self.next_ts()}.{view_id}"}
        self.views[view_id] = stored
        self.events.append(SlackEvent("view", view=stored))
        return {"ok": True, "view": dict(stored)}

    def _views_publish(self, args: Json) -> Json:
        view = decoded(args.get("view"))
        user = str(args.get("user_id") or "")
        if not user or not isinstance(view, dict) or view.get("type") != "home":
            return {"ok": False, "error": "invalid_arguments"}
        stored = {**view, "id": f"VHOME{user}", "team_id": self.team_id, "hash": f"{self.next_ts()}.home"}
        self.homes[user] = stored
        return {"ok": True, "view": dict(stored)}

    def _chat_unfurl(self, args: Json) -> Json:
        unfurls = decoded(args.get("unfurls"))
        if not isinstance(unfurls, dict) or not ((args.get("channel") and args.get("ts")) or args.get("unfurl_id")):
            return {"ok": False, "error": "invalid_arguments"}
        channel, ts = str(args.get("channel") or ""), str(args.get("ts") or "")
        self.unfurls.append({"channel": channel, "ts": ts, "unfurls": unfurls})
        return {"ok": True}

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
