"""MappingStore: validation, upserts, sources, reverse look-ups."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import pytest_asyncio

from bot.errors import UsageError
from bot.models import Platform
from bot.store.db import Store
from bot.store.mappings import MappingStore, Source, validate_identity

DD = "3f1b6c2e-7a5d-4e8b-9c0a-1d2e3f4a5b6c"
DD2 = "0c9a8b7d-6e5f-4a3b-9c2d-1e0f9a8b7c6d"
KB = "u_79HkWkwmnBH5gqFKwoxggWPjEBOur1zLPXQPEl1VBW0_0"


@pytest_asyncio.fixture
async def mappings(tmp_path: Path, db_url: str) -> AsyncIterator[MappingStore]:
    store = await Store.open(db_url)
    try:
        yield MappingStore(store)
    finally:
        await store.close()


@pytest.mark.parametrize(
    ("platform", "value", "expected"),
    [
        (Platform.DATADOG, DD.upper(), DD),
        (Platform.DATADOG, f"  {DD} ", DD),
        (Platform.KIBANA, KB, KB),
        (Platform.KIBANA, "u_abc-DEF_123456", "u_abc-DEF_123456"),
        (Platform.XPANSE, " Alice@Example.COM ", "alice@example.com"),
    ],
)
def test_validate_identity_normalises_good_values(platform: Platform, value: str, expected: str) -> None:
    """Well-formed values are accepted and normalised (UUID case, email case, whitespace)."""
    assert validate_identity(platform, value) == expected


@pytest.mark.parametrize(
    ("platform", "value", "message"),
    [
        (Platform.DATADOG, "alice@example.com", "not a Datadog user id: expected the user's UUID"),
        (Platform.DATADOG, "", "not a Datadog user id"),
        (Platform.KIBANA, "alice", "not a Kibana profile uid: expected u_"),
        (Platform.KIBANA, "u_short", "not a Kibana profile uid"),
        (Platform.KIBANA, "u_has space in it_0", "not a Kibana profile uid"),
        (Platform.XPANSE, "alice", "not an email address"),
        (Platform.XPANSE, "a@b", "not an email address"),
        ("splunk", "x", "unknown platform 'splunk'"),
    ],
)
def test_validate_identity_rejects_bad_values(platform: Platform, value: str, message: str) -> None:
    """Malformed values raise UsageError saying what shape was expected."""
    with pytest.raises(UsageError, match=message):
        validate_identity(platform, value)


async def test_get_unknown_user_is_empty(mappings: MappingStore) -> None:
    """A user with no mappings gets an empty UserIdentities, not an error."""
    found = await mappings.get("T1", "U1")
    assert (found.team_id, found.user_id) == ("T1", "U1")
    assert found.empty and found.datadog is None and found.identities == []


async def test_set_then_get_round_trips_every_field(mappings: MappingStore) -> None:
    """set stores value, source, set_by and a timestamp; get reads them back per platform."""
    before = datetime.now(UTC)
    identity = await mappings.set("T1", "U1", Platform.DATADOG, DD.upper(), source="admin", set_by="UADMIN")
    assert identity.value == DD and identity.source is Source.ADMIN and identity.set_by == "UADMIN"
    assert identity.updated_at >= before and identity.verified_at is None
    await mappings.set("T1", "U1", Platform.KIBANA, KB, source=Source.SELF, set_by="U1")
    found = await mappings.get("T1", "U1")
    assert found.datadog == identity
    assert found.kibana is not None and found.kibana.value == KB and found.kibana.source is Source.SELF
    assert found.xpanse is None
    assert [i.platform for i in found.identities] == [Platform.DATADOG, Platform.KIBANA]


async def test_set_replaces_the_previous_value(mappings: MappingStore) -> None:
    """Setting a platform again replaces value and source and clears verification."""
    await mappings.set("T1", "U1", Platform.DATADOG, DD, source="auto", set_by=None)
    await mappings.mark_verified("T1", "U1", Platform.DATADOG)
    await mappings.set("T1", "U1", Platform.DATADOG, DD2, source="self", set_by="U1")
    found = await mappings.get_one("T1", "U1", Platform.DATADOG)
    assert found is not None
    assert (found.value, found.source, found.verified_at) == (DD2, Source.SELF, None)


async def test_set_rejects_bad_value_before_writing(mappings: MappingStore) -> None:
    """A malformed value raises UsageError and nothing is stored."""
    with pytest.raises(UsageError, match="not a Kibana profile uid"):
        await mappings.set("T1", "U1", Platform.KIBANA, "bob", source="admin", set_by="U9")
    assert (await mappings.get("T1", "U1")).empty


async def test_set_many_is_all_or_nothing(mappings: MappingStore) -> None:
    """When one value is already someone else's, no value of the batch is written."""
    await mappings.set("T1", "U2", Platform.XPANSE, "bob@example.com", source="admin", set_by="U9")
    with pytest.raises(UsageError, match=r"already mapped to <@U2>"):
        await mappings.set_many(
            "T1",
            "U1",
            {Platform.DATADOG: DD, Platform.XPANSE: "BOB@example.com"},
            source="admin",
            set_by="U9",
        )
    assert (await mappings.get("T1", "U1")).empty


