"""The one builder of the payloads Slack sends an app, and of Slack's request signature.

Shapes follow Slack's own samples (``shared/slack/payloads``: bolt-python and
java-slack-sdk fixtures): a slash command is a flat dict of string form fields;
block_actions, view_submission, message_action and shortcut are JSON objects. Over
HTTP a slash command is sent as ``form_body(fields)`` and an interactive payload as
``interactive_body(payload)`` (``payload=<URL-encoded JSON>``), each signed with
``signature_headers``; in Socket Mode the same dicts travel inside ``socket_envelope``.
Used by ``triage-bot shell``, the scenario tests and the benchmark.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Mapping
from typing import Any

from slack_sdk.signature import SignatureVerifier

Json = dict[str, Any]
FORM = "application/x-www-form-urlencoded"
APP_ID = "A111"
TOKEN = "verification_token"


def signature_headers(body: str, secret: str, *, timestamp: int | None = None) -> dict[str, str]:
    """The headers Slack sends with ``body`` (v0 HMAC-SHA256 over ``v0:<ts>:<body>``)."""
    stamp = str(timestamp if timestamp is not None else int(time.time()))
    signature = SignatureVerifier(secret).generate_signature(timestamp=stamp, body=body)
    assert signature is not None
    return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": signature, "Content-Type": FORM}


def form_body(fields: Mapping[str, str]) -> str:
    """A slash command as Slack posts it over HTTP."""
    return urllib.parse.urlencode(fields)


def interactive_body(payload: Mapping[str, Any]) -> str:
    """An interactive payload as Slack posts it over HTTP: one ``payload`` form field."""
    return "payload=" + urllib.parse.quote(json.dumps(payload))


def action_ts() -> str:
    return f"{time.time():.6f}"


def slash_command(
    *,
    text: str,
    user_id: str,
    team_id: str,
    channel_id: str,
    response_url: str,
    trigger_id: str,
    command: str = "/triage",
    user_name: str = "",
    channel_name: str = "",
    team_domain: str = "",
    api_app_id: str = APP_ID,
    token: str = TOKEN,
) -> dict[str, str]:
    """A slash command's form fields (every value a string, as Slack sends them)."""
    return {
        "token": token,
        "team_id": team_id,
        "team_domain": team_domain,
        "channel_id": channel_id,
        "channel_name": channel_name,
        "user_id": user_id,
        "user_name": user_name or user_id,
        "command": command,
        "text": text,
        "api_app_id": api_app_id,
        "is_enterprise_install": "false",
        "enterprise_id": "",
        "enterprise_name": "",
        "response_url": response_url,
        "trigger_id": trigger_id,
    }


def button(action_id: str, value: str, *, block_id: str = "b", text: Json | None = None, ts: str | None = None) -> Json:
    """One entry of ``block_actions.actions``: a pressed button."""
    action: Json = {"action_id": action_id, "block_id": block_id, "value": value, "type": "button"}
    if text is not None:
        action["text"] = text
    action["action_ts"] = ts or action_ts()
    return action


def _user(user_id: str, team_id: str, name: str | None) -> Json:
    return {"id": user_id, "team_id": team_id, **({"name": name, "username": name} if name else {})}


def _team(team_id: str, domain: str | None) -> Json:
    return {"id": team_id, **({"domain": domain} if domain else {})}


def _channel(channel_id: str, name: str | None) -> Json:
    return {"id": channel_id, **({"name": name} if name else {})}


def block_actions(
    *,
    action: Json,
    user_id: str,
    team_id: str,
    channel_id: str,
    message: Json,
    response_url: str,
    trigger_id: str,
    message_ts: str | None = None,
    user_name: str | None = None,
    channel_name: str | None = None,
    team_domain: str | None = None,
    api_app_id: str = APP_ID,
    token: str = TOKEN,
) -> Json:
    """A button press on the (non-ephemeral) message ``message`` in ``channel_id``."""
    ts = message_ts or str(message.get("ts", ""))
    return {
        "type": "block_actions",
        "token": token,
        "user": _user(user_id, team_id, user_name),
        "api_app_id": api_app_id,
        "container": {"type": "message", "message_ts": ts, "channel_id": channel_id, "is_ephemeral": False},
        "trigger_id": trigger_id,
        "team": _team(team_id, team_domain),
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": _channel(channel_id, channel_name),
        "message": {"type": "message", **message, "ts": ts},
        "state": {"values": {}},
        "response_url": response_url,
        "actions": [action],
    }


