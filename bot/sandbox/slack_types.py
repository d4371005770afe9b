"""The records of the sandbox Slack: its users, the calls it received, the events the shell shows."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, NamedTuple

Json = dict[str, Any]


class SlackCall(NamedTuple):
    """One Web API call as received (unpacks as ``method, args, headers``)."""

    method: str
    args: dict[str, Any]
    headers: dict[str, str]


@dataclass
class SlackUser:
    """A person in the sandbox workspace."""

    id: str
    team_id: str
    name: str
    email: str | None = None
    real_name: str = ""
    display_name: str = ""
    is_bot: bool = False
    deleted: bool = False
    tz: str = "Europe/London"

    def to_json(self) -> Json:
        """The user as users.info answers it."""
        first, _, last = self.real_name.partition(" ")
        profile: Json = {
            "real_name": self.real_name,
            "real_name_normalized": self.real_name,
            "display_name": self.display_name,
            "display_name_normalized": self.display_name,
            "first_name": first,
            "last_name": last,
            "status_text": "",
            "status_emoji": "",
            "avatar_hash": "g000000000",
            "image_48": "https://example.invalid/avatar_48.png",
            "team": self.team_id,
        }
        # Slack omits the key when the user has no email or the token lacks users:read.email.
        if self.email is not None:
            profile["email"] = self.email
        flags = ("is_admin", "is_owner", "is_primary_owner", "is_restricted", "is_ultra_restricted", "is_app_user")
        return {
            "id": self.id,
            "team_id": self.team_id,
            "name": self.name,
            "deleted": self.deleted,
            "color": "9f69e7",
            "real_name": self.real_name,
            "tz": self.tz,
            "tz_label": "Greenwich Mean Time",
            "tz_offset": 0,
            "profile": profile,
            **dict.fromkeys(flags, False),
            "is_bot": self.is_bot,
            "updated": 1502138686,
            "is_email_confirmed": self.email is not None,
            "has_2fa": False,
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


def decoded(value: Any) -> Any:
    """Form posts carry blocks and views as JSON strings; None when such a string is not JSON."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value