async def test_same_value_may_map_in_another_workspace(mappings: MappingStore) -> None:
    """Uniqueness of a platform identity is per workspace."""
    await mappings.set("T1", "U1", Platform.DATADOG, DD, source="admin", set_by="U9")
    await mappings.set("T2", "U5", Platform.DATADOG, DD, source="admin", set_by="U9")
    assert await mappings.find_by_value(Platform.DATADOG, DD, team_id="T2") == ("T2", "U5")


async def test_find_by_value_reverse_lookup(mappings: MappingStore) -> None:
    """find_by_value maps a platform identity back to its Slack user, normalising the value."""
    await mappings.set("T1", "U1", Platform.DATADOG, DD, source="admin", set_by="U9")
    await mappings.set("T1", "U2", Platform.XPANSE, "carol@example.com", source="self", set_by="U2")
    assert await mappings.find_by_value(Platform.DATADOG, DD.upper()) == ("T1", "U1")
    assert await mappings.find_by_value(Platform.XPANSE, "Carol@Example.com") == ("T1", "U2")
    assert await mappings.find_by_value(Platform.KIBANA, KB) is None
    assert await mappings.find_by_value(Platform.DATADOG, "not-a-uuid") is None
    assert await mappings.find_by_value(Platform.DATADOG, DD, team_id="T9") is None


async def test_unset_and_mark_verified_report_whether_a_row_existed(mappings: MappingStore) -> None:
    """unset/mark_verified return True only for an existing mapping."""
    assert await mappings.unset("T1", "U1", Platform.DATADOG) is False
    assert await mappings.mark_verified("T1", "U1", Platform.DATADOG) is False
    await mappings.set("T1", "U1", Platform.DATADOG, DD, source="admin", set_by="U9")
    assert await mappings.mark_verified("T1", "U1", Platform.DATADOG) is True
    found = await mappings.get_one("T1", "U1", Platform.DATADOG)
    assert found is not None and found.verified_at is not None
    assert await mappings.unset("T1", "U1", Platform.DATADOG) is True
    assert await mappings.get_one("T1", "U1", Platform.DATADOG) is None


async def test_all_groups_rows_per_user_in_order(mappings: MappingStore) -> None:
    """all() returns one UserIdentities per user, ordered, optionally for one workspace."""
    await mappings.set("T2", "U1", Platform.XPANSE, "z@example.com", source="admin", set_by=None)
    await mappings.set("T1", "U2", Platform.KIBANA, KB, source="admin", set_by=None)
    await mappings.set("T1", "U2", Platform.DATADOG, DD, source="admin", set_by=None)
    await mappings.set("T1", "U1", Platform.XPANSE, "a@example.com", source="admin", set_by=None)
    everyone = await mappings.all()
    assert [(u.team_id, u.user_id) for u in everyone] == [("T1", "U1"), ("T1", "U2"), ("T2", "U1")]
    assert everyone[1].datadog is not None and everyone[1].kibana is not None
    assert [u.user_id for u in await mappings.all(team_id="T2")] == ["U1"]


async def test_mappings_survive_reopen(tmp_path: Path, db_url: str) -> None:
    """What is written is on disk: a fresh Store on the same file reads it back."""
    store = await Store.open(db_url)
    await MappingStore(store).set("T1", "U1", Platform.KIBANA, KB, source="self", set_by="U1")
    await store.close()
    store = await Store.open(db_url)
    try:
        found = await MappingStore(store).get("T1", "U1")
        assert found.kibana is not None and found.kibana.value == KB
    finally:
        await store.close()