def view_submission(
    *,
    view: Json,
    values: Mapping[str, Mapping[str, Any]],
    user_id: str,
    team_id: str,
    trigger_id: str,
    view_id: str | None = None,
    view_hash: str | None = None,
    user_name: str | None = None,
    team_domain: str | None = None,
    api_app_id: str = APP_ID,
    token: str = TOKEN,
) -> Json:
    """The submission of the modal ``view`` (as the bot opened it) with ``values`` as its state."""
    vid = view_id or str(view.get("id") or "V111")
    defaults: Json = {
        "type": "modal",
        "team_id": team_id,
        "private_metadata": "",
        "callback_id": "",
        "clear_on_close": False,
        "notify_on_close": False,
        "previous_view_id": None,
        "root_view_id": vid,
        "app_id": api_app_id,
        "external_id": "",
        "app_installed_team_id": team_id,
        "bot_id": "B111",
    }
    return {
        "type": "view_submission",
        "team": _team(team_id, team_domain),
        "user": _user(user_id, team_id, user_name),
        "api_app_id": api_app_id,
        "token": token,
        "trigger_id": trigger_id,
        "view": {
            **defaults,
            **view,
            "id": vid,
            "state": {"values": {k: dict(v) for k, v in values.items()}},
            "hash": view_hash or str(view.get("hash") or f"{int(time.time())}.sandbox"),
        },
        "response_urls": [],
    }


def message_action(
    *,
    callback_id: str,
    message: Json,
    user_id: str,
    team_id: str,
    channel_id: str,
    trigger_id: str,
    response_url: str,
    message_ts: str | None = None,
    user_name: str | None = None,
    channel_name: str | None = None,
    team_domain: str | None = None,
    token: str = TOKEN,
) -> Json:
    """A message shortcut (``type: message_action``) run on ``message`` in ``channel_id``."""
    user: Json = {"id": user_id, **({"name": user_name} if user_name else {})}
    return {
        "type": "message_action",
        "token": token,
        "action_ts": action_ts(),
        "team": _team(team_id, team_domain),
        "user": user,
        "channel": _channel(channel_id, channel_name),
        "callback_id": callback_id,
        "trigger_id": trigger_id,
        "message_ts": message_ts or str(message.get("ts", "")),
        "message": message,
        "response_url": response_url,
    }


def global_shortcut(*, callback_id: str, user_id: str, team_id: str, trigger_id: str, token: str = TOKEN) -> Json:
    """A global shortcut (``type: shortcut``): no channel, no response_url."""
    return {
        "type": "shortcut",
        "token": token,
        "action_ts": action_ts(),
        "team": {"id": team_id},
        "user": {"id": user_id, "team_id": team_id},
        "callback_id": callback_id,
        "trigger_id": trigger_id,
    }


def socket_envelope(kind: str, payload: Json, *, envelope_id: str) -> Json:
    """A Socket Mode envelope (``slash_commands``, ``interactive`` or ``events_api``)."""
    return {"envelope_id": envelope_id, "type": kind, "payload": payload, "accepts_response_payload": True}


def event_callback(event: Json, *, team_id: str, event_id: str, api_app_id: str = APP_ID) -> Json:
    """An Events API ``event_callback`` body wrapping ``event``."""
    return {
        "token": TOKEN,
        "team_id": team_id,
        "api_app_id": api_app_id,
        "event": event,
        "type": "event_callback",
        "event_id": event_id,
        "event_time": int(time.time()),
        "authorizations": [{"team_id": team_id, "user_id": "UBOT", "is_bot": True, "is_enterprise_install": False}],
        "is_ext_shared_channel": False,
    }


def app_home_opened(*, user_id: str, tab: str = "home", channel: str = "D0HOME") -> Json:
    """An ``app_home_opened`` event (api.slack.com/events/app_home_opened)."""
    return {
        "type": "app_home_opened",
        "user": user_id,
        "channel": channel,
        "tab": tab,
        "event_ts": f"{time.time():.6f}",
    }


def link_shared(*, user_id: str, channel: str, message_ts: str, urls: list[str]) -> Json:
    """A ``link_shared`` event for links a person pasted (api.slack.com/events/link_shared)."""
    from urllib.parse import urlsplit

    return {
        "type": "link_shared",
        "channel": channel,
        "is_bot_user_member": True,
        "user": user_id,
        "message_ts": message_ts,
        "unfurl_id": f"{channel}.{message_ts}.unfurl",
        "source": "conversations_history",
        "links": [{"domain": (urlsplit(u).hostname or "").lower(), "url": u} for u in urls],
        "event_ts": f"{time.time():.6f}",
    }
