"""Mapping files: import (CSV/YAML, line-numbered errors), export round-trip, verify drift."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from bot.errors import UsageError
from bot.models import Platform
from bot.ops.mappings_io import export_mappings, import_mappings, verify_mappings
from bot.platforms.base import PlatformClient
from bot.platforms.datadog import DatadogClient
from bot.platforms.kibana import KibanaClient
from bot.platforms.xpanse import XpanseClient
from bot.slack_web import SlackWeb
from bot.store.db import Store
from bot.store.mappings import MappingStore, Source, UserIdentities
from tests.fakes.datadog import DatadogFake
from tests.fakes.kibana import ElasticsearchFake
from tests.fakes.slack import SlackFake
from tests.fakes.xpanse import XpanseFake

T = "T111"
DD1 = "3f1b6c2e-7a5d-4e8b-9c0a-1d2e3f4a5b6c"
DD2 = "0c9a8b7d-6e5f-4a3b-9c2d-1e0f9a8b7c6d"
DD3 = "5a4b3c2d-1e0f-4a9b-8c7d-6e5f4a3b2c1d"
KB1 = "u_79HkWkwmnBH5gqFKwoxggWPjEBOur1zLPXQPEl1VBW0_0"
KB2 = "u_Zz9HkWkwmnBH5gqFKwoxggWPjEBOur1zLPXQPEl1VBW0_1"


@pytest_asyncio.fixture
async def store(tmp_path: Path, db_url: str) -> AsyncIterator[Store]:
    opened = await Store.open(db_url)
    try:
        yield opened
    finally:
        await opened.close()


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# ---- import -------------------------------------------------------------------------------


async def test_import_good_csv_applies_every_row(
    tmp_path: Path, store: Store, slack_fake: SlackFake, slack_client: SlackWeb
) -> None:
    """Ids, mentions and emails resolve; rows apply as 'admin'; empty cells leave values alone."""
    slack_fake.add_user("U3", email="carol@example.com")
    mappings = MappingStore(store)
    await mappings.set(T, "U1", Platform.KIBANA, KB1, source="self", set_by="U1")
    path = write(
        tmp_path,
        "map.csv",
        "\ufeffslack,datadog,kibana,xpanse\n"
        f"U1,{DD1},,\n"
        f"<@U2>,{DD2.upper()},{KB2},bob@example.com\n"
        "Carol@Example.com,,,carol@example.com\n",
    )
    report = await import_mappings(store, path, team_id=T, slack=slack_client, set_by="UADMIN")
    assert report.ok and report.applied and report.written == 5
    assert [(r.line, r.user_id) for r in report.good] == [(2, "U1"), (3, "U2"), (4, "U3")]
    u1 = await mappings.get(T, "U1")
    assert u1.datadog is not None and u1.datadog.value == DD1 and u1.datadog.source is Source.ADMIN
    assert u1.kibana is not None and u1.kibana.value == KB1 and u1.kibana.source is Source.SELF
    u2 = await mappings.get(T, "U2")
    assert u2.datadog is not None and u2.datadog.value == DD2 and u2.datadog.set_by == "UADMIN"
    u3 = await mappings.get(T, "U3")
    assert u3.xpanse is not None and u3.xpanse.value == "carol@example.com"
    assert [c.args for c in slack_fake.calls_to("users.lookupByEmail")] == [{"email": "Carol@Example.com"}]
    assert report.lines()[0].endswith("3 rows, 3 good, 0 bad")
    assert report.lines()[-1] == "applied 3 rows (5 mappings written)"


async def test_import_bad_csv_reports_each_row_and_applies_nothing(
    tmp_path: Path, store: Store, slack_fake: SlackFake, slack_client: SlackWeb
) -> None:
    """Every bad row is reported with its line and reason, and no row is applied."""
    mappings = MappingStore(store)
    await mappings.set(T, "U9", Platform.DATADOG, DD3, source="admin", set_by="U0")
    path = write(
        tmp_path,
        "bad.csv",
        "slack,datadog,kibana,xpanse\n"
        f"U1,{DD1},,\n"  # 2: good
        "U2,not-a-uuid,,\n"  # 3
        "nobody@example.com,,,x@example.com\n"  # 4
        f",{DD2},,\n"  # 5
        "U5,,,\n"  # 6
        f"U1,,{KB1},\n"  # 7: U1 again
        f"U7,{DD3},,\n"  # 8: DD3 is U9's
        "U8,,alice,nope\n"  # 9: two problems
        f"bob,{DD2},,\n"  # 10
        f"U10,{DD1},,\n",  # 11: DD1 also on line 2
    )
    report = await import_mappings(store, path, team_id=T, slack=slack_client)
    assert not report.applied and report.written == 0
    reasons = {e.line: e.reason for e in report.errors}
    assert sorted(reasons) == [3, 4, 5, 6, 7, 8, 9, 10, 11]
    assert "'not-a-uuid' is not a Datadog user id" in reasons[3]
    assert reasons[4] == "no Slack user has the email nobody@example.com"
    assert "the `slack` cell is empty" in reasons[5]
    assert reasons[6] == "no datadog, kibana or xpanse value: nothing to map"
    assert reasons[7] == "<@U1> already appears on line 2"
    assert "already mapped to <@U9>" in reasons[8]
    assert "not a Kibana profile uid" in reasons[9] and "'nope' is not an email" in reasons[9]
    assert "'bob' is neither a Slack user id" in reasons[10]
    assert reasons[11] == f"Datadog {DD1} is also on line 2"
    assert (await mappings.get(T, "U1")).empty
    lines = report.lines()
    assert "  line 3: " in lines[1]
    assert lines[-1] == "nothing applied: fix the bad rows, or re-run with --apply-good-rows"


async def test_import_mixed_csv_with_apply_good_rows(tmp_path: Path, store: Store, slack_client: SlackWeb) -> None:
    """apply_good_rows writes the good rows and still reports the bad ones."""
    path = write(
        tmp_path,
        "mixed.csv",
        f"slack,datadog\nU1,{DD1}\nU2,garbage\nU3,{DD2},extra-cell\nU4,{DD3}\n",
    )
    report = await import_mappings(store, path, team_id=T, slack=slack_client, apply_good_rows=True)
    assert report.applied and report.written == 2
    assert [(e.line, e.reason) for e in report.errors][1] == (
        4,
        "more cells than columns in the header",
    )
    assert [e.line for e in report.errors] == [3, 4]
    everyone = await MappingStore(store).all()
    assert [(u.user_id, u.datadog.value if u.datadog else None) for u in everyone] == [
        ("U1", DD1),
        ("U4", DD3),
    ]


async def test_import_yaml_good_and_bad_rows_with_line_numbers(
    tmp_path: Path, store: Store, slack_fake: SlackFake, slack_client: SlackWeb
) -> None:
    """YAML rows are checked like CSV rows; errors carry the line where each item starts."""
    slack_fake.add_user("U5", email="eve@example.com")
    path = write(
        tmp_path,
        "map.yaml",
        "# team mappings\n"
        f"- slack: U1\n  datadog: {DD1}\n  kibana: {KB1}\n"  # line 2
        "- slack: eve@example.com\n  xpanse: Eve@Example.com\n"  # line 5
        "- slack: U2\n  datadog: 12\n"  # line 7
        "- just a string\n"  # line 9
        "- slack: U3\n  splunk: x\n"  # line 10
        "- slack: U4\n  xpanse: true\n",  # line 12
    )
    report = await import_mappings(store, path, team_id=T, slack=slack_client)
    assert [(r.line, r.user_id) for r in report.good] == [(2, "U1"), (5, "U5")]
    reasons = {e.line: e.reason for e in report.errors}
    assert sorted(reasons) == [7, 9, 10, 12]
    assert "'12' is not a Datadog user id" in reasons[7]
    assert reasons[9] == "expected a mapping with a `slack` key"
    assert reasons[10].startswith("unknown keys splunk")
    assert reasons[12] == "the xpanse value must be text"
    assert not report.applied and (await MappingStore(store).all()) == []

    applied = await import_mappings(store, path, team_id=T, slack=slack_client, apply_good_rows=True)
    assert applied.applied
    u5 = await MappingStore(store).get(T, "U5")
    assert u5.xpanse is not None and u5.xpanse.value == "eve@example.com"


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("m.csv", "user,datadog\nU1,x\n", "a `slack` column is required"),
        ("m.csv", "slack,datdog\nU1,x\n", "unknown columns 'datdog'"),
        ("m.yaml", "slack: U1\n", "must be a list of mappings"),
        ("m.yml", "- slack: [U1\n", "not valid YAML"),
        ("m.json", "[]", "unknown format '.json'"),
    ],
)
async def test_import_refuses_unusable_files(
    tmp_path: Path,
    store: Store,
    slack_client: SlackWeb,
    name: str,
    text: str,
    message: str,
) -> None:
    """A bad header, a non-list YAML, broken YAML or an unknown extension is a UsageError."""
    path = write(tmp_path, name, text)
    with pytest.raises(UsageError, match=message):
        await import_mappings(store, path, team_id=T, slack=slack_client)


async def test_import_missing_file_is_a_usage_error(tmp_path: Path, store: Store, slack_client: SlackWeb) -> None:
    """A path that does not exist gives a UsageError naming it."""
    with pytest.raises(UsageError, match="cannot read"):
        await import_mappings(store, tmp_path / "nope.csv", team_id=T, slack=slack_client)


# ---- export -------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "yaml"])
async def test_export_round_trips_through_import(
    fmt: str, tmp_path: Path, store: Store, slack_fake: SlackFake, slack_client: SlackWeb
) -> None:
    """What export writes, import reads back into an empty store as the same values."""
    mappings = MappingStore(store)
    await mappings.set_many(T, "U1", {Platform.DATADOG: DD1, Platform.KIBANA: KB1}, source="self", set_by="U1")
    await mappings.set(T, "U2", Platform.XPANSE, "bob@example.com", source="auto", set_by=None)
    await mappings.set("T222", "U3", Platform.DATADOG, DD2, source="admin", set_by="U0")
    text = await export_mappings(store, fmt=fmt, team_id=T)  # type: ignore[arg-type]
    assert "U3" not in text
    path = write(tmp_path, f"export.{fmt}", text)

    other = await Store.open(tmp_path / "other.db")
    try:
        report = await import_mappings(other, path, team_id=T, slack=slack_client)
        assert report.ok and report.applied

        def values(users: list[UserIdentities]) -> list[tuple[str, list[tuple[Platform, str]]]]:
            return [(u.user_id, [(i.platform, i.value) for i in u.identities]) for u in users]

        assert values(await MappingStore(other).all()) == values(await mappings.all(team_id=T))
    finally:
        await other.close()
    assert slack_fake.calls == []


async def test_export_csv_shape_and_unknown_format(store: Store) -> None:
    """CSV export has the import header and one row per user; other formats are refused."""
    await MappingStore(store).set(T, "U1", Platform.KIBANA, KB1, source="self", set_by="U1")
    assert await export_mappings(store, fmt="csv") == f"slack,datadog,kibana,xpanse\nU1,,{KB1},\n"
    assert await export_mappings(MappingStore(store), fmt="yaml") == f"- slack: U1\n  kibana: {KB1}\n"
    with pytest.raises(UsageError, match="unknown export format"):
        await export_mappings(store, fmt="xml")  # type: ignore[arg-type]


# ---- verify -------------------------------------------------------------------------------


async def test_verify_reports_each_kind_of_drift(
    store: Store,
    datadog_client: DatadogClient,
    kibana_client: KibanaClient,
    xpanse_client: XpanseClient,
    datadog_fake: DatadogFake,
    elasticsearch_fake: ElasticsearchFake,
    xpanse_fake: XpanseFake,
) -> None:
    """ok identities are recorded as verified; disabled, gone and missing ones are one line each."""
    datadog_fake.add_user(DD1, "ann@example.com")
    datadog_fake.add_user(DD2, "ben@example.com", disabled=True, status="Disabled")
    elasticsearch_fake.add_profile(KB1, email="ann@example.com", username="ann")
    xpanse_fake.add_user("ann@example.com", "Ann", "A")
    mappings = MappingStore(store)
    await mappings.set_many(
        T,
        "U1",
        {Platform.DATADOG: DD1, Platform.KIBANA: KB1, Platform.XPANSE: "ann@example.com"},
        source="admin",
        set_by="U0",
    )
    await mappings.set_many(
        T,
        "U2",
        {Platform.DATADOG: DD2, Platform.KIBANA: KB2, Platform.XPANSE: "ben@example.com"},
        source="admin",
        set_by="U0",
    )
    await mappings.set(T, "U3", Platform.DATADOG, DD3, source="auto", set_by=None)
    clients: dict[Platform, PlatformClient] = {
        Platform.DATADOG: datadog_client,
        Platform.KIBANA: kibana_client,
        Platform.XPANSE: xpanse_client,
    }
    report = await verify_mappings(store, clients)
    assert (report.checked, report.ok) == (7, 3)
    assert {(d.user_id, d.platform) for d in report.drifts} == {
        ("U2", Platform.DATADOG),
        ("U2", Platform.KIBANA),
        ("U2", Platform.XPANSE),
        ("U3", Platform.DATADOG),
    }
    lines = report.lines()
    assert lines[0] == "checked 7 identities: 3 ok, 4 drifted, 0 unverified"
    assert f"<@U2> (T111) datadog={DD2}: drift: Datadog user {DD2} is disabled or no longer exists" in lines
    assert f"<@U3> (T111) datadog={DD3}: drift: Datadog user {DD3} is disabled or no longer exists" in lines
    assert f"<@U2> (T111) kibana={KB2}: drift: Kibana profile {KB2} no longer exists" in lines
    assert "<@U2> (T111) xpanse=ben@example.com: drift: ben@example.com is not a user in the Xpanse tenant" in lines
    u1 = await mappings.get(T, "U1")
    assert all(i.verified_at is not None for i in u1.identities)
    u2 = await mappings.get(T, "U2")
    assert all(i.verified_at is None for i in u2.identities)


async def test_verify_marks_unconfigured_platforms_unverified(
    store: Store, datadog_client: DatadogClient, datadog_fake: DatadogFake
) -> None:
    """Identities on platforms without a client are reported 'unverified', not drifted."""
    datadog_fake.add_user(DD1, "ann@example.com")
    await MappingStore(store).set_many(
        T,
        "U1",
        {Platform.DATADOG: DD1, Platform.XPANSE: "ann@example.com"},
        source="admin",
        set_by="U0",
    )
    report = await verify_mappings(MappingStore(store), {Platform.DATADOG: datadog_client})
    assert (report.checked, report.ok, len(report.drifts)) == (2, 1, 0)
    assert report.lines() == [
        "checked 2 identities: 1 ok, 0 drifted, 1 unverified",
        "<@U1> (T111) xpanse=ann@example.com: unverified (platform not configured)",
    ]


async def test_verify_reports_platform_failures_as_unverified(
    store: Store, datadog_client: DatadogClient, datadog_fake: DatadogFake
) -> None:
    """A platform that keeps failing yields 'unverified (... could not be checked ...)'."""
    await MappingStore(store).set(T, "U1", Platform.DATADOG, DD1, source="admin", set_by="U0")
    datadog_fake.fail("/api/v2/users", status=503, times=20)
    report = await verify_mappings(store, {Platform.DATADOG: datadog_client})
    assert report.ok == 0 and len(report.unverified) == 1
    assert "unverified (Datadog could not be checked" in report.lines()[1]
