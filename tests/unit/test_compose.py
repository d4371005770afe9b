"""docker-compose.yml runs two replicas on PostgreSQL, with every secret coming from .env.

.env.example is the list an operator fills in: each name in it must be one that the bot's
settings or the compose file read, so no line in it does nothing.
"""

from __future__ import annotations

import re
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import SecretStr

from bot.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"

SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|KEY|CREDENTIAL", re.IGNORECASE)
# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?message}, ${NAME?message}
REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(?::?[-?])[^}]*)?\}")
# A URL with a password in it: scheme://user:password@host
URL_PASSWORD = re.compile(r"://[^/:@\s]+:([^@\s]*)@")
ENV_LINE = re.compile(r"^\s*#?\s*([A-Z][A-Z0-9_]*)=(.*)$")
# What real Slack credentials look like (a bot, user, app or configuration token).
SLACK_TOKEN = re.compile(r"\bx(?:ox[abpre]|app)-[A-Za-z0-9-]+")


def load(path: Path = COMPOSE) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict)
    return data


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's ``environment`` as a dict, from either of compose's two forms."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.partition("=")[::2] for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def env_files(service: dict[str, Any]) -> list[str]:
    files = service.get("env_file") or []
    entries = files if isinstance(files, list) else [files]
    return [e["path"] if isinstance(e, dict) else str(e) for e in entries]


def bot_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services that run the bot: built from this repository's Dockerfile."""
    services: dict[str, dict[str, Any]] = compose["services"]
    return {name: s for name, s in services.items() if "build" in s}


def healthcheck_text(service: dict[str, Any]) -> str:
    test = (service.get("healthcheck") or {}).get("test") or []
    return " ".join(test) if isinstance(test, list) else str(test)


def is_reference(value: str) -> bool:
    return REFERENCE.fullmatch(value) is not None


def inline_secrets(compose: dict[str, Any]) -> list[str]:
    """Every secret written into the compose file instead of taken from .env or ``${…}``."""
    found = []
    for name, service in compose["services"].items():
        for var, value in environment(service).items():
            if SECRET_NAME.search(var) and not is_reference(value):
                found.append(f"{name}: {var} is written inline")
            for password in URL_PASSWORD.findall(value):
                if not is_reference(password):
                    found.append(f"{name}: {var} has a password written into its URL")
    return found


def referenced(text: str) -> set[str]:
    """The variables the compose file interpolates."""
    return {m.group(1) for m in REFERENCE.finditer(text)}


def example_entries() -> dict[str, str]:
    """Each ``NAME=value`` in .env.example, commented out or not."""
    entries: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        found = ENV_LINE.match(line)
        if found:
            entries[found.group(1)] = found.group(2).strip()
    return entries


def secret_settings() -> set[str]:
    """The environment names of every setting typed as a secret."""
    names = set()
    for name, field in Settings.model_fields.items():
        annotation = field.annotation
        if annotation is SecretStr or SecretStr in typing.get_args(annotation):
            names.add(name.upper())
    return names


# ---- the compose file ----------------------------------------------------------------


def test_database_service_is_postgres_with_a_healthcheck() -> None:
    db = load()["services"]["db"]
    assert str(db["image"]).startswith("postgres:15")
    assert "pg_isready" in healthcheck_text(db)
    assert is_reference(environment(db)["POSTGRES_PASSWORD"])
    assert any(str(v).split(":")[1].startswith("/var/lib/postgresql/data") for v in db["volumes"])
    named = str(db["volumes"][0]).split(":")[0]
    assert named in (load().get("volumes") or {}), "the database lives on a named volume"


def test_at_least_two_bot_replicas_share_the_database() -> None:
    bots = bot_services(load())
    assert len(bots) >= 2, sorted(bots)
    for name, bot in bots.items():
        assert ".env" in env_files(bot), name
        assert bot["depends_on"]["db"]["condition"] == "service_healthy", name
        assert "/readyz" in healthcheck_text(bot), name
        url = environment(bot)["TRIAGE_DB"]
        assert re.fullmatch(r"postgresql://triage:\$\{POSTGRES_PASSWORD[^}]*\}@db:5432/triage", url), url


def test_replicas_publish_different_host_ports() -> None:
    ports = [str(p).split(":")[0] for bot in bot_services(load()).values() for p in bot.get("ports", [])]
    assert len(ports) >= 2
    assert len(ports) == len(set(ports)), ports


def test_no_secret_is_written_into_the_compose_file() -> None:
    assert inline_secrets(load()) == []
    assert not SLACK_TOKEN.search(COMPOSE.read_text())


def test_the_secret_check_catches_inline_values() -> None:
    compose = {
        "services": {
            "bot": {"environment": {"SLACK_BOT_TOKEN": "xoxb-1", "DD_SITE": "datadoghq.eu"}},
            "db": {"environment": ["POSTGRES_PASSWORD=hunter2"]},
            "other": {"environment": {"TRIAGE_DB": "postgresql://triage:hunter2@db:5432/triage"}},
            "fine": {"environment": {"API_KEY": "${API_KEY:?}", "URL": "postgresql://u:${P}@h/d"}},
        }
    }
    assert inline_secrets(compose) == [
        "bot: SLACK_BOT_TOKEN is written inline",
        "db: POSTGRES_PASSWORD is written inline",
        "other: TRIAGE_DB has a password written into its URL",
    ]


# ---- .env.example --------------------------------------------------------------------


def test_env_example_names_only_what_is_read() -> None:
    """Every variable in .env.example is a setting of the bot or one the compose file interpolates."""
    readable = {name.upper() for name in Settings.model_fields} | referenced(COMPOSE.read_text())
    unknown = set(example_entries()) - readable
    assert not unknown, f"read by nothing: {sorted(unknown)}"


def test_env_example_lists_every_secret_and_every_interpolated_variable() -> None:
    listed = set(example_entries())
    assert {"SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN", "POSTGRES_PASSWORD"} <= listed
    assert referenced(COMPOSE.read_text()) - listed == set()
    assert secret_settings() - listed == set()


def test_env_example_holds_no_secret_values() -> None:
    filled = {name: value for name, value in example_entries().items() if SECRET_NAME.search(name) and value}
    assert filled == {}


def test_env_file_is_not_committed() -> None:
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    assert ".env" in ignored
    assert ".env.example" not in ignored
