"""manifest.yml declares exactly what the code relies on: the command, the shortcut, and the scopes."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
import yaml
from slack_sdk.web.async_base_client import AsyncBaseClient
from slack_sdk.web.async_client import AsyncWebClient

from bot.settings import Settings
from bot.slack.ids import CallbackId

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "manifest.yml"

# Every Web API method the bot calls, and the bot scopes Slack requires for it
# (api.slack.com/methods/<method>). A new call in bot/ fails the test below until it
# is listed here, so the manifest's scopes cannot silently fall behind the code.
METHOD_SCOPES: dict[str, frozenset[str]] = {
    # reporting.py, app.py: threaded replies, cards, card updates, handoff DMs.
    "chat_postMessage": frozenset({"chat:write"}),
    "chat_update": frozenset({"chat:write"}),
    "chat_postEphemeral": frozenset({"chat:write"}),
    # app.py: the Assign…/Attach…/Resolve… modals (authorised by the trigger id, no scope).
    "views_open": frozenset(),
    # identity.py: the Slack profile e-mail is what identities are looked up by; without
    # users:read.email Slack leaves profile.email out of users.info.
    "users_info": frozenset({"users:read", "users:read.email"}),
    # mappings_io.py: importing a CSV that names people by e-mail.
    "users_lookupByEmail": frozenset({"users:read.email"}),
    # reporting.py: the DM to whoever receives a handoff.
    "conversations_open": frozenset({"im:write"}),
    # runtime.py: policy rules that name user groups.
    "usergroups_users_list": frozenset({"usergroups:read"}),
    # threads.py: the CSV of every item's outcome for big jobs (files.getUploadURLExternal,
    # the upload, files.completeUploadExternal: all files:write).
    "files_upload_v2": frozenset({"files:write"}),
    # core/intake.py: after a crash, whether an uncertain alert card or digest landed
    # (public and private alert channels).
    "conversations_history": frozenset({"channels:history", "groups:history"}),
    # slack/surfaces.py: the App Home tab (no scope) and link unfurls.
    "views_publish": frozenset(),
    "chat_unfurl": frozenset({"links:write"}),
    # check, shell, serve: token check (no scope).
    "auth_test": frozenset(),
}
# The slash command and the message shortcut need `commands` whatever the code calls;
# the link_shared event needs `links:read`.
FEATURE_SCOPES = frozenset({"commands", "links:read"})
# Web API method names, as AsyncWebClient spells them.
API_METHODS = frozenset(n for n in dir(AsyncWebClient) if not n.startswith("_")) - frozenset(dir(AsyncBaseClient))


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    data = yaml.safe_load(MANIFEST.read_text())
    assert isinstance(data, dict)
    return data


def called_methods() -> set[str]:
    """The Web API methods called anywhere in bot/ (``client.chat_postMessage(`` …)."""
    found: set[str] = set()
    for path in (ROOT / "bot").rglob("*.py"):
        for name in re.findall(r"\.([A-Za-z_][A-Za-z0-9_]*)\(", path.read_text()):
            if name in API_METHODS:
                found.add(name)
    return found


def test_slash_command_escapes_mentions(manifest: dict[str, Any]) -> None:
    """/triage is declared with should_escape true, so the parser receives <@U…|name> mentions."""
    (command,) = manifest["features"]["slash_commands"]
    assert command["command"] == "/triage"
    assert command["should_escape"] is True


def test_message_shortcut_uses_the_code_callback_id(manifest: dict[str, Any]) -> None:
    """The message shortcut's callback_id is the one the listener registers on."""
    (shortcut,) = manifest["features"]["shortcuts"]
    assert shortcut["type"] == "message"
    assert shortcut["callback_id"] == CallbackId.TRIAGE_MESSAGE.value


def test_interactivity_and_socket_mode_are_on(manifest: dict[str, Any]) -> None:
    """Buttons and modals need interactivity; the default deployment runs over Socket Mode."""
    settings = manifest["settings"]
    assert settings["interactivity"]["is_enabled"] is True
    assert settings["socket_mode_enabled"] is True


def test_every_called_method_has_known_scopes() -> None:
    """Each Web API method the code calls is in METHOD_SCOPES (and the scan finds the known ones)."""
    called = called_methods()
    assert called - METHOD_SCOPES.keys() == set(), "add the new Web API method and its scopes to METHOD_SCOPES"
    # The scan must see the calls it exists to see, or it proves nothing.
    assert {"chat_postMessage", "chat_update", "views_open", "users_info", "conversations_open"} <= called


def test_bot_scopes_are_exactly_what_the_code_needs(manifest: dict[str, Any]) -> None:
    """The manifest's bot scopes equal the scopes of the methods the code calls plus `commands`."""
    needed = set(FEATURE_SCOPES)
    for method in called_methods():
        needed |= METHOD_SCOPES.get(method, frozenset())
    declared = manifest["oauth_config"]["scopes"]["bot"]
    assert len(declared) == len(set(declared)), "a scope is listed twice"
    assert set(declared) == needed
    # The README's list, spelled out: a reviewer reads this set, not the derivation.
    assert needed == {
        "commands",
        "chat:write",
        "im:write",
        "users:read",
        "users:read.email",
        "usergroups:read",
        "files:write",
        "channels:history",
        "groups:history",
        "links:read",
        "links:write",
    }


SCHEMA = ROOT.parent / "shared" / "slack" / "manifest.schema.1.0.0.json"


def test_manifest_passes_slacks_schema(manifest: dict[str, Any]) -> None:
    """manifest.yml validates against Slack's published manifest JSON Schema (unfurl domains, Home tab)."""
    if not SCHEMA.exists():
        pytest.skip("Slack's manifest schema is not beside the project")
    jsonschema.Draft7Validator(json.loads(SCHEMA.read_text())).validate(manifest)


def test_home_tab_and_unfurls_are_declared(manifest: dict[str, Any]) -> None:
    """The Home tab is on, both events are subscribed, and the unfurl domains are the settings' default."""
    assert manifest["features"]["app_home"]["home_tab_enabled"] is True
    assert {"app_home_opened", "link_shared"} <= set(manifest["settings"]["event_subscriptions"]["bot_events"])
    domains = manifest["features"]["unfurl_domains"]
    assert 1 <= len(domains) <= 5
    assert set(domains) == set(Settings.model_fields["triage_unfurl_domains"].default.split(","))
