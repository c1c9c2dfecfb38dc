"""How search results come back: `_sort` (several keys, descending, stable), `_total`,
`_summary=count`, paging with `_count`, and a CapabilityStatement that lists exactly that."""

from __future__ import annotations

import pytest

from tests.fhir.conftest import Hub
from tests.fhir.test_search import create, search_ids


@pytest.fixture
async def people(hub: Hub) -> dict[str, str]:
    def patient(family: str, given: str, birth: str | None) -> dict[str, object]:
        resource: dict[str, object] = {
            "resourceType": "Patient",
            "name": [{"family": family, "given": [given]}],
        }
        if birth:
            resource["birthDate"] = birth
        return resource

    return {
        "anna": await create(hub, patient("Zeller", "Anna", "1990-01-01")),
        "bert": await create(hub, patient("Adler", "Bert", "1980-05-05")),
        "carl": await create(hub, patient("Adler", "Carl", "1985-03-03")),
        "dora": await create(hub, patient("Meier", "Dora", None)),
    }


async def test_sort_by_several_keys(hub: Hub, people: dict[str, str]) -> None:
    by_name = await search_ids(hub, "/fhir/Patient", _sort="family,-birthdate")
    assert by_name == [people[p] for p in ("carl", "bert", "dora", "anna")]
    by_birth = await search_ids(hub, "/fhir/Patient", _sort="birthdate")
    assert by_birth == [people[p] for p in ("bert", "carl", "anna", "dora")]  # missing last
    newest = await search_ids(hub, "/fhir/Patient", _sort="-_lastUpdated")
    assert newest == [people[p] for p in ("dora", "carl", "bert", "anna")]
    by_id = await search_ids(hub, "/fhir/Patient", _sort="_id")
    assert by_id == sorted(people.values())


async def test_sorted_pages_are_stable(hub: Hub, people: dict[str, str]) -> None:
    seen: list[str] = []
    url: str | None = "/fhir/Patient?_sort=family&_count=1"
    while url:
        bundle = (await hub.http.get(url, headers=await hub.token())).json()
        seen += [entry["resource"]["id"] for entry in bundle["entry"]]
        url = next((link["url"] for link in bundle["link"] if link["relation"] == "next"), None)
    assert seen[:2] == [people["bert"], people["carl"]]
    assert sorted(seen) == sorted(people.values())


async def _total(hub: Hub, query: str) -> dict[str, object]:
    response = await hub.http.get(f"/fhir/Patient?{query}", headers=await hub.token())
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_totals(hub: Hub, people: dict[str, str]) -> None:
    assert (await _total(hub, "_total=accurate&_count=1"))["total"] == 4
    assert (await _total(hub, "_total=estimate&_count=1"))["total"] == 4
    assert "total" not in await _total(hub, "_total=none")
    assert "total" not in await _total(hub, "_count=1")  # not known without counting
    assert (await _total(hub, "family=adler"))["total"] == 2  # known from the one page
    counted = await _total(hub, "_summary=count&family=adler")
    assert counted["total"] == 2
    assert not counted.get("entry")


async def test_capability_statement_lists_what_works(hub: Hub) -> None:
    statement = (await hub.http.get("/fhir/metadata")).json()
    observation = next(r for r in statement["rest"][0]["resource"] if r["type"] == "Observation")
    params = {p["name"]: p["type"] for p in observation["searchParam"]}
    assert params["value-quantity"] == "quantity"
    assert params["code-value-quantity"] == "composite"
    assert params["_profile"] == "uri"
    assert params["_has"] == "special"
    assert "_text" not in params
    assert "_content" not in params
    assert "Observation:subject" in observation["searchInclude"]
    assert "*" in observation["searchInclude"]
    patient = next(r for r in statement["rest"][0]["resource"] if r["type"] == "Patient")
    assert "Observation:subject" in patient["searchRevInclude"]
    subject = next(p for p in observation["searchParam"] if p["name"] == "subject")
    assert "chain" in subject["documentation"]


async def test_answers_without_entries_have_no_entry_array(
    hub: Hub, people: dict[str, str]
) -> None:
    """R4 forbids empty arrays (ele-1): searches, counts, histories, `$everything` and a
    batch's search without entries have no `entry` at all, and pass `$validate`."""
    headers = await hub.token()
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [{"request": {"method": "GET", "url": "Patient?family=Nobody"}}],
    }
    answered = await hub.http.post("/fhir", json=batch, headers=headers)
    assert answered.status_code == 200, answered.text
    bundles = [answered.json()["entry"][0]["resource"]]
    for path in (
        "/fhir/Patient?family=Nobody",
        "/fhir/Patient?_summary=count",
        "/fhir/Patient?_count=0",
        "/fhir/Practitioner/_history",
        "/fhir/_history?_since=2999-01-01T00:00:00Z",
        f"/fhir/Patient/{people['anna']}/$everything?_type=Observation",
    ):
        response = await hub.http.get(path, headers=headers)
        assert response.status_code == 200, (path, response.text)
        bundles.append(response.json())
    for bundle in bundles:
        assert "entry" not in bundle, bundle
        checked = await hub.http.post("/fhir/Bundle/$validate", json=bundle, headers=headers)
        problems = [i for i in checked.json()["issue"] if i["severity"] in ("error", "fatal")]
        assert problems == [], bundle


@pytest.mark.parametrize(
    "query", ["family=Adler&_summary=count", "_summary=count", "family=Adler&_count=0"]
)
async def test_a_count_links_to_itself_as_asked(
    hub: Hub, people: dict[str, str], query: str
) -> None:
    """A count has no pages: its self link is the search as sent, without `_count` or
    `_offset` added."""
    response = await hub.http.get(f"/fhir/Patient?{query}", headers=await hub.token())
    assert response.status_code == 200, response.text
    bundle = response.json()
    assert bundle["total"] == (2 if "family" in query else 4)
    base = hub.platform.settings.public_url
    assert bundle["link"] == [{"relation": "self", "url": f"{base}/fhir/Patient?{query}"}]
