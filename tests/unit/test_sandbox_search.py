"""The sandbox Datadog tenant answers a search by id with those findings only, recorded ones included."""

from __future__ import annotations

import httpx

from bot.sandbox.datadog import DatadogSandbox

HEADERS = {"DD-API-KEY": "k", "DD-APPLICATION-KEY": "a"}


async def _ids(dd: DatadogSandbox, query: str) -> list[str]:
    body = {"data": {"type": "search_request", "attributes": {"filter": query, "page": {"limit": 100}}}}
    async with httpx.AsyncClient(base_url=dd.url, headers=HEADERS, timeout=5) as client:
        got = await client.post("/api/v2/security/findings/search", json=body)
    assert got.status_code == 200, got.text
    return [d["attributes"]["attributes"]["custom"]["finding_id"] for d in got.json()["data"]]


async def test_a_search_by_id_finds_exactly_those_findings_newest_first() -> None:
    async with DatadogSandbox(api_key="k", app_key="a") as dd:
        for n in range(30):
            dd.add_finding(f"find{n:03d}AbC", title=f"F{n}")
        recorded = dd.finding_json("find000AbC")
        recorded["attributes"]["attributes"]["custom"]["finding_id"] = "recordedAbC"
        dd.add_finding("stored-under-another-key", raw=recorded)
        assert await _ids(dd, '@finding_id:("find003AbC" OR find010AbC OR missing)') == ["find010AbC", "find003AbC"]
        assert await _ids(dd, "@finding_id:recordedAbC") == ["recordedAbC"]
        assert len(await _ids(dd, "@status:open")) == 31
