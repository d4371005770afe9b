"""Configuration, read once from the environment (and a ``.env`` file).

Names follow each ecosystem's conventions (``SLACK_BOT_TOKEN``, ``DD_API_KEY``,
``KIBANA_URL``, ``XPANSE_API_KEY`` …). A platform without credentials is
disabled rather than an error; a half-configured one, or a malformed value,
fails at start with one line per problem. Every secret is a ``SecretStr`` so
that it never appears in a repr, a log line or a traceback.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, BeforeValidator, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.errors import ConfigError
from bot.models import Platform
from bot.rules import DEFAULT_KIBANA_SPACE, DatadogSite

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")


def _seconds(value: Any) -> Any:
    """``90``, ``"90s"``, ``"5m"``, ``"24h"`` or ``"1d"`` as seconds (a float)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    found = _DURATION.match(str(value))
    if not found:
        raise ValueError(f"{value!r} is not a duration like 90s, 5m, 24h or a number of seconds")
    return float(found.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[found.group(2) or "s"]


Seconds = Annotated[float, BeforeValidator(_seconds)]


class HttpPolicy(BaseModel):
    """Timeouts and retry budget shared by every platform client."""

    timeout: float = 10.0
    connect_timeout: float = 5.0
    retry_attempts: int = 5
    retry_timeout: float = 30.0
    retry_wait_initial: float = 0.2
    retry_wait_max: float = 8.0
    concurrency: int = 8


class DatadogConfig(BaseModel):
    api_url: str
    api_key: SecretStr
    app_key: SecretStr
    site: str
    http: HttpPolicy


class KibanaConfig(BaseModel):
    url: str
    api_key: SecretStr
    default_space: str
    spaces: list[str]
    es_url: str | None
    es_api_key: SecretStr | None
    http: HttpPolicy
    # After each write from Slack, note on the alert who asked (an API key writes as nobody).
    notes: bool = True


class XpanseConfig(BaseModel):
    api_url: str
    api_key: SecretStr
    api_key_id: str
    auth: Literal["standard", "advanced"]
    rate_limit: float
    http: HttpPolicy


class PagerDutyConfig(BaseModel):
    api_url: str
    api_key: SecretStr
    http: HttpPolicy


class SlackConfig(BaseModel):
    bot_token: SecretStr | None
    signing_secret: SecretStr | None
    app_token: SecretStr | None
    api_url: str


def _strip_slash(value: str | None) -> str | None:
    return value.rstrip("/") if value else value


class Settings(BaseSettings):
    """Every setting of the bot; see README "Configuration" for the reference."""

    # A variable set but empty (``TRIAGE_WEBHOOK_TOKEN=`` in an env file) counts as unset: an empty
    # token or signing secret must never be a credential that any empty header matches.
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False, env_ignore_empty=True
    )

    # Slack
    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"

    # Datadog
    dd_api_key: SecretStr | None = None
    dd_app_key: SecretStr | None = None
    dd_site: DatadogSite = "datadoghq.com"
    dd_api_url: str | None = None

    # Kibana / Elasticsearch
    kibana_url: str | None = None
    kibana_api_key: SecretStr | None = None
    kibana_space: str = DEFAULT_KIBANA_SPACE
    kibana_spaces: str = ""
    kibana_notes: bool = True  # KIBANA_NOTES=off: no attribution notes on alerts
    elasticsearch_url: str | None = None
    elasticsearch_api_key: SecretStr | None = None

    # Cortex Xpanse
    xpanse_api_url: str | None = None
    xpanse_api_key: SecretStr | None = None
    xpanse_api_key_id: str | None = None
    xpanse_auth: Literal["standard", "advanced"] = "standard"
    xpanse_rate_limit: float = Field(default=5.0, gt=0)

    # PagerDuty (a schedule source for on-call handoffs)
    pagerduty_api_key: SecretStr | None = None
    pagerduty_api_url: str = "https://api.pagerduty.com"

    # The bot itself
    triage_db: str = "triage.db"
    triage_policy: str | None = None
    triage_oncall: str | None = None
    triage_webhook_token: SecretStr | None = None
    triage_webhook_secret: SecretStr | None = None
    triage_webhook_max_bytes: int = Field(default=256 * 1024, gt=0)
    triage_alert_channel: str | None = None
    # JSON object: {"datadog": "C1", "kibana:critical": "C2"} (platform[:severity] -> channel)
    triage_alert_routes: dict[str, str] = Field(default_factory=dict)
    triage_http_timeout: float = Field(default=10.0, gt=0)
    triage_retry_attempts: int = Field(default=5, ge=1, le=20)
    triage_retry_timeout: float = Field(default=30.0, gt=0)
    triage_workers: int = Field(default=4, ge=1, le=64)
    # More alerts than this waiting for one channel: post a digest instead of cards.
    triage_digest_after: int = Field(default=10, ge=0, le=1000)
    # Seconds between two chat.postMessage calls of the poster to one channel (Slack: ~1/s).
    triage_post_interval: float = Field(default=1.0, ge=0, le=60)
    # Live cards (posted or updated this recently) are re-read every interval and redrawn on change.
    triage_reconcile_window: Seconds = Field(default=86400.0, gt=0)
    triage_reconcile_interval: Seconds = Field(default=300.0, ge=1)
    # Cards at or above this severity still unassigned this long after posting get one nudge ("off": none).
    triage_remind_severity: str = "high"
    triage_remind_after: Seconds = Field(default=1800.0, ge=0)
    triage_shutdown_timeout: float = Field(default=20.0, gt=0)
    # serve's process model: "split" = web here plus one worker child; "all" = both in one process.
    triage_role: Literal["split", "all", "web", "worker"] = "split"
    triage_worker_poll: float = Field(default=0.05, gt=0, le=60)
    triage_worker_lease: float = Field(default=30.0, ge=1)
    # An idle worker woken by a stored job first waits until none was stored for this long (at
    # most ten times it), so a burst is acknowledged before its jobs start (0: start at once).
    triage_worker_settle: float = Field(default=0.02, ge=0, le=1)
    # How much lower the split worker child runs than the web process (os.nice): acks go first.
    triage_worker_nice: int = Field(default=10, ge=0, le=19)
    # Seconds an Undo button stays on a result (0: no Undo).
    triage_undo_seconds: int = Field(default=30, ge=0, le=3600)
    # Comma-separated host names whose pasted links the bot unfurls (the manifest lists at most five).
    triage_unfurl_domains: str = "app.datadoghq.com,kibana.example.com,xpanse.example.com"
    port: int = Field(default=3000, ge=0, le=65535)
    log_level: Literal["debug", "info", "warning", "error", "DEBUG", "INFO", "WARNING", "ERROR"] = "info"
    log_format: Literal["auto", "json", "console"] = "auto"

    # Filled by the "before" validator for load_settings to report beside any field errors.
    _pair_problems: ClassVar[list[str]] = []

    _normalise_urls = field_validator(
        "dd_api_url", "kibana_url", "elasticsearch_url", "xpanse_api_url", "pagerduty_api_url", mode="after"
    )(_strip_slash)

    @field_validator(
        "dd_api_url", "kibana_url", "elasticsearch_url", "xpanse_api_url", "slack_api_url", "pagerduty_api_url"
    )
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError(f"must be an http(s) URL, got {value!r}")
        return value

    @model_validator(mode="before")
    @classmethod
    def _pairs_complete(cls, data: Any) -> Any:
        """Refuse half-configured platforms; runs on the raw values, so a bad value elsewhere
        (say DD_SITE) does not hide a missing partner variable: every problem is reported."""
        if not isinstance(data, dict):
            return data
        have = {k.lower(): v for k, v in data.items() if v not in (None, "")}
        problems: list[str] = []
        pairs = [
            ("dd_api_key", ["dd_app_key"]),
            ("dd_app_key", ["dd_api_key"]),
            ("kibana_url", ["kibana_api_key"]),
            ("kibana_api_key", ["kibana_url"]),
            ("elasticsearch_url", ["elasticsearch_api_key"]),
            ("xpanse_api_key", ["xpanse_api_url", "xpanse_api_key_id"]),
            ("xpanse_api_url", ["xpanse_api_key"]),
        ]
        for name, needs in pairs:
            if name in have:
                problems.extend(
                    f"{other.upper()} is required when {name.upper()} is set" for other in needs if other not in have
                )
        routes = have.get("triage_alert_routes")
        if isinstance(routes, dict):
            for key in routes:
                platform = str(key).partition(":")[0]
                if platform not in {p.value for p in Platform}:
                    problems.append(f"TRIAGE_ALERT_ROUTES: unknown platform {platform!r} in key {key!r}")
        Settings._pair_problems = problems
        return data

    @model_validator(mode="after")
    def _refuse_half_configured(self) -> Settings:
        # Reached only when every field is valid; a direct Settings() is refused too.
        if Settings._pair_problems:
            raise ValueError("; ".join(Settings._pair_problems))
        return self

    # ---- derived, per-platform views -------------------------------------------------

    @property
    def unfurl_domains(self) -> frozenset[str]:
        """The host names in ``TRIAGE_UNFURL_DOMAINS``, lower case."""
        return frozenset(d.strip().lower() for d in self.triage_unfurl_domains.split(",") if d.strip())

    @property
    def http(self) -> HttpPolicy:
        return HttpPolicy(
            timeout=self.triage_http_timeout,
            retry_attempts=self.triage_retry_attempts,
            retry_timeout=self.triage_retry_timeout,
        )

    @property
    def slack(self) -> SlackConfig:
        url = self.slack_api_url if self.slack_api_url.endswith("/") else self.slack_api_url + "/"
        return SlackConfig(
            bot_token=self.slack_bot_token,
            signing_secret=self.slack_signing_secret,
            app_token=self.slack_app_token,
            api_url=url,
        )

    @property
    def datadog(self) -> DatadogConfig | None:
        if not (self.dd_api_key and self.dd_app_key):
            return None
        return DatadogConfig(
            api_url=self.dd_api_url or f"https://api.{self.dd_site}",
            api_key=self.dd_api_key,
            app_key=self.dd_app_key,
            site=self.dd_site,
            http=self.http,
        )

    @property
    def kibana(self) -> KibanaConfig | None:
        if not (self.kibana_url and self.kibana_api_key):
            return None
        extra = [s.strip() for s in self.kibana_spaces.split(",") if s.strip()]
        # The default space first, then the others once each, in the order given.
        spaces = list(dict.fromkeys([self.kibana_space, *extra]))
        return KibanaConfig(
            url=self.kibana_url,
            api_key=self.kibana_api_key,
            default_space=self.kibana_space,
            spaces=spaces,
            es_url=self.elasticsearch_url,
            es_api_key=self.elasticsearch_api_key,
            http=self.http,
            notes=self.kibana_notes,
        )

    @property
    def xpanse(self) -> XpanseConfig | None:
        if not (self.xpanse_api_url and self.xpanse_api_key and self.xpanse_api_key_id):
            return None
        return XpanseConfig(
            api_url=self.xpanse_api_url,
            api_key=self.xpanse_api_key,
            api_key_id=self.xpanse_api_key_id,
            auth=self.xpanse_auth,
            rate_limit=self.xpanse_rate_limit,
            http=self.http,
        )

    @property
    def pagerduty(self) -> PagerDutyConfig | None:
        if not self.pagerduty_api_key:
            return None
        return PagerDutyConfig(api_url=self.pagerduty_api_url, api_key=self.pagerduty_api_key, http=self.http)

    @property
    def configured_platforms(self) -> list[Platform]:
        cfg = {Platform.DATADOG: self.datadog, Platform.KIBANA: self.kibana, Platform.XPANSE: self.xpanse}
        return [p for p, c in cfg.items() if c is not None]


def load_settings(**overrides: object) -> Settings:
    """Read the settings; raise ``ConfigError`` with one line per problem when invalid."""
    Settings._pair_problems = []
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = list(Settings._pair_problems)
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"]).upper()
            msg = err["msg"].removeprefix("Value error, ")
            if loc:
                problems.append(f"{loc}: {msg}")
            else:
                problems.extend(m.strip() for m in msg.split(";"))
        raise ConfigError(list(dict.fromkeys(problems))) from None
    return settings
