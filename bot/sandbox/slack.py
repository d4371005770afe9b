"""An in-process Slack Web API for ``triage-bot shell``: it keeps what the bot posts.

The bot's ``AsyncWebClient`` points here (``base_url``), so chat.postMessage,
chat.update, chat.postEphemeral, views.open/update and conversations.open are
answered like Slack answers them and recorded as ``SlackEvent`` s for the shell to
render; ``/webhook/<id>`` stands in for ``response_url``. User look-ups
(users.info, users.lookupByEmail, usergroups.users.list, auth.test) answer from
the sandbox directory or, when ``upstream`` is given (a real bot token is
configured), from the real workspace, so identities resolve as in production.
"""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.sandbox.server import SandboxServer, json_response

Json = dict[str, Any]
# Read-only methods forwarded to the real workspace when there is one.
UPSTREAM_METHODS = frozenset({"users.info", "users.lookupByEmail", "usergroups.users.list", "auth.test"})


@dataclass
class SlackUser:
    """A person in the sandbox workspace."""

    id: str
    name: str
    email: str
    real_name: str

    def to_json(self, team_id: str) -> Json:
        return {
            "id": self.id,
            "team_id": team_id,
            "name": self.name,
            "real_name": self.real_name,
            "deleted": False,
            "is_bot": False,
            "tz": "UTC",
            "profile": {"email": self.email, "real_name": self.real_name, "display_name": self.name},
        }


@dataclass
class SlackEvent:
    """Something the bot did in Slack, in order: ``kind`` is post, update, ephemeral, response, view."""

    kind: str
    channel: str | None = None
    ts: str | None = None
    thread_ts: str | None = None
    text: str = ""
    blocks: list[Json] = field(default_factory=list)
    view: Json | None = None


