"""Settings: conventional names, disabled platforms, and one clear line per problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.errors import ConfigError
from bot.models import Platform
from bot.rules import DATADOG_SITES
from bot.settings import load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Tests see only the variables they set (no .env, no inherited platform credentials)."""
    monkeypatch.chdir(tmp_path)
    for name in (
        "SLACK_BOT_TOKEN",
        "DD_API_KEY",
        "DD_APP_KEY",
        "DD_SITE",
        "DD_API_URL",
        "KIBANA_URL",
        "KIBANA_API_KEY",
        "KIBANA_SPACE",
        "KIBANA_SPACES",
        "XPANSE_API_URL",
        "XPANSE_API_KEY",
        "XPANSE_API_KEY_ID",
        "XPANSE_AUTH",
        "ELASTICSEARCH_URL",
        "ELASTICSEARCH_API_KEY",
    ):
        monkeypatch.delenv(name, raising=False)


def test_no_credentials_means_every_platform_disabled() -> None:
    """With nothing configured the bot starts with no platform enabled, not an error."""
    settings = load_settings()
    assert settings.configured_platforms == []
    assert settings.datadog is None and settings.kibana is None and settings.xpanse is None


@pytest.mark.parametrize("site", DATADOG_SITES)
def test_every_datadog_site_of_the_contract_is_accepted(monkeypatch: pytest.MonkeyPatch, site: str) -> None:
    """Each site in the contract's enum (uk1 included) gives https://api.<site>."""
    monkeypatch.setenv("DD_API_KEY", "k" * 32)
    monkeypatch.setenv("DD_APP_KEY", "a" * 40)
    monkeypatch.setenv("DD_SITE", site)
    dd = load_settings().datadog
    assert dd is not None and dd.api_url == f"https://api.{site}"
    assert "uk1.datadoghq.com" in DATADOG_SITES


def test_dd_api_url_overrides_the_site(monkeypatch: pytest.MonkeyPatch) -> None:
    """DD_API_URL wins over DD_SITE (and loses its trailing slash)."""
    monkeypatch.setenv("DD_API_KEY", "k")
    monkeypatch.setenv("DD_APP_KEY", "a")
    monkeypatch.setenv("DD_SITE", "datadoghq.eu")
    monkeypatch.setenv("DD_API_URL", "http://127.0.0.1:9999/")
    dd = load_settings().datadog
    assert dd is not None and dd.api_url == "http://127.0.0.1:9999"


def test_each_problem_gets_its_own_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """An unknown site, a half-configured Datadog and a bad URL are all reported at once."""
    monkeypatch.setenv("DD_SITE", "datadoghq.moon")
    monkeypatch.setenv("DD_API_KEY", "k")
    monkeypatch.setenv("KIBANA_URL", "kibana.local:5601")
    with pytest.raises(ConfigError) as info:
        load_settings()
    text = str(info.value)
    assert any("DD_SITE" in p for p in info.value.problems), text
    assert any("KIBANA_URL" in p for p in info.value.problems), text
    assert len(info.value.problems) >= 2


def test_half_configured_platform_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """DD_API_KEY without DD_APP_KEY says which variable is missing."""
    monkeypatch.setenv("DD_API_KEY", "k")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert any("DD_APP_KEY is required when DD_API_KEY is set" in p for p in info.value.problems)


def test_secrets_never_appear_in_repr_or_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    """Secret values are SecretStr: not in repr, not in a validation message."""
    monkeypatch.setenv("DD_API_KEY", "super-secret-dd-key")
    monkeypatch.setenv("DD_APP_KEY", "super-secret-app-key")
    monkeypatch.setenv("XPANSE_API_KEY", "super-secret-xpanse")
    with pytest.raises(ConfigError) as info:
        load_settings()  # Xpanse is half-configured
    assert "super-secret" not in str(info.value)
    monkeypatch.delenv("XPANSE_API_KEY")
    settings = load_settings()
    assert "super-secret" not in repr(settings)
    assert Platform.DATADOG in settings.configured_platforms


def test_kibana_spaces_include_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """KIBANA_SPACES lists extra spaces; the default space is always searched first."""
    monkeypatch.setenv("KIBANA_URL", "https://kibana.example.com")
    monkeypatch.setenv("KIBANA_API_KEY", "abc")
    monkeypatch.setenv("KIBANA_SPACE", "soc")
    monkeypatch.setenv("KIBANA_SPACES", "secops, soc ,")
    kb = load_settings().kibana
    assert kb is not None and kb.spaces == ["soc", "secops"] and kb.default_space == "soc"


def test_dotenv_file_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A .env file in the working directory configures the bot too."""
    (tmp_path / ".env").write_text(
        "XPANSE_API_URL=https://api-t.xdr.example.com\nXPANSE_API_KEY=k\nXPANSE_API_KEY_ID=7\nXPANSE_AUTH=advanced\n"
    )
    xp = load_settings().xpanse
    assert xp is not None and xp.auth == "advanced" and xp.api_key_id == "7"
