"""Every outbound HTTP client of a process verifies servers through one shared TLS context."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
import pytest

from bot.platforms import build_clients
from bot.platforms.http import PlatformHttp
from bot.settings import load_settings
from bot.slack_web import SlackWeb
from bot.tls import client_context


def _context(client: httpx.AsyncClient) -> ssl.SSLContext:
    transport = client._transport
    assert isinstance(transport, httpx.AsyncHTTPTransport)
    context = transport._pool._ssl_context
    assert isinstance(context, ssl.SSLContext)
    return context


async def test_platform_and_slack_clients_share_one_verifying_context(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Each platform client and the Slack client use the process's one context, and it verifies:
    the CA bundle is loaded once per process, not once per client."""
    monkeypatch.chdir(tmp_path)
    for name, value in {
        "DD_API_KEY": "k" * 32,
        "DD_APP_KEY": "a" * 40,
        "KIBANA_URL": "https://kibana.example.com",
        "KIBANA_API_KEY": "kb",
        "XPANSE_API_URL": "https://api-example.xdr.us.paloaltonetworks.com",
        "XPANSE_API_KEY": "xp",
        "XPANSE_API_KEY_ID": "7",
    }.items():
        monkeypatch.setenv(name, value)
    clients = build_clients(load_settings())
    slack = SlackWeb("xoxb-test", "https://slack.com/api/")
    try:
        https = [c for client in clients.values() for c in vars(client).values() if isinstance(c, PlatformHttp)]
        assert len(clients) == 3 and len(https) == 4  # Xpanse has a second, try-once client for comments
        contexts = {id(_context(h._client)) for h in https} | {id(_context(slack._http))}
        assert contexts == {id(client_context())}
        assert client_context().verify_mode is ssl.CERT_REQUIRED and client_context().check_hostname
    finally:
        for client in clients.values():
            await client.aclose()
        await slack.aclose()
