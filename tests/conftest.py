"""Shared fixtures: the platform fakes and the fake Slack Web API are pytest plugins."""

from __future__ import annotations

import stamina

pytest_plugins = [
    "tests.fakes.datadog",
    "tests.fakes.kibana",
    "tests.fakes.xpanse",
    "tests.fakes.slack",
    "tests.fakes.pagerduty",
]

# Retries stay on in tests (they are part of what is tested) but never sleep long:
# backoff waits are real but bounded by each client's small test retry policy.
stamina.set_active(True)
