"""The Datadog sandbox's wire shapes: the log-search query subset, the JSON:API error
bodies and the finding fields, as Datadog's recorded answers carry them."""

from __future__ import annotations

import base64
import re
from typing import Any

from aiohttp import web

from bot.sandbox.server import json_response

# Findings endpoints answer in the JSON:API media type.
JSONAPI = "application/vnd.api+json"
# One query term: @path:value, @path:"quoted value" or @path:(v1 OR "v2" …).
_TERM = re.compile(r'@([\w.]+):(\((?:[^()"]|"(?:[^"\\]|\\.)*")*\)|"(?:[^"\\]|\\.)*"|[^\s()"]+)')
_VALUE = re.compile(r'"((?:[^"\\]|\\.)*)"|([^\s()"]+)')
_PROJECT = "959a6f71-bac8-4027-b1d3-2264f569296f"


# Recorded: a search body without ``data``.
_MISSING_DATA = {
    "errors": [
        {
            "status": "400",
            "title": "Bad Request",
            "detail": 'document is missing required top-level members; must have one of: "data", "meta", "errors"',
        }
    ]
}


def _custom_template(finding_id: str, f: dict[str, Any]) -> dict[str, Any]:
    """``attributes.attributes.custom`` of a seeded finding, with the recorded core fields."""
    try:
        rule_id, _, resource = base64.urlsafe_b64decode(finding_id.encode()).decode().partition("~")
    except (ValueError, UnicodeDecodeError):
        rule_id, resource = finding_id, ""
    seen = f["detection_changed_at"]
    return {
        "finding_id": finding_id,
        "finding_type": "misconfiguration",
        "first_seen_at": seen,
        "last_seen_at": seen,
        "resource_id": resource or finding_id,
        "resource_name": resource or finding_id,
        "resource_type": "aws_s3_bucket",
        "rule": {"id": rule_id, "default_rule_id": rule_id, "name": f["title"], "type": "cloud_configuration"},
    }


def finding_id_for(rule_id: str, resource_id: str) -> str:
    """A finding id of the real form: URL-safe base64 of ``<rule id>~<resource id>``."""
    return base64.urlsafe_b64encode(f"{rule_id}~{resource_id}".encode()).decode()


class QueryError(ValueError):
    """A findings query the tenant cannot evaluate (answered 400 like Datadog would)."""


def _jsonapi_error(status: int, title: str, detail: str | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"status": str(status), "title": title}
    if detail:
        item["detail"] = detail
    return {"errors": [item]}


def _json(body: Any, *, status: int = 200, content_type: str = JSONAPI) -> web.Response:
    return json_response(body, status=status, content_type=content_type)


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", r"\1", value)


def parse_query(query: str) -> list[tuple[str, list[str]]]:
    """Parse the subset of log-search syntax the bot uses: AND-ed ``@path:value`` terms.

    Values may be bare, double-quoted (with backslash escapes) or an ``(a OR b)`` group;
    ``*`` or an empty query matches everything. Anything else raises ``QueryError``.
    """
    text = query.strip()
    if text in ("", "*"):
        return []
    terms: list[tuple[str, list[str]]] = []
    pos = 0
    while pos < len(text):
        if text[pos].isspace():
            pos += 1
            continue
        match = _TERM.match(text, pos)
        if not match:
            raise QueryError(f"cannot parse query near {text[pos : pos + 30]!r}")
        path, raw = match.group(1), match.group(2)
        if raw.startswith("("):
            values: list[str] = []
            for part in re.split(r"\s+OR\s+", raw[1:-1].strip()):
                found = _VALUE.fullmatch(part.strip())
                if not found:
                    raise QueryError(f"cannot parse value {part!r} in {raw[1:-1]!r}")
                values.append(_unescape(found.group(1)) if found.group(1) is not None else found.group(2))
        elif raw.startswith('"'):
            values = [_unescape(raw[1:-1])]
        else:
            values = [raw]
        terms.append((path, values))
        pos = match.end()
    return terms


def _lookup(doc: dict[str, Any], path: str) -> Any:
    node: Any = doc
    for part in path.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node
