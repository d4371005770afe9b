"""Signed Slack requests checked before Bolt sees them: what kind they are and whether the bot can use them.

``read(body, content_type)`` parses the body exactly as Bolt would (``bot.slack.forms``
gives what ``slack_bolt.request.internals.parse_body`` gives, faster), so that Bolt is handed
the parsed body instead of parsing it again, and checks the fields Bolt and the listeners
read, with the types Slack sends: a slash command's form fields, an interactive
``payload=`` object (block_actions, view_submission, view_closed, shortcut,
message_action, block_suggestion) or an Events API JSON body. It returns the kind with
the text and the parsed body (``inspect`` returns the kind alone), or raises ``Unusable``
with a short fixed ``reason`` (a metrics label) and a ``detail`` for the log. Pure: no
I/O. Unknown keys are always allowed, so a field Slack adds later changes nothing.
"""

from __future__ import annotations

import json
from typing import Any, Literal, NamedTuple

from bot.slack.forms import parse_body

Kind = Literal["command", "interactive", "event", "unknown"]
Reason = Literal["not_utf8", "not_json", "not_an_object", "unknown_type", "bad_field"]

INTERACTIVE_TYPES = frozenset(
    {"block_actions", "view_submission", "view_closed", "shortcut", "message_action", "block_suggestion"}
)
_TRIGGERED = frozenset({"block_actions", "view_submission", "shortcut", "message_action"})
EVENT_TYPES = frozenset({"url_verification", "event_callback", "app_rate_limited"})

ID_MAX = 255  # Slack ids, callback/action ids, trigger ids and timestamps are far shorter
URL_MAX = 2048
VALUE_MAX = 2000  # Slack's limit on a button's value
METADATA_MAX = 3000  # Slack's limit on a view's private_metadata
TEXT_MAX = 40_000  # a message's text; a slash command's text is much shorter


class Unusable(Exception):
    """A signed request the bot cannot use: ``reason`` is one of a few labels, ``detail`` says where."""

    def __init__(self, kind: Kind, reason: Reason, detail: str) -> None:
        super().__init__(f"{kind}: {reason}: {detail}")
        self.kind: Kind = kind
        self.reason: Reason = reason
        self.detail = detail


class _Check:
    """Field checks on one decoded object, naming the path of the first bad field."""

    def __init__(self, kind: Kind) -> None:
        self.kind = kind

    def bad(self, detail: str) -> Unusable:
        return Unusable(self.kind, "bad_field", detail)

    def obj(self, parent: dict[str, Any], key: str, where: str, *, required: bool = True) -> dict[str, Any] | None:
        value = parent.get(key)
        if value is None and not required:
            return None
        if not isinstance(value, dict):
            raise self.bad(f"{where}{key} is {_what(value)}, not an object")
        return value

    def text(
        self, parent: dict[str, Any], key: str, where: str, *, required: bool = True, limit: int = ID_MAX
    ) -> str | None:
        value = parent.get(key)
        if value is None and not required:
            return None
        if not isinstance(value, str) or (required and not value):
            raise self.bad(f"{where}{key} is {_what(value)}, not a non-empty string")
        if len(value) > limit:
            raise self.bad(f"{where}{key} is {len(value)} characters (limit {limit})")
        return value

    def strings(self, parent: dict[str, Any], keys: tuple[str, ...], where: str, *, limit: int = ID_MAX) -> None:
        """Optional string fields: absent or null is fine, anything else must be a short string."""
        for key in keys:
            self.text(parent, key, where, required=False, limit=limit)


def _what(value: Any) -> str:
    if value is None:
        return "missing"
    if isinstance(value, str):
        return "an empty string" if not value else "a string"
    return f"a {type(value).__name__}"


class Inbound(NamedTuple):
    """A usable signed request: its kind, its text and its body as Bolt reads it."""

    kind: Kind
    text: str
    body: dict[str, Any]


def inspect(body: bytes, content_type: str | None) -> Kind:
    """The kind of a signed Slack request, or ``Unusable`` saying why the bot cannot use it."""
    return read(body, content_type).kind


