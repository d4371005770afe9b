"""The schedule sources (PagerDuty ``GET /oncalls``, Datadog On-Call responders) against the contract-checked fakes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio
from pydantic import SecretStr

from bot.errors import PlatformAuthError, PlatformRateLimited, PlatformUnavailable
from bot.platforms.datadog.oncall import DatadogOnCall
from bot.platforms.oncall import ScheduleSource
from bot.platforms.pagerduty import ACCEPT, PagerDutySource
from bot.settings import HttpPolicy, PagerDutyConfig
from tests.fakes.datadog import DatadogFake, make_datadog_config
from tests.fakes.pagerduty import PD_KEY, PagerDutyFake

AT = datetime(2026, 7, 1, 8, 0, tzinfo=UTC)
PD_SCHEDULE = "PABC123"
DD_SCHEDULE = "3653d3c6-0c75-11ea-ad28-fb5701eabc7d"
FAST = {
    "timeout": 0.3,
    "connect_timeout": 0.3,
    "retry_attempts": 3,
    "retry_timeout": 3.0,
    "retry_wait_initial": 0.01,
    "retry_wait_max": 0.05,
    "concurrency": 4,
}
Fake = PagerDutyFake | DatadogFake


def pd_source(fake: PagerDutyFake, key: str = PD_KEY) -> PagerDutySource:
    """A PagerDutySource pointed at ``fake`` with a fast retry policy."""
    return PagerDutySource(PagerDutyConfig(api_url=fake.url, api_key=SecretStr(key), http=HttpPolicy(**FAST)))


def seed(fake: Fake, schedule: str) -> None:
    """Alice and Carol on call together around AT, Bob next."""
    fake.book.add_person("PALICE", "Alice@Example.com", "Alice Analyst")
    fake.book.add_person("PBOB", "bob@example.com", "Bob Builder")
    fake.book.add_person("PCAROL", "carol@example.com", "Carol Contractor")
    start, change = AT - timedelta(hours=8), AT + timedelta(hours=4)
    fake.book.on_call(schedule, ["PALICE", "PCAROL"], start=start, end=change)
    fake.book.on_call(schedule, ["PBOB"], start=change)


@pytest_asyncio.fixture(params=["pagerduty", "datadog"])
async def source(
    request: pytest.FixtureRequest, pagerduty_fake: PagerDutyFake, datadog_fake: DatadogFake
) -> AsyncIterator[tuple[ScheduleSource, Fake, str]]:
    """Each source with its fake and schedule id, seeded (both fakes run; one is asked)."""
    if request.param == "pagerduty":
        made: tuple[ScheduleSource, Fake, str] = (pd_source(pagerduty_fake), pagerduty_fake, PD_SCHEDULE)
    else:
        made = (DatadogOnCall(make_datadog_config(datadog_fake, **FAST)), datadog_fake, DD_SCHEDULE)
    seed(made[1], made[2])
    try:
        yield made
    finally:
        await made[0].aclose()


def path_of(fake: Fake) -> str:
    """The path part every schedule request of ``fake``'s source carries."""
    return "/oncalls" if isinstance(fake, PagerDutyFake) else "/responders"


async def test_current_and_next_with_concurrent_responders(source: tuple[ScheduleSource, Fake, str]) -> None:
    """Two people on call at once are both current (emails lower-cased); the next shift's person is next."""
    src, _, schedule = source
    roster = await src.roster(schedule, at=AT)
    assert roster.current_emails == ["alice@example.com", "carol@example.com"]
    assert [r.email for r in roster.next] == ["bob@example.com"]
    assert {r.source_id for r in roster.current} == {"PALICE", "PCAROL"}
    assert all(r.start == AT - timedelta(hours=8) and r.end == AT + timedelta(hours=4) for r in roster.current)
    assert roster.next[0].start == AT + timedelta(hours=4)


async def test_nobody_on_call_is_an_empty_answer(source: tuple[ScheduleSource, Fake, str]) -> None:
    """Between shifts the answer is an empty current list, not an error."""
    src, fake, schedule = source
    fake.book.rotate(schedule, [], at=AT - timedelta(hours=1))
    fake.book.shifts[schedule] = [s for s in fake.book.shifts[schedule] if s.start < AT]
    roster = await src.roster(schedule, at=AT)
    assert roster.current == [] and roster.next == []


async def test_401_is_an_auth_error(source: tuple[ScheduleSource, Fake, str]) -> None:
    """A refused key is a PlatformAuthError (not retried) saying the key was not accepted."""
    src, fake, schedule = source
    fake.fail(path_of(fake), 401, body={"error": {"message": "Authentication failed", "code": 2006}})
    with pytest.raises(PlatformAuthError) as exc:
        await src.roster(schedule, at=AT)
    assert exc.value.status == 401 and "was not accepted" in exc.value.reason
    assert len(fake.calls(path_of(fake))) == 1


NEEDS = {"pagerduty": "oncalls.read", "datadog": "on_call_read"}


async def test_403_names_the_missing_permission(source: tuple[ScheduleSource, Fake, str]) -> None:
    """A 403 says which permission the key lacks, in the reason and in ``missing``; it is not retried."""
    src, fake, schedule = source
    needs = NEEDS[src.kind]
    pd = {"error": {"message": "Access Denied", "code": 2010}}
    body: Any = pd if src.kind == "pagerduty" else {"errors": ["Forbidden"]}
    fake.fail(path_of(fake), 403, body=body)
    with pytest.raises(PlatformAuthError) as exc:
        await src.roster(schedule, at=AT)
    assert exc.value.status == 403 and exc.value.missing == (needs,)
    assert f"lacks `{needs}`" in exc.value.reason and needs in src.missing_permission
    assert len(fake.calls(path_of(fake))) == 1


