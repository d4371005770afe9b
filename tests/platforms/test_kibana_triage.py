"""KibanaClient reopening, acknowledging, tagging and noting alerts, against the contract-checked fake.

SetAlertsStatus, SetAlertTags and PersistNoteRoute are in ``shared/contracts/kibana.yaml``;
the fixture's fake validates every request (under ``/s/<space>`` too) and the test fails
on any violation.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from bot.errors import UsageError
from bot.models import Outcome, Platform, Target
from bot.platforms.kibana import KibanaClient
from tests.fakes.kibana import ElasticsearchFake, KibanaFake, make_kibana_config

HEADERS = {"kbn-xsrf": "true", "elastic-api-version": "2023-10-31", "Content-Type": "application/json"}


def kt(alert_id: str, space: str | None = None) -> Target:
    return Target(platform=Platform.KIBANA, id=alert_id, space=space)


@pytest.fixture
async def raw_fake() -> AsyncIterator[KibanaFake]:
    """A Kibana fake whose answers the test reads itself."""
    fake = KibanaFake()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


def auth(fake: KibanaFake) -> dict[str, str]:
    return {**HEADERS, "Authorization": f"ApiKey {fake.api_key}"}


# ---- status ---------------------------------------------------------------------------------


async def test_reopen_sets_open_and_skips_open_alerts(kibana_client: KibanaClient, kibana_fake: KibanaFake) -> None:
    """A closed alert goes back to open in one status write; one already open is SKIPPED, not sent."""
    kibana_fake.add_alert("a1", status="closed")
    kibana_fake.add_alert("a2", status="open")
    result = await kibana_client.reopen([kt("a1"), kt("a2")], comment="not noise")
    assert [i.outcome for i in result.items] == [Outcome.DONE, Outcome.SKIPPED]
    assert result.items[0].detail == "reopened; comment kept in Slack only"
    (write,) = kibana_fake.writes()
    assert write.body == {"signal_ids": ["a1"], "status": "open"}
    assert kibana_fake.status("a1") == "open"


async def test_acknowledge_in_a_space(kibana_client: KibanaClient, kibana_fake: KibanaFake) -> None:
    """Acknowledge writes status acknowledged under /s/<space>."""
    kibana_fake.add_alert("s1", space="secops")
    result = await kibana_client.acknowledge([kt("s1", "secops"), kt("gone", "secops")])
    assert [i.outcome for i in result.items] == [Outcome.DONE, Outcome.NOT_FOUND]
    (write,) = kibana_fake.writes()
    assert write.path == "/s/secops/api/detection_engine/signals/status"
    assert kibana_fake.status("s1", "secops") == "acknowledged"


async def test_status_write_failure_is_failed_per_item(kibana_client: KibanaClient, kibana_fake: KibanaFake) -> None:
    """A 500 that outlasts the retries fails the items with Kibana's message."""
    kibana_fake.add_alert("a1", status="closed")
    kibana_fake.fail("/signals/status", 500, times=10, body={"message": "Internal Server Error", "status_code": 500})
    result = await kibana_client.reopen([kt("a1")])
    assert (result.items[0].outcome, result.items[0].status) == (Outcome.FAILED, 500)


# ---- tags -----------------------------------------------------------------------------------


async def test_tag_sends_both_lists_and_the_tenant_applies_them(
    kibana_client: KibanaClient, kibana_fake: KibanaFake
) -> None:
    """One SetAlertTags per space with ids and both lists; removals first, then additions."""
    source = kibana_fake.add_alert("a1")
    source["kibana.alert.workflow_tags"] = ["noise"]
    result = await kibana_client.tag([kt("a1"), kt("nope")], add=["triaged"], remove=["noise"])
    assert [i.outcome for i in result.items] == [Outcome.DONE, Outcome.NOT_FOUND]
    assert result.items[0].detail == "tagged +triaged -noise"
    (write,) = kibana_fake.calls("/signals/tags")
    assert write.body == {"ids": ["a1"], "tags": {"tags_to_add": ["triaged"], "tags_to_remove": ["noise"]}}
    assert kibana_fake.tags("a1") == ["triaged"]


@pytest.mark.parametrize(
    ("add", "remove", "message"),
    [(["x"], ["x"], "added and removed at once"), (["two words"], [], "not a tag"), ([], [], "at least one tag")],
)
async def test_bad_tags_are_refused_before_any_call(
    kibana_client: KibanaClient, kibana_fake: KibanaFake, add: list[str], remove: list[str], message: str
) -> None:
    """A tag in both lists, a tag with a space or no tag at all never reaches Kibana."""
    kibana_fake.add_alert("a1")
    with pytest.raises(UsageError, match=message):
        await kibana_client.tag([kt("a1")], add=add, remove=remove)
    assert kibana_fake.requests == []


