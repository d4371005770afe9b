"""Drive the real app over HTTP with signed, real-shaped Slack payloads.

``BotHarness`` starts the bot's aiohttp server on 127.0.0.1 (ephemeral port)
with its services pointed at the platform fakes and the fake Slack Web API,
then sends slash commands, button clicks, modal submissions and shortcuts built
by ``bot.sandbox.payloads`` (shaped after ``../shared/slack/payloads``) and signed
like Slack signs them.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web

from bot.app import build_app
from bot.runtime import Services, build_services
from bot.sandbox import payloads
from bot.settings import Settings, load_settings
from bot.slack.ids import CallbackId
from bot.web import build_web_app
from tests.blockkit import assert_valid_message, assert_valid_view
from tests.fakes.datadog import DatadogFake, make_datadog_config
from tests.fakes.kibana import ElasticsearchFake, KibanaFake, make_kibana_config
from tests.fakes.slack import SlackFake
from tests.fakes.xpanse import XpanseFake, make_xpanse_config

PAYLOADS = Path(__file__).resolve().parents[3] / "shared" / "slack" / "payloads"
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TEAM = "T111"
CHANNEL = "C111"


MESSAGE_METHODS = ("chat.postMessage", "chat.update", "chat.postEphemeral")
VIEW_METHODS = ("views.open", "views.push", "views.update", "views.publish")


def _check_message(args: dict[str, Any], *, where: str) -> None:
    """Fail unless one outgoing message body (Web API args, response_url body or ack) is valid."""
    blocks = args.get("blocks")
    if isinstance(blocks, str):
        blocks = json.loads(blocks)
    text = args.get("text")
    try:
        if blocks:
            assert_valid_message(blocks, text)
        else:
            assert isinstance(text, str) and text.strip(), "a message without blocks needs text"
            assert len(text) <= 4000, f"message text is {len(text)} characters"
    except AssertionError as exc:
        raise AssertionError(f"{where}: {exc}\n{json.dumps(args)[:2000]}") from exc


def payload(name: str) -> dict[str, Any]:
    """A fresh copy of one of Slack's own payload samples."""
    return copy.deepcopy(json.loads((PAYLOADS / name).read_text()))


def fake_settings(
    *,
    db: str,
    slack: SlackFake,
    datadog: DatadogFake | None,
    kibana: KibanaFake | None,
    es: ElasticsearchFake | None,
    xpanse: XpanseFake | None,
    **extra: Any,
) -> Settings:
    """Settings as an operator would write them, aimed at the fakes."""
    env: dict[str, Any] = {
        "slack_bot_token": slack.token,
        "slack_signing_secret": SIGNING_SECRET,
        "slack_api_url": slack.api_url,
        "triage_db": db,
        "triage_retry_timeout": 3.0,
        "triage_retry_attempts": 3,
        "triage_http_timeout": 2.0,
        "triage_webhook_token": "hook-token-123456",
        "triage_alert_channel": CHANNEL,
        "triage_post_interval": 0.01,  # the fake Slack has no pace unless a test sets one
    }
    if datadog is not None:
        cfg = make_datadog_config(datadog)
        env |= {
            "dd_api_url": datadog.url,
            "dd_api_key": cfg.api_key.get_secret_value(),
            "dd_app_key": cfg.app_key.get_secret_value(),
        }
    if kibana is not None:
        kcfg = make_kibana_config(kibana, es)
        env |= {
            "kibana_url": kibana.url,
            "kibana_api_key": kcfg.api_key.get_secret_value(),
            "kibana_spaces": "default,secops",
        }
        if es is not None and kcfg.es_api_key is not None:
            env |= {"elasticsearch_url": es.url, "elasticsearch_api_key": kcfg.es_api_key.get_secret_value()}
    if xpanse is not None:
        xcfg = make_xpanse_config(xpanse)
        env |= {
            "xpanse_api_url": xpanse.url,
            "xpanse_api_key": xcfg.api_key.get_secret_value(),
            "xpanse_api_key_id": xcfg.api_key_id,
            "xpanse_rate_limit": 50.0,
        }
    env |= extra
    return load_settings(**env)