def read(body: bytes, content_type: str | None) -> Inbound:
    """A signed Slack request checked and parsed, or ``Unusable`` saying why the bot cannot use it."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Unusable("unknown", "not_utf8", f"byte {exc.start} is not UTF-8") from None
    kind: Kind = "unknown"
    if text.lstrip().startswith("{") or content_type == "application/json":
        kind = "event"
    elif "payload=" in text or text.startswith("payload"):
        kind = "interactive"
    elif "command=" in text:
        kind = "command"
    try:
        parsed: Any = parse_body(text, content_type)
    except ValueError as exc:  # json.JSONDecodeError is a ValueError
        raise Unusable(kind, "not_json", str(exc)[:200]) from None
    if not isinstance(parsed, dict) or not parsed:
        raise Unusable(kind, "not_an_object", f"the body decodes to {_what(parsed) if parsed != {} else 'nothing'}")
    if "ssl_check" in parsed:
        return Inbound("command", text, parsed)  # Slack's check of the endpoint; Bolt answers it
    _bolt_context(kind, parsed)
    if "command" in parsed and "payload" not in text:
        _command(parsed)
        return Inbound("command", text, parsed)
    if kind == "interactive":
        _interactive(parsed)
        return Inbound("interactive", text, parsed)
    if kind == "event":
        _event(parsed)
        return Inbound("event", text, parsed)
    raise Unusable("unknown", "unknown_type", "neither a slash command, an interactive payload nor an event")


# Where Bolt's context builder (slack_bolt.request.internals.build_context) looks for ids,
# and reads each as a string or as an object with an "id".
_ID_HOLDERS = ("team", "user", "channel", "enterprise")
_NESTED = ("event", "message", "previous_message", "item", "assistant_thread", "view", "function_data")


def _bolt_context(kind: Kind, body: dict[str, Any], depth: int = 0) -> None:
    """The shapes Bolt assumes before any listener runs (it raises on anything else)."""
    check = _Check(kind)
    for key in _ID_HOLDERS:
        value = body.get(key)
        if value is not None and not isinstance(value, str | dict):
            raise check.bad(f"{key} is {_what(value)}, not a string or an object")
    for key in _NESTED:
        value = body.get(key)
        if value is not None and not isinstance(value, dict):
            raise check.bad(f"{key} is {_what(value)}, not an object")
        if isinstance(value, dict) and depth < 2:
            _bolt_context(kind, value, depth + 1)
    for key in ("authorizations", "response_urls"):
        value = body.get(key)
        if value is not None and not (isinstance(value, list) and all(isinstance(v, dict) for v in value)):
            raise check.bad(f"{key} is {_what(value)}, not a list of objects")


def _command(fields: dict[str, Any]) -> None:
    check = _Check("command")
    for key in ("command", "team_id", "user_id", "channel_id", "trigger_id"):
        check.text(fields, key, "")
    check.text(fields, "text", "", required=False, limit=TEXT_MAX)
    check.text(fields, "response_url", "", required=False, limit=URL_MAX)
    if not str(fields["command"]).startswith("/"):
        raise check.bad("command does not start with /")


def _interactive(payload: dict[str, Any]) -> None:
    check = _Check("interactive")
    kind = payload.get("type")
    if not isinstance(kind, str) or kind not in INTERACTIVE_TYPES:
        shown = json.dumps(kind)[:60] if isinstance(kind, str) else _what(kind)
        raise Unusable("interactive", "unknown_type", f"type is {shown}")
    user = check.obj(payload, "user", "")
    assert user is not None
    check.text(user, "id", "user.")
    check.strings(user, ("team_id", "name", "username"), "user.")
    team = check.obj(payload, "team", "", required=False)
    if team is not None:
        check.strings(team, ("id", "domain", "enterprise_id"), "team.")
    enterprise = payload.get("enterprise")
    if enterprise is not None and not isinstance(enterprise, dict | str):
        raise check.bad(f"enterprise is {_what(enterprise)}")
    check.strings(payload, ("api_app_id", "token", "trigger_id", "action_ts", "message_ts"), "")
    check.text(payload, "response_url", "", required=False, limit=URL_MAX)
    for key in ("channel", "container", "message", "state"):
        place = check.obj(payload, key, "", required=False)
        if place is not None and key in ("channel", "container"):
            check.strings(place, ("id", "name", "type", "channel_id", "message_ts", "thread_ts", "view_id"), f"{key}.")
    message = payload.get("message")
    if isinstance(message, dict):
        check.strings(message, ("ts", "thread_ts", "type", "user", "bot_id"), "message.")
        check.text(message, "text", "message.", required=False, limit=TEXT_MAX)
        blocks = message.get("blocks")
        if blocks is not None and not isinstance(blocks, list):
            raise check.bad(f"message.blocks is {_what(blocks)}, not a list")
    if kind in _TRIGGERED:
        check.text(payload, "trigger_id", "")  # Slack always sends one; a modal opens with it
    if kind == "block_actions":
        _actions(check, payload)
    elif kind in ("view_submission", "view_closed"):
        _view(check, payload, submitted=kind == "view_submission")
    elif kind in ("shortcut", "message_action"):
        check.text(payload, "callback_id", "")
        if kind == "message_action":
            check.obj(payload, "message", "")
            channel = check.obj(payload, "channel", "")
            assert channel is not None
            check.text(channel, "id", "channel.")
    else:  # block_suggestion
        check.text(payload, "action_id", "")
        check.strings(payload, ("block_id",), "")
        check.text(payload, "value", "", required=False, limit=VALUE_MAX)
    view = payload.get("view")
    if kind not in ("view_submission", "view_closed") and view is not None:
        _view(check, payload, submitted=False)


def _actions(check: _Check, payload: dict[str, Any]) -> None:
    actions = payload.get("actions")
    if not isinstance(actions, list) or not actions:
        raise check.bad(f"actions is {_what(actions)}, not a non-empty list")
    for n, act in enumerate(actions):
        if not isinstance(act, dict):
            raise check.bad(f"actions[{n}] is {_what(act)}, not an object")
        check.text(act, "action_id", f"actions[{n}].")
        check.strings(act, ("block_id", "action_ts"), f"actions[{n}].")
        check.obj(act, "text", f"actions[{n}].", required=False)
        _element_state(check, act, f"actions[{n}].")


def _view(check: _Check, payload: dict[str, Any], *, submitted: bool) -> None:
    view = check.obj(payload, "view", "")
    assert view is not None
    check.text(view, "type", "view.")  # Bolt reads view.type of every submission
    check.strings(view, ("id", "hash", "callback_id", "external_id", "root_view_id", "team_id"), "view.")
    if submitted:
        check.text(view, "callback_id", "view.")
    check.text(view, "private_metadata", "view.", required=False, limit=METADATA_MAX)
    state = check.obj(view, "state", "view.", required=submitted)
    if state is None:
        return
    values = check.obj(state, "values", "view.state.", required=submitted)
    for block_id, inputs in (values or {}).items():
        if not isinstance(inputs, dict):
            raise check.bad(f"view.state.values.{block_id[:40]} is {_what(inputs)}, not an object")
        for action_id, value in inputs.items():
            where = f"view.state.values.{block_id[:40]}.{action_id[:40]}"
            if not isinstance(value, dict):
                raise check.bad(f"{where} is {_what(value)}, not an object")
            _element_state(check, value, f"{where}.")


_SELECTED_IDS = ("selected_user", "selected_channel", "selected_conversation", "selected_date", "selected_time")
_SELECTED_LISTS = ("selected_users", "selected_channels", "selected_conversations")


def _element_state(check: _Check, element: dict[str, Any], where: str) -> None:
    """What an interactive element reports (in an action or a view's state), typed as Slack sends it."""
    check.strings(element, ("type", *_SELECTED_IDS), where)
    check.text(element, "value", where, required=False, limit=max(VALUE_MAX, METADATA_MAX))
    for key in _SELECTED_LISTS:
        ids = element.get(key)
        if ids is not None and not (
            isinstance(ids, list) and all(isinstance(i, str) and len(i) <= ID_MAX for i in ids)
        ):
            raise check.bad(f"{where}{key} is not a list of ids")
    options = [element.get("selected_option")]
    many = element.get("selected_options")
    if many is not None:
        if not isinstance(many, list):
            raise check.bad(f"{where}selected_options is {_what(many)}, not a list")
        options += many
    for option in options:
        if option is None:
            continue
        if not isinstance(option, dict):
            raise check.bad(f"{where}selected_option is {_what(option)}, not an object")
        check.text(option, "value", f"{where}selected_option.", required=False, limit=VALUE_MAX)
        check.obj(option, "text", f"{where}selected_option.", required=False)


def _event(body: dict[str, Any]) -> None:
    check = _Check("event")
    kind = body.get("type")
    if not isinstance(kind, str) or kind not in EVENT_TYPES:
        shown = json.dumps(kind)[:60] if isinstance(kind, str) else _what(kind)
        raise Unusable("event", "unknown_type", f"type is {shown}")
    check.strings(body, ("token", "team_id", "api_app_id", "event_id", "enterprise_id"), "")
    if kind == "url_verification":
        check.text(body, "challenge", "", limit=VALUE_MAX)
    elif kind == "event_callback":
        event = check.obj(body, "event", "")
        assert event is not None
        check.text(event, "type", "event.")
        check.strings(event, ("subtype", "event_ts"), "event.")