class SlackSandbox(SandboxServer):
    """The Web API subset the bot uses, recording every message and modal."""

    name = "Slack"

    def __init__(self, *, token: str, team_id: str = "T0SANDBOX", upstream: AsyncWebClient | None = None) -> None:
        super().__init__()
        self.token = token
        self.team_id = team_id
        self.upstream = upstream
        self.users: dict[str, SlackUser] = {}
        self.messages: dict[tuple[str, str], Json] = {}
        self.views: dict[str, Json] = {}
        self.events: list[SlackEvent] = []
        self.calls: list[tuple[str, Json]] = []
        self._seq = itertools.count(1)
        self._base = int(time.time())

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/"

    def webhook_url(self, name: str) -> str:
        return f"{self.url}/webhook/{name}"

    def add_user(self, user_id: str, name: str, email: str, real_name: str) -> None:
        self.users[user_id] = SlackUser(user_id, name, email, real_name)

    def user_named(self, name: str) -> SlackUser | None:
        """The sandbox user called ``name`` (handle, first name or email), if any."""
        wanted = name.lower().lstrip("@")
        for user in self.users.values():
            if wanted in (user.id.lower(), user.name.lower(), user.email.lower(), user.real_name.split()[0].lower()):
                return user
        return None

    def _ts(self) -> str:
        return f"{self._base}.{next(self._seq):06d}"

    async def handle(self, request: web.Request, body: Any) -> web.StreamResponse:
        if request.path.startswith("/webhook/"):
            payload = body if isinstance(body, dict) else {}
            self.events.append(
                SlackEvent("response", text=str(payload.get("text") or ""), blocks=list(payload.get("blocks") or []))
            )
            return web.Response(text="ok")
        if not request.path.startswith("/api/"):
            return web.Response(status=404)
        method = request.path.removeprefix("/api/")
        args: Json = dict(request.query)
        if isinstance(body, dict):
            args.update(body)
        elif isinstance(body, str) and body:  # a form post (the base class read the body already)
            args.update(dict(parse_qsl(body)))
        for key in ("blocks", "view"):
            if isinstance(args.get(key), str):
                try:
                    args[key] = json.loads(args[key])
                except ValueError:
                    return json_response({"ok": False, "error": f"invalid_{key}"})
        self.calls.append((method, args))
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return json_response({"ok": False, "error": "invalid_auth"})
        if self.upstream is not None and method in UPSTREAM_METHODS:
            try:
                answer = await self.upstream.api_call(method, http_verb="GET", params=args)
                return json_response(dict(answer.data) if isinstance(answer.data, dict) else {"ok": False})
            except SlackApiError as exc:
                return json_response(dict(exc.response.data) if isinstance(exc.response.data, dict) else {"ok": False})
        handler = getattr(self, "_" + method.replace(".", "_"), None)
        if handler is None:
            return json_response({"ok": False, "error": "unknown_method"})
        return json_response(handler(args))

    # ---- methods ----------------------------------------------------------------------

    def _auth_test(self, args: Json) -> Json:
        return {
            "ok": True,
            "team": "Sandbox",
            "user": "triage",
            "team_id": self.team_id,
            "user_id": "U0TRIAGEBOT",
            "bot_id": "B0TRIAGEBOT",
            "url": "https://sandbox.slack.invalid/",
        }

    def _users_info(self, args: Json) -> Json:
        user = self.users.get(str(args.get("user")))
        return {"ok": True, "user": user.to_json(self.team_id)} if user else {"ok": False, "error": "user_not_found"}

    def _users_lookupByEmail(self, args: Json) -> Json:
        email = str(args.get("email", "")).lower()
        user = next((u for u in self.users.values() if u.email.lower() == email), None)
        return {"ok": True, "user": user.to_json(self.team_id)} if user else {"ok": False, "error": "users_not_found"}

    def _usergroups_users_list(self, args: Json) -> Json:
        return {"ok": False, "error": "no_such_subteam"}

    def _conversations_open(self, args: Json) -> Json:
        users = str(args.get("users", "")).split(",")
        return {"ok": True, "channel": {"id": "D" + users[0][1:]}}

    def _chat_postMessage(self, args: Json) -> Json:
        channel = str(args.get("channel") or "")
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        if not args.get("text") and not args.get("blocks"):
            return {"ok": False, "error": "no_text"}
        ts = self._ts()
        message = {
            "type": "message",
            "ts": ts,
            "text": args.get("text", ""),
            "blocks": args.get("blocks") or [],
            "thread_ts": args.get("thread_ts") or None,
        }
        self.messages[(channel, ts)] = message
        self.events.append(SlackEvent("post", channel, ts, message["thread_ts"], message["text"], message["blocks"]))
        return {"ok": True, "channel": channel, "ts": ts, "message": message}

    def _chat_update(self, args: Json) -> Json:
        key = (str(args.get("channel")), str(args.get("ts")))
        message = self.messages.get(key)
        if message is None:
            return {"ok": False, "error": "message_not_found"}
        message.update({k: args[k] for k in ("text", "blocks") if k in args})
        self.events.append(
            SlackEvent(
                "update", key[0], key[1], message.get("thread_ts"), message.get("text", ""), message.get("blocks") or []
            )
        )
        return {"ok": True, "channel": key[0], "ts": key[1], "message": message}

    def _chat_postEphemeral(self, args: Json) -> Json:
        ts = self._ts()
        self.events.append(
            SlackEvent(
                "ephemeral",
                str(args.get("channel")),
                ts,
                args.get("thread_ts"),
                str(args.get("text") or ""),
                list(args.get("blocks") or []),
            )
        )
        return {"ok": True, "message_ts": ts}

    def _views_open(self, args: Json) -> Json:
        view = args.get("view")
        if not isinstance(view, dict) or not args.get("trigger_id"):
            return {"ok": False, "error": "invalid_arguments"}
        view_id = f"V{next(self._seq):08d}"
        stored = {
            **view,
            "id": view_id,
            "hash": f"{self._base}.{view_id}",
            "team_id": self.team_id,
            "state": {"values": {}},
        }
        self.views[view_id] = stored
        self.events.append(SlackEvent("view", view=stored))
        return {"ok": True, "view": stored}

    def _views_update(self, args: Json) -> Json:
        view_id = str(args.get("view_id") or "")
        if view_id not in self.views or not isinstance(args.get("view"), dict):
            return {"ok": False, "error": "not_found"}
        self.views[view_id] = {**self.views[view_id], **args["view"], "id": view_id}
        self.events.append(SlackEvent("view", view=self.views[view_id]))
        return {"ok": True, "view": self.views[view_id]}
