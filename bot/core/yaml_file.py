"""Reading the bot's YAML configuration files (the policy, the on-call schedules) the same way.

``read_yaml`` refuses a missing or unreadable file, text that is not YAML and duplicate keys
(YAML would silently keep the last one), each as a ``ConfigError`` line naming the file;
``location`` words a pydantic error location as the key path a person edits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from bot.errors import ConfigError


class UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that refuses duplicate keys: YAML would silently keep the last rule."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            line = key_node.start_mark.line + 1
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (line {line})", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node)


UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_yaml(path: str, setting: str) -> Any:
    """The parsed YAML of the file ``setting`` names; ``ConfigError`` (one line) when it cannot be read."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{path}: {setting} file not found"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: cannot read {setting} file: {exc}"]) from None
    try:
        return yaml.load(text, Loader=UniqueKeyLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([f"{path}: not valid YAML{where}: {problem}"]) from None


def location(loc: tuple[int | str, ...]) -> str:
    """A pydantic error location as the key path a person edits (``schedules[0].grace``)."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "(top level)"
