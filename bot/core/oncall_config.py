"""The on-call schedules file named by ``TRIAGE_ONCALL``, validated at start like the policy::

    schedules:
      - name: secops-primary
        source: pagerduty          # or datadog
        id: PABC123
        channel: C0SECOPS          # where previews and summaries go
        mode: confirm              # or auto
        grace: 15m                 # auto: applied after this unless cancelled
        platforms: [datadog, kibana, xpanse]
    poll: 60s

Durations are a number with ``s``, ``m`` or ``h``. ``platforms`` defaults to every one.
``load_oncall`` raises ``ConfigError`` with one line per problem, each naming the file and
the key path, including a schedule whose source has no credentials.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from bot.core.policy import ChannelId
from bot.core.yaml_file import location, read_yaml
from bot.errors import ConfigError
from bot.models import Platform

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h)\s*$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
MIN_POLL = timedelta(seconds=10)


def _duration(value: Any) -> Any:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    found = _DURATION.match(str(value))
    if not found:
        raise ValueError(f"{value!r} is not a duration like 60s, 15m or 1h")
    number, unit = float(found.group(1)), found.group(2)
    return timedelta(seconds=number * {"s": 1, "m": 60, "h": 3600}[unit])


Duration = Annotated[timedelta, BeforeValidator(_duration)]


class Schedule(BaseModel):
    """One watched schedule."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    source: Literal["pagerduty", "datadog"]
    id: str = Field(min_length=1)
    channel: ChannelId
    mode: Literal["confirm", "auto"] = "confirm"
    grace: Duration = timedelta(minutes=15)
    platforms: list[Platform] = Field(default_factory=lambda: list(Platform))

    @model_validator(mode="after")
    def _shape(self) -> Schedule:
        if not _NAME.match(self.name):
            raise ValueError(f"name {self.name!r} must be lower-case letters, digits, '-', '_' or '.'")
        if not self.platforms:
            raise ValueError("platforms is empty: name at least one of datadog, kibana, xpanse")
        return self


class OnCallConfig(BaseModel):
    """Every watched schedule and how often to poll them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schedules: list[Schedule] = Field(default_factory=list)
    poll: Duration = timedelta(seconds=60)

    @model_validator(mode="after")
    def _unique(self) -> OnCallConfig:
        names = [s.name for s in self.schedules]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"schedule names must be unique; repeated: {', '.join(twice)}")
        if self.poll < MIN_POLL:
            raise ValueError(f"poll {self.poll.total_seconds():g}s is too often; use at least 10s")
        return self

    def get(self, name: str) -> Schedule | None:
        return next((s for s in self.schedules if s.name == name), None)


def load_oncall(path: str | None, *, sources: Collection[str] = ("pagerduty", "datadog")) -> OnCallConfig:
    """Read the schedules file (``None``: no schedules); ``sources`` are the schedule APIs
    that have credentials. Raises ``ConfigError`` with one line per problem."""
    if path is None:
        return OnCallConfig()
    data = read_yaml(path, "TRIAGE_ONCALL")
    if not isinstance(data, dict):
        raise ConfigError([f"{path}: the top level must be a mapping with keys 'schedules' and 'poll'"])
    try:
        config = OnCallConfig.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"].removeprefix("Value error, ")
            problems.append(f"{path}: {location(tuple(err['loc']))}: {msg}")
        raise ConfigError(problems) from None
    need = {"pagerduty": "PAGERDUTY_API_KEY", "datadog": "DD_API_KEY and DD_APP_KEY"}
    missing = [
        f"{path}: schedules[{i}] ({s.name}): source {s.source} needs {need[s.source]}"
        for i, s in enumerate(config.schedules)
        if s.source not in sources
    ]
    if missing:
        raise ConfigError(missing)
    return config
