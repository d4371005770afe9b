"""Datadog test data shared by the client tests: user and case ids, finding ids, seeding."""

from __future__ import annotations

import base64

from bot.models import Platform, Target
from tests.fakes.datadog import DatadogFake

ANN = "f315bdaf-9ee7-4808-a9c1-99c15bf0f4d0"
BOB = "6b1e0f52-27a4-4c3b-9d6a-0d7c1b2a3e4f"
CASE_UUID = "7d16945b-baf8-411e-ab2a-20fe43af1ea3"
OTHER_CASE_UUID = "c1234567-89ab-cdef-0123-456789abcdef"
REAL_ID = "ZGVmLTAwcC1pZXJ-aS0wZjhjNjMyZDNmMzRlZTgzNw=="


def fid(n: int) -> str:
    """A finding id in Datadog's style (base64url text with padding)."""
    return base64.urlsafe_b64encode(f"def-000-{n:04d}~finding".encode()).decode()


def dd(finding_id: str) -> Target:
    return Target(platform=Platform.DATADOG, id=finding_id)


def seed(fake: DatadogFake, count: int, **kwargs: object) -> list[Target]:
    """Seed ``count`` findings and return their targets."""
    targets = []
    for n in range(count):
        fake.add_finding(fid(n), title=f"Finding {n}", **kwargs)  # type: ignore[arg-type]
        targets.append(dd(fid(n)))
    return targets
