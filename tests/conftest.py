"""Shared fixtures: the platform fakes and the fake Slack Web API are pytest plugins, and a real
PostgreSQL server (bench/pgserver.py) with a fresh database per test for the tests that ask for one."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator

import pytest
import stamina

from bench.pgserver import PostgresNotFoundError, PostgresServer, PostgresServerError

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


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL server for the whole test session, started the first time a test asks.

    It fails (never skips) the tests that use it when PostgreSQL is not installed or does not start.
    """
    try:
        server = PostgresServer().start()
    except PostgresNotFoundError as exc:
        pytest.fail(f"PostgreSQL tests need a PostgreSQL server: {exc}", pytrace=False)
    except PostgresServerError as exc:
        pytest.fail(f"the test PostgreSQL server did not start: {exc}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer, request: pytest.FixtureRequest) -> Iterator[str]:
    """``postgresql://USER:PASSWORD@127.0.0.1:PORT/DB`` of a new empty database, dropped after the test.

    For SQLAlchemy, replace the scheme with ``postgresql+asyncpg://``.
    """
    slug = re.sub(r"[^a-z0-9]+", "_", request.node.name.lower()).strip("_")[:40]
    name = f"t_{slug}_{secrets.token_hex(4)}"
    postgres_server.create_database(name)
    try:
        yield postgres_server.url(name)
    finally:
        postgres_server.drop_database(name)