async def test_429_is_retried(source: tuple[ScheduleSource, Fake, str]) -> None:
    """One 429 (with Retry-After) and the next try answers."""
    src, fake, schedule = source
    fake.fail(path_of(fake), 429, body={"errors": ["Rate Limit Exceeded"]}, headers={"Retry-After": "0"})
    roster = await src.roster(schedule, at=AT)
    assert roster.current_emails == ["alice@example.com", "carol@example.com"]
    assert len(fake.calls(path_of(fake))) == 2


async def test_429_every_time_is_reported_rate_limited(source: tuple[ScheduleSource, Fake, str]) -> None:
    """A 429 that never lets up leaves as PlatformRateLimited after the retry budget."""
    src, fake, schedule = source
    fake.fail(path_of(fake), 429, body={"errors": ["Rate Limit Exceeded"]}, headers={"Retry-After": "0"}, times=10)
    with pytest.raises(PlatformRateLimited):
        await src.roster(schedule, at=AT)
    assert len(fake.calls(path_of(fake))) == FAST["retry_attempts"]


async def test_5xx_is_retried_then_reported(source: tuple[ScheduleSource, Fake, str]) -> None:
    """A 502 then an answer succeeds; 500 every time is PlatformUnavailable naming the tries."""
    src, fake, schedule = source
    fake.fail(path_of(fake), 502, body={"errors": ["Bad Gateway"]})
    assert len((await src.roster(schedule, at=AT)).current) == 2
    fake.faults.clear()
    fake.reset_log()
    fake.fail(path_of(fake), 500, body={"errors": ["Internal Server Error"]}, times=10)
    with pytest.raises(PlatformUnavailable) as exc:
        await src.roster(schedule, at=AT)
    assert exc.value.status == 500 and "gave up after 3 tries" in exc.value.reason
    assert len(fake.calls(path_of(fake))) == FAST["retry_attempts"]


async def test_timeouts_are_retried_then_reported(source: tuple[ScheduleSource, Fake, str]) -> None:
    """A source slower than the timeout every time is PlatformUnavailable ("did not answer in time")."""
    src, fake, schedule = source
    fake.fail(path_of(fake), 0, delay=1.0, times=10)
    with pytest.raises(PlatformUnavailable) as exc:
        await src.roster(schedule, at=AT)
    assert "did not answer in time" in exc.value.reason and "gave up after 3 tries" in exc.value.reason


async def test_pagerduty_sends_its_required_headers_and_parameters(pagerduty_fake: PagerDutyFake) -> None:
    """Token auth, the v2 Accept and Content-Type headers; one schedule, users included, UTC times with Z."""
    seed(pagerduty_fake, PD_SCHEDULE)
    src = pd_source(pagerduty_fake)
    try:
        await src.roster(PD_SCHEDULE, at=AT)
    finally:
        await src.aclose()
    [req] = pagerduty_fake.calls("/oncalls")
    assert req.headers["authorization"] == f"Token token={PD_KEY}"
    assert req.headers["accept"] == ACCEPT and req.headers["content-type"] == "application/json"
    assert req.query["schedule_ids[]"] == PD_SCHEDULE and req.query["include[]"] == "users"
    assert req.query["since"] == "2026-07-01T08:00:00Z" and req.query["until"] == "2026-07-08T08:00:00Z"
    assert (req.query["limit"], req.query["offset"]) == ("100", "0")


async def test_pagerduty_pages_with_more_and_offset(pagerduty_fake: PagerDutyFake) -> None:
    """150 concurrent on-calls arrive over two pages (offset 0, then 100, until ``more`` is false)."""
    people = [f"P{n:04d}" for n in range(150)]
    for pid in people:
        pagerduty_fake.book.add_person(pid, f"{pid.lower()}@example.com")
    pagerduty_fake.book.on_call(PD_SCHEDULE, people, start=AT - timedelta(hours=1))
    src = pd_source(pagerduty_fake)
    try:
        roster = await src.roster(PD_SCHEDULE, at=AT)
    finally:
        await src.aclose()
    assert len(roster.current) == 150 and roster.next == []
    assert [r.query["offset"] for r in pagerduty_fake.calls("/oncalls")] == ["0", "100"]


async def test_pagerduty_wrong_key_is_refused_by_the_fake(pagerduty_fake: PagerDutyFake) -> None:
    """The fake itself refuses a key it does not know: 401, with the PagerDuty error body read."""
    seed(pagerduty_fake, PD_SCHEDULE)
    src = pd_source(pagerduty_fake, key="not-the-key")
    try:
        with pytest.raises(PlatformAuthError) as exc:
            await src.roster(PD_SCHEDULE, at=AT)
    finally:
        await src.aclose()
    assert exc.value.status == 401 and "Authentication failed" in exc.value.reason
    assert "not-the-key" not in str(exc.value)


async def test_datadog_asks_for_the_included_users_and_positions(datadog_fake: DatadogFake) -> None:
    """Every responders request carries include=responders.shifts.user, the positions and at_ts with Z."""
    seed(datadog_fake, DD_SCHEDULE)
    src = DatadogOnCall(make_datadog_config(datadog_fake, **FAST))
    try:
        await src.roster(DD_SCHEDULE, at=AT)
    finally:
        await src.aclose()
    [req] = datadog_fake.calls("/responders")
    assert req.path == f"/api/v2/on-call/schedules/{DD_SCHEDULE}/responders"
    assert req.query == {
        "include": "responders.shifts.user",
        "filter[position]": "previous,current,next",
        "filter[at_ts]": "2026-07-01T08:00:00Z",
    }
