"""A fake Cortex Xpanse tenant: the sandbox tenant checked against ``shared/contracts/xpanse.yaml``.

The tenant behaviour (keys, incidents, users, ``update_incident`` validation, the
``get_incidents`` filters, sort and paging, throttling) is ``bot.sandbox.xpanse``;
this adds the contract check and one standard and one advanced test key. The
tenant's ``reply_false`` (incident ids whose update answers 200 ``{"reply": false}``)
and ``rate_limit`` are what the tests script.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import SecretStr

from bot.platforms.xpanse import XpanseClient
from bot.sandbox.xpanse import GENERIC_ERROR, TIMESTAMP_SKEW_MS, XpanseSandbox, envelope
from bot.sandbox.xpanse import Incident as FakeIncident
from bot.settings import HttpPolicy, XpanseConfig
from tests.fakes.contract import ContractServer

__all__ = ["GENERIC_ERROR", "TIMESTAMP_SKEW_MS", "FakeIncident", "XpanseFake", "envelope", "make_xpanse_config"]

CONTRACT_HOST = "https://api-example.crtx.us.paloaltonetworks.com"
STANDARD_KEY_ID = "17"
STANDARD_KEY = "xpanse-standard-key-5f1c0d2a9b7e4c3d8a6f"
ADVANCED_KEY_ID = "18"
ADVANCED_KEY = "xpanse-advanced-key-0a9b8c7d6e5f4a3b2c1d"


class XpanseFake(ContractServer, XpanseSandbox):
    """The Xpanse sandbox tenant, contract-checked, holding a standard and an advanced key."""

    contract = "xpanse"

    def __init__(self) -> None:
        super().__init__(
            keys={STANDARD_KEY_ID: ("standard", STANDARD_KEY), ADVANCED_KEY_ID: ("advanced", ADVANCED_KEY)}
        )

    def contract_location(self, path: str) -> tuple[str, str]:
        return CONTRACT_HOST, path


def make_xpanse_config(
    fake: XpanseFake,
    *,
    auth: str = "standard",
    rate_limit: float = 50.0,
    api_key: str | None = None,
    api_key_id: str | None = None,
    **policy: Any,
) -> XpanseConfig:
    """A client config for ``fake`` with one of its keys and a fast test retry policy."""
    key_id = api_key_id or (ADVANCED_KEY_ID if auth == "advanced" else STANDARD_KEY_ID)
    default_key = fake.keys.get(key_id, ("", "unknown-key"))[1]
    http = {
        "timeout": 2.0,
        "connect_timeout": 1.0,
        "retry_wait_initial": 0.01,
        "retry_wait_max": 0.05,
        "retry_timeout": 3.0,
        "retry_attempts": 4,
        **policy,
    }
    return XpanseConfig(
        api_url=fake.url,
        api_key=SecretStr(api_key or default_key),
        api_key_id=key_id,
        auth=auth,
        rate_limit=rate_limit,
        http=HttpPolicy(**http),
    )


@pytest.fixture
async def xpanse_fake() -> AsyncIterator[XpanseFake]:
    """A running fake tenant; the test fails if any request broke the contract."""
    fake = XpanseFake()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()
    assert not fake.violations, f"contract violations: {fake.violations}"


@pytest.fixture
async def xpanse_client(xpanse_fake: XpanseFake) -> AsyncIterator[XpanseClient]:
    """An ``XpanseClient`` with the fake's standard key, fast retries and a high rate limit."""
    client = XpanseClient(make_xpanse_config(xpanse_fake))
    try:
        yield client
    finally:
        await client.aclose()