async def test_the_tenant_answers_the_documented_duplicate_tag_400(raw_fake: KibanaFake) -> None:
    """The same tag in both lists is the SIEM-style 400 with an array message (contract-valid request)."""
    raw_fake.add_alert("a1")
    body = {"ids": ["a1"], "tags": {"tags_to_add": ["x"], "tags_to_remove": ["x"]}}
    async with httpx.AsyncClient(base_url=raw_fake.url, headers=auth(raw_fake)) as http:
        response = await http.post("/api/detection_engine/signals/tags", json=body)
    assert response.status_code == 400
    assert response.json()["message"] == [
        'Duplicate tags ["x"] were found in the tags_to_add and tags_to_remove parameters.'
    ]
    assert raw_fake.violations == []


async def test_the_contract_refuses_a_tags_body_without_both_lists(raw_fake: KibanaFake) -> None:
    """SetAlertTags requires tags_to_add and tags_to_remove: a body with one is a violation."""
    async with httpx.AsyncClient(base_url=raw_fake.url, headers=auth(raw_fake)) as http:
        response = await http.post(
            "/api/detection_engine/signals/tags", json={"ids": ["a1"], "tags": {"tags_to_add": ["x"]}}
        )
    assert response.status_code == 400
    assert len(raw_fake.violations) == 1


# ---- notes ----------------------------------------------------------------------------------


async def test_notes_are_one_patch_per_alert_in_its_space(kibana_client: KibanaClient, kibana_fake: KibanaFake) -> None:
    """A note is PATCH [/s/<space>]/api/note with eventId, an empty timelineId and the text."""
    written = await kibana_client.add_notes({kt("a1"): "closed by alice", kt("s1", "secops"): "closed by bob"})
    assert written == {kt("a1"): None, kt("s1", "secops"): None}
    paths = sorted(r.path for r in kibana_fake.calls("/api/note", "PATCH"))
    assert paths == ["/api/note", "/s/secops/api/note"]
    assert kibana_fake.notes["default"][0]["eventId"] == "a1"
    body = next(r.body for r in kibana_fake.calls("/api/note") if r.path == "/api/note")
    assert body == {"note": {"eventId": "a1", "timelineId": "", "note": "closed by alice"}}


async def test_the_older_note_answer_is_read_and_its_403_code_is_a_problem(
    kibana_client: KibanaClient, kibana_fake: KibanaFake
) -> None:
    """The data.persistNote shape is accepted; HTTP 200 with persistNote.code 403 is a failed note."""
    kibana_fake.note_shape = "legacy"
    assert await kibana_client.add_notes({kt("a1"): "x"}) == {kt("a1"): None}
    limit = "Cannot create more than 1000 notes without associating them to a timeline"
    kibana_fake.fail("/api/note", 200, body={"data": {"persistNote": {"code": 403, "message": limit}}})
    problems = await kibana_client.add_notes({kt("a1"): "y"})
    assert problems == {kt("a1"): f"Kibana refused the note (403: {limit})"}


async def test_a_refused_note_is_reported_not_raised(kibana_client: KibanaClient, kibana_fake: KibanaFake) -> None:
    """A 403 (no Notes privilege) comes back as the problem of that alert."""
    kibana_fake.fail("/api/note", 403, body={"statusCode": 403, "error": "Forbidden", "message": "no notes_write"})
    problems = await kibana_client.add_notes({kt("a1"): "x"})
    assert "no notes_write" in str(problems[kt("a1")])


async def test_notes_off_sends_nothing(kibana_fake: KibanaFake, elasticsearch_fake: ElasticsearchFake) -> None:
    """With KIBANA_NOTES=off (config notes=False) no note is written."""
    config = make_kibana_config(kibana_fake, elasticsearch_fake).model_copy(update={"notes": False})
    client = KibanaClient(config)
    try:
        assert await client.add_notes({kt("a1"): "x"}) == {}
    finally:
        await client.aclose()
    assert kibana_fake.requests == []


async def test_the_contract_refuses_a_note_without_timeline_id(raw_fake: KibanaFake) -> None:
    """BareNote requires timelineId: a note without it is a violation."""
    async with httpx.AsyncClient(base_url=raw_fake.url, headers=auth(raw_fake)) as http:
        response = await http.patch("/api/note", json={"note": {"eventId": "a1", "note": "x"}})
    assert response.status_code == 400
    assert len(raw_fake.violations) == 1