class BotHarness:
    """The running bot plus helpers to talk to it like Slack does."""

    def __init__(self, settings: Settings, slack: SlackFake) -> None:
        self.settings = settings
        self.slack = slack
        self.services: Services | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.http = httpx.AsyncClient(timeout=10)
        self._n = 0
        # Every JSON body the bot answered Slack with (acks that carry a message).
        self.acks: list[dict[str, Any]] = []

    async def start(self) -> BotHarness:
        self.services = await build_services(self.settings)
        self.bolt = build_app(self.settings, self.services)
        await self.services.workers.start()
        await self.services.poster.start()
        app = build_web_app(self.services, bolt=self.bolt)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        assert site._server is not None
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        return self

    async def stop(self) -> None:
        """Stop serving and close the services; calling it again does nothing."""
        await self.http.aclose()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        services, self.services = self.services, None
        if services is not None:
            await services.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def svc(self) -> Services:
        assert self.services is not None
        return self.services

    # ---- sending --------------------------------------------------------------------------

    def _sign(self, body: str, *, secret: str = SIGNING_SECRET, ts: int | None = None) -> dict[str, str]:
        return payloads.signature_headers(body, secret, timestamp=ts)

    async def post_raw(self, body: str, **sign: Any) -> httpx.Response:
        resp = await self.http.post(f"{self.url}/slack/events", content=body, headers=self._sign(body, **sign))
        if resp.status_code == 200 and resp.content:
            # Bolt answers JSON when the ack has more than text, plain text otherwise.
            json_body = resp.headers.get("content-type", "").startswith("application/json")
            self.acks.append(resp.json() if json_body else {"text": resp.text})
        return resp

    async def event(self, event: dict[str, Any]) -> httpx.Response:
        """Deliver one Events API event, signed, as the JSON body Slack sends."""
        body = json.dumps(payloads.event_callback(event, team_id=TEAM, event_id=f"Ev{self._next()}"))
        headers = {**self._sign(body), "Content-Type": "application/json"}
        return await self.http.post(f"{self.url}/slack/events", content=body, headers=headers)

    def _next(self) -> str:
        self._n += 1
        return f"{self._n}"

    async def command(self, text: str, *, user: str = "U0ALICE", channel: str = CHANNEL, **sign: Any) -> httpx.Response:
        """Send ``/triage <text>`` as a signed form post, like Slack does."""
        fields = payloads.slash_command(
            text=text,
            user_id=user,
            channel_id=channel,
            team_id=TEAM,
            response_url=self.slack.webhook_url(f"cmd{self._next()}"),
            trigger_id=f"trigger.{self._n}.{time.monotonic_ns()}",
        )
        return await self.post_raw(payloads.form_body(fields), **sign)

    async def interactive(self, body: dict[str, Any], **sign: Any) -> httpx.Response:
        return await self.post_raw(payloads.interactive_body(body), **sign)

    async def click(
        self,
        action_id: str,
        value: str,
        *,
        user: str = "U0ALICE",
        channel: str = CHANNEL,
        message_ts: str,
        message: dict[str, Any] | None = None,
    ) -> httpx.Response:
        """Click a button on the message ``message_ts`` in ``channel``."""
        body = payloads.block_actions(
            action=payloads.button(action_id, value, ts=f"{time.time():.6f}.{self._next()}"),
            user_id=user,
            team_id=TEAM,
            channel_id=channel,
            message=message or {"ts": message_ts, "type": "message", "blocks": []},
            message_ts=message_ts,
            response_url=self.slack.webhook_url(f"btn{self._n}"),
            trigger_id=f"trigger.{self._n}",
        )
        return await self.interactive(body)

    async def click_on_card(self, action_id: str, *, channel: str, ts: str, user: str = "U0ALICE") -> httpx.Response:
        """Click the button ``action_id`` on the card the bot posted at ``ts``."""
        message = self.slack.message(channel, ts)
        assert message is not None, f"no message {ts} in {channel}"
        for block in message.get("blocks", []):
            for element in block.get("elements", []) + ([block["accessory"]] if "accessory" in block else []):
                if element.get("action_id") == action_id:
                    return await self.click(
                        action_id, element.get("value", ""), user=user, channel=channel, message_ts=ts, message=message
                    )
        raise AssertionError(f"no {action_id} button on the card {ts}")

    async def submit_view(
        self, view: dict[str, Any], values: dict[str, dict[str, Any]], *, user: str = "U0ALICE"
    ) -> httpx.Response:
        """Submit a modal the bot opened, with ``values`` as view.state.values."""
        n = self._next()
        body = payloads.view_submission(
            view=view,
            values=values,
            user_id=user,
            team_id=TEAM,
            trigger_id=f"trigger.view.{n}",
            view_id=f"V{n}",
            view_hash=f"h{n}",
        )
        return await self.interactive(body)

    async def shortcut(
        self, message: dict[str, Any], *, user: str = "U0ALICE", channel: str = CHANNEL
    ) -> httpx.Response:
        """Run the "Triage this" message shortcut on ``message`` in ``channel``."""
        body = payloads.message_action(
            callback_id=CallbackId.TRIAGE_MESSAGE.value,
            message=message,
            message_ts=message.get("ts", "1583636382.000300"),
            user_id=user,
            team_id=TEAM,
            channel_id=channel,
            # Each invocation has its own trigger, as on Slack (the bot de-duplicates on it).
            trigger_id=f"trigger.sc.{time.monotonic_ns()}",
            response_url=self.slack.webhook_url(f"sc{self._next()}"),
        )
        return await self.interactive(body)

    # ---- reading what the bot sent ----------------------------------------------------------

    def cards(self, channel: str = CHANNEL) -> list[dict[str, Any]]:
        """Messages in ``channel`` that are alert cards (they carry action buttons with a CardRef)."""
        return [
            m
            for m in self.slack.messages_in(channel)
            if any(
                b.get("type") == "actions" and any(e.get("action_id") == "refresh" for e in b.get("elements", []))
                for b in m.get("blocks") or []
            )
        ]

    def replies(self, channel: str, thread_ts: str) -> list[dict[str, Any]]:
        """Messages the bot posted in the thread of ``thread_ts``."""
        return [m for m in self.slack.messages_in(channel) if m.get("thread_ts") == thread_ts]

    def assert_block_kit(self) -> int:
        """Check every message and view the bot sent Slack is valid Block Kit; returns how many."""
        checked = 0
        for call in self.slack.calls:
            if call.method in MESSAGE_METHODS:
                _check_message(call.args, where=call.method)
                checked += 1
            elif call.method == "chat.unfurl":
                unfurls = call.args.get("unfurls")
                unfurls = json.loads(unfurls) if isinstance(unfurls, str) else unfurls
                assert isinstance(unfurls, dict) and unfurls, "chat.unfurl: no unfurls"
                for url, unfurl in unfurls.items():
                    _check_message({"blocks": unfurl.get("blocks"), "text": url}, where="chat.unfurl")
                checked += 1
            elif call.method in VIEW_METHODS:
                view = call.args.get("view")
                view = json.loads(view) if isinstance(view, str) else view
                assert isinstance(view, dict), f"{call.method}: no view"
                assert_valid_view(view)
                checked += 1
        for body in self.slack.responses:
            _check_message(body, where="response_url")
            checked += 1
        for body in self.acks:
            if "response_action" in body:  # a view_submission answer (errors/clear), not a message
                continue
            if body:
                _check_message(body, where="ack")
                checked += 1
        return checked

    # ---- waiting --------------------------------------------------------------------------

    async def posted(self, timeout: float = 10.0) -> None:
        """Wait (bounded) until the alert poster has nothing left to post or redraw."""
        assert await self.svc.poster.idle(timeout), "the alert poster did not finish in time"

    async def settle(self, timeout: float = 10.0) -> None:
        """Wait (bounded) until every queued job ran and every background reply was sent."""
        deadline = time.monotonic() + timeout
        bg = self.bolt.__dict__["triage_state"]["background"]
        while time.monotonic() < deadline:
            await asyncio.sleep(0.02)
            if self.svc.actions.queue.empty() and not self.svc.workers._busy and not bg.tasks:
                await asyncio.sleep(0.05)
                if self.svc.actions.queue.empty() and not self.svc.workers._busy and not bg.tasks:
                    return
        raise AssertionError("the bot did not settle in time")
