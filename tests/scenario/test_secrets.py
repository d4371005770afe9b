"""Secrets never reach a log line or a Slack message, even at debug level and on failures."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest_asyncio

from bot.logging import configure_logging, secret_values
from tests.fakes.datadog import DatadogFake
from tests.fakes.kibana import ElasticsearchFake, KibanaFake
from tests.fakes.slack import SlackFake
from tests.fakes.xpanse import STANDARD_KEY_ID, XpanseFake
from tests.scenario.conftest import BOB, seed_people
from tests.scenario.harness import CHANNEL, BotHarness, fake_settings

# Known values for every secret setting, none of them shaped like anything the redactor
# recognises by pattern (only SLACK_BOT_TOKEN is, as real bot tokens are): the literal
# redaction of configured secrets is what is under test.
SECRETS = {
    "slack_bot_token": "xoxb-2718281828-3141592653-SeCrEtSlackBotToken",
    "slack_signing_secret": "SigningSecret-7f3a9c1e5b2d4f6a8c0e",
    "dd_api_key": "DdApiKey-0a1b2c3d4e5f6a7b8c9d0e1f2a3b",
    "dd_app_key": "DdAppKey-f0e1d2c3b4a5968778695a4b3c2d1e0f1234",
    "kibana_api_key": "S2liYW5hU2VjcmV0S2V5OmhvcnNlLWJhdHRlcnk=",
    "elasticsearch_api_key": "RWxhc3RpY1NlY3JldEtleTpzdGFwbGUtY29ycmVjdA==",
    "xpanse_api_key": "XpanseKey-9988776655443322110099887766",
    "triage_webhook_token": "WebhookToken-1357924680-abcdef",
    "triage_webhook_secret": "WebhookHmacSecret-2468013579-fedcba",
}
FINDING = "ZGVmLTAwcC1pZXJ-aS0wZjhjNjMyZDNmMzRlZTgzNw=="


@dataclass
class Rig:
    bot: BotHarness
    slack: SlackFake
    dd: DatadogFake
    kb: KibanaFake
    es: ElasticsearchFake
    xp: XpanseFake
    logs: io.StringIO


@pytest_asyncio.fixture
async def rig(tmp_path) -> AsyncIterator[Rig]:  # type: ignore[no-untyped-def]
    """The bot at DEBUG with every secret set to a known value the fakes accept, logging to a buffer."""
    slack = await SlackFake(token=SECRETS["slack_bot_token"]).start()
    dd = await DatadogFake(api_key=SECRETS["dd_api_key"], app_key=SECRETS["dd_app_key"]).start()
    kb = await KibanaFake(api_key=SECRETS["kibana_api_key"]).start()
    es = await ElasticsearchFake(api_key=SECRETS["elasticsearch_api_key"]).start()
    xp = await XpanseFake().start()
    xp.keys[STANDARD_KEY_ID] = ("standard", SECRETS["xpanse_api_key"])
    seed_people(slack, dd, es, xp)
    settings = fake_settings(
        db=str(tmp_path / "triage.db"),
        slack=slack,
        datadog=dd,
        kibana=kb,
        es=es,
        xpanse=xp,
        slack_signing_secret=SECRETS["slack_signing_secret"],
        triage_webhook_token=SECRETS["triage_webhook_token"],
        triage_webhook_secret=SECRETS["triage_webhook_secret"],
        log_level="debug",
    )
    configured = secret_values(settings)
    assert sorted(configured) == sorted(SECRETS.values())  # every secret setting is a SecretStr
    logs = io.StringIO()
    configure_logging(level="debug", fmt="json", secrets=configured, stream=logs)
    bot = await BotHarness(settings, slack).start()
    try:
        yield Rig(bot, slack, dd, kb, es, xp, logs)
    finally:
        await bot.stop()
        for fake in (slack, dd, kb, es, xp):
            await fake.stop()
        configure_logging(level="warning", stream=sys.stderr)
    for fake in (dd, kb, xp):
        assert fake.violations == []


def assert_no_secret(rig: Rig) -> str:
    """Neither the captured logs nor anything sent to Slack contains a secret value."""
    logs = rig.logs.getvalue()
    slack_traffic = json.dumps([c.args for c in rig.slack.calls]) + json.dumps(rig.slack.responses)
    for name, value in SECRETS.items():
        assert value not in logs, f"{name} appears in the logs"
        assert value not in slack_traffic, f"{name} appears in a Slack message"
    return logs


async def test_commands_webhooks_and_failures_log_no_secret(rig: Rig) -> None:
    """Commands on three platforms, a 401 from Datadog, a 401 from Kibana and signed webhooks
    run at DEBUG, and no secret value appears in any log line or Slack message."""
    sign = {"secret": SECRETS["slack_signing_secret"]}
    rig.dd.add_finding(FINDING, title="Public bucket")
    rig.kb.add_alert("a1", space="secops", rule_name="Brute force")
    rig.xp.add_incident("5471", description="Exposed RDP")
    resp = await rig.bot.command(f"assign dd:{FINDING} kibana:secops/a1 xpanse:5471 to <@{BOB}|bob>", **sign)
    assert resp.status_code == 200 and "On it" in resp.text
    await rig.bot.command("whoami", **sign)
    await rig.bot.command("mine", **sign)
    await rig.bot.settle()
    assert rig.dd.findings[FINDING]["assignee_id"] is not None  # the scenario really ran

    # Platforms refusing the keys, with their real 401 bodies.
    rig.dd.fail("/findings/search", 401, times=5, body={"errors": [{"status": "401", "title": "Unauthorized"}]})
    rig.kb.fail(
        "/signals/search",
        401,
        times=5,
        body={
            "statusCode": 401,
            "error": "Unauthorized",
            "message": "[security_exception] unable to authenticate with provided credentials",
        },
    )
    await rig.bot.command(f"show dd:{FINDING}", **sign)
    await rig.bot.command("show kibana:secops/a1", **sign)
    await rig.bot.settle()
    posted = [c.args.get("text", "") for c in rig.slack.calls_to("chat.postMessage")]
    refused = [text for text in posted if "401" in text]
    assert len(refused) == 2, refused  # both failures were reported

    # A request signed with the wrong secret, and webhooks with the token, the HMAC and a wrong token.
    assert (await rig.bot.command("help", secret="not-the-signing-secret")).status_code == 401
    body = json.dumps({"id": "5472", "title": "New exposure", "severity": "high"}).encode()
    token = {"Authorization": f"Bearer {SECRETS['triage_webhook_token']}", "Content-Type": "application/json"}
    assert (await rig.bot.http.post(f"{rig.bot.url}/alerts/xpanse", content=body, headers=token)).status_code == 202
    digest = hmac.new(SECRETS["triage_webhook_secret"].encode(), body, hashlib.sha256).hexdigest()
    signed = {"X-Triage-Signature": f"sha256={digest}", "Content-Type": "application/json"}
    assert (await rig.bot.http.post(f"{rig.bot.url}/alerts/xpanse", content=body, headers=signed)).status_code == 202
    wrong = {"Authorization": "Bearer nope-nope-nope", "Content-Type": "application/json"}
    assert (await rig.bot.http.post(f"{rig.bot.url}/alerts/xpanse", content=body, headers=wrong)).status_code == 401
    await rig.bot.settle()
    await rig.bot.posted()

    logs = assert_no_secret(rig)
    # The capture is real: debug lines of the run are there, and the failures were logged.
    assert '"level": "debug"' in logs and "platform_request" in logs
    assert len(rig.slack.messages_in(CHANNEL)) >= 3


async def test_a_secret_logged_by_mistake_is_redacted(rig: Rig) -> None:
    """Even a log call that passes every secret verbatim, in values, keys and an exception, emits none."""
    import structlog

    log = structlog.get_logger("tests.secrets")
    try:
        raise RuntimeError(f"boom with {SECRETS['xpanse_api_key']}")
    except RuntimeError:
        log.exception(
            "oops",
            **{name: value for name, value in SECRETS.items()},
            headers={"DD-API-KEY": SECRETS["dd_api_key"]},
            nested=[list(SECRETS.values())],
        )
    import logging

    logging.getLogger("httpx").debug("HTTP Request with %s", SECRETS["kibana_api_key"])
    logs = assert_no_secret(rig)
    assert "oops" in logs and "HTTP Request with [redacted]" in logs


async def test_a_vendor_echoing_the_key_does_not_leak_it_into_slack(rig: Rig) -> None:
    """A 401 whose body quotes the API key back is reported without the key, in logs and in Slack."""
    rig.dd.add_finding(FINDING, title="Public bucket")
    rig.dd.fail(
        "/findings/search",
        401,
        times=5,
        body={"errors": [f"Unauthorized: DD-API-KEY {SECRETS['dd_api_key']} is not valid"]},
    )
    await rig.bot.command(f"show dd:{FINDING}", secret=SECRETS["slack_signing_secret"])
    await rig.bot.settle()
    assert any("401" in c.args.get("text", "") for c in rig.slack.calls_to("chat.postMessage"))
    assert_no_secret(rig)
