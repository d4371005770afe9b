"""Items and helpers shared by the Block Kit builder tests."""

from __future__ import annotations

import json
from typing import Any

from bot.models import ItemState, Platform, Target

TARGETS = {
    Platform.DATADOG: Target(platform=Platform.DATADOG, id="ZGVmLTAwcC1pZXJ-aS0w=="),
    Platform.KIBANA: Target(platform=Platform.KIBANA, id="8a3f2c", space="soc"),
    Platform.XPANSE: Target(platform=Platform.XPANSE, id="5471"),
}


def state(platform: Platform, **fields: Any) -> ItemState:
    values: dict[str, Any] = {
        "target": TARGETS[platform],
        "title": "Suspicious login",
        "severity": "high",
        "status": "open",
        "link": "https://example.com/item",
    }
    values.update(fields)
    return ItemState(**values)


def all_text(blocks: Any) -> str:
    return json.dumps(blocks, ensure_ascii=False)


def actions(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for b in blocks if b["type"] == "actions" for e in b["elements"]]


def button(text: str, action_id: str = "a") -> dict[str, Any]:
    return {"type": "button", "text": {"type": "plain_text", "text": text}, "action_id": action_id}
