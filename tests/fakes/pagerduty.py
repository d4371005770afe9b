"""The PagerDuty fake: the sandbox schedule tenant behind a check against ``shared/contracts/pagerduty.yaml``.

Loaded as a pytest plugin (``tests/conftest.py``): fixture ``pagerduty_fake``; the test
fails if any request broke the contract.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from bot.sandbox.oncall import PagerDutySandbox
from tests.fakes.contract import ContractServer

PD_KEY = "pd-api-key-for-tests"
CONTRACT_HOST = "https://api.pagerduty.com"


class PagerDutyFake(ContractServer, PagerDutySandbox):
    """The PagerDuty sandbox tenant, contract-checked, with a test key."""

    contract = "pagerduty"

    def __init__(self, *, api_key: str = PD_KEY) -> None:
        super().__init__(api_key=api_key)

    def contract_location(self, path: str) -> tuple[str, str]:
        return CONTRACT_HOST, path


@pytest_asyncio.fixture
async def pagerduty_fake() -> AsyncIterator[PagerDutyFake]:
    """A started PagerDuty fake; the test fails if any request broke the contract."""
    fake = PagerDutyFake()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()
    assert fake.violations == []
