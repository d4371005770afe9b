"""The Kibana and Elasticsearch fakes answer as recorded on 9.5.2 and Serverless 9.6.0."""

from __future__ import annotations

import httpx
import pytest

from bot.errors import NotMappedError
from bot.models import Outcome, Platform, Target
from bot.platforms.kibana import KibanaClient
from tests.fakes.kibana import KIBANA_API_KEY, ElasticsearchFake, KibanaFake
from tests.fakes.recorded import kibana

HEADERS = {"Authorization": f"ApiKey {KIBANA_API_KEY}", "kbn-xsrf": "true", "elastic-api-version": "2023-10-31"}


async def post(fake: KibanaFake, path: str, body: dict[str, object]) -> httpx.Response:
    async with httpx.AsyncClient(base_url=fake.url, headers=HEADERS) as http:
        return await http.post(path, json=body)


async def test_status_counts_an_alert_already_closed_as_updated(kibana_fake: KibanaFake) -> None:
    """As recorded: every matched alert is updated (noops 0); unknown ids alone give the all-zero body."""
    kibana_fake.add_alert("a1", status="closed")
    kibana_fake.add_alert("a2")
    done = (
        await post(
            kibana_fake, "/api/detection_engine/signals/status", {"signal_ids": ["a1", "a2"], "status": "closed"}
        )
    ).json()
    recorded = kibana("ech-9.5.2/signals_status_ids.json")["response"]
    assert set(done) == set(recorded)
    assert (done["total"], done["updated"], done["noops"]) == (2, 2, 0)
    none = (
        await post(kibana_fake, "/api/detection_engine/signals/status", {"signal_ids": ["zz"], "status": "closed"})
    ).json()
    assert (none["total"], none["updated"], none["batches"], none["noops"]) == (0, 0, 0, 0)


async def test_search_drops_from_and_search_after(kibana_fake: KibanaFake) -> None:
    """from and search_after are not forwarded by Kibana's route: the same first page comes back."""
    for n in range(3):
        kibana_fake.add_alert(f"a{n}")
    base = {"query": {"match_all": {}}, "size": 2, "sort": [{"kibana.alert.uuid": {"order": "asc"}}]}
    first = (await post(kibana_fake, "/api/detection_engine/signals/search", base)).json()
    paged = (await post(kibana_fake, "/api/detection_engine/signals/search", {**base, "search_after": ["a1"]})).json()
    assert [h["_id"] for h in paged["hits"]["hits"]] == [h["_id"] for h in first["hits"]["hits"]] == ["a0", "a1"]


async def test_serverless_suggest_410_gives_the_explicit_mapping_message(
    kibana_client: KibanaClient, elasticsearch_fake: ElasticsearchFake
) -> None:
    """With the ES fake in Serverless mode the look-up says to map explicitly, and asks only once."""
    elasticsearch_fake.serverless = True
    elasticsearch_fake.add_profile("u_ann_0", email="ann@example.com", username="ann")
    for _ in range(2):
        with pytest.raises(NotMappedError, match="explicit mappings"):
            await kibana_client.find_user_by_email("ann@example.com")
    assert len(elasticsearch_fake.calls("/_suggest")) == 1
    assert (await kibana_client.get_user("u_ann_0")) is not None


async def test_assign_of_an_id_gone_between_read_and_write_is_not_found(
    kibana_client: KibanaClient, kibana_fake: KibanaFake
) -> None:
    """total below the ids sent is the only not-found signal: the re-read reports the vanished alert."""
    kibana_fake.add_alert("a1")
    kibana_fake.add_alert("a2")
    real = kibana_fake._assignees

    def vanish(space: str, index: dict[str, dict[str, object]], body: dict[str, object]) -> object:
        index.pop("a2", None)
        return real(space, index, body)

    kibana_fake._assignees = vanish  # type: ignore[assignment,method-assign]
    result = await kibana_client.assign(
        [Target(platform=Platform.KIBANA, id=i, space="default") for i in ("a1", "a2")], "u_ann_0"
    )
    assert [i.outcome for i in result.items] == [Outcome.DONE, Outcome.NOT_FOUND]
