"""FHIR search through HTTP over the index derived from the official search parameters:
token, string, reference and date parameters, _id and _lastUpdated, OR and AND, paging,
_total, unknown parameters, and the organisation filter inside the query."""

from __future__ import annotations

import orjson
import pytest

from tests.fhir.conftest import Hub
from tests.support import clients, resources
from tests.support.resources import KVNR


async def create(hub: Hub, resource: dict[str, object], organisation: str = "hospital-a") -> str:
    return await clients.create(hub.http, await hub.token(organisation=organisation), resource)


async def search_ids(hub: Hub, path: str, **params: str) -> list[str]:
    response = await hub.http.get(path, params=params, headers=await hub.token())
    assert response.status_code == 200, response.text
    bundle = response.json()
    assert bundle["type"] == "searchset"
    return [entry["resource"]["id"] for entry in bundle.get("entry", [])]


async def assert_refused(hub: Hub, path: str, expression: str) -> None:
    """A search that answers 400 with an OperationOutcome naming `expression`."""
    response = await hub.http.get(path, headers=await hub.token())
    assert response.status_code == 400, response.text
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert [expression] in [issue.get("expression") for issue in outcome["issue"]]


@pytest.fixture
async def ward(hub: Hub) -> dict[str, str]:
    erika = await create(hub, resources.patient("A123456780", "Müller", "Erika", "1964-08-12"))
    max_ = await create(hub, resources.patient("B987654321", "Mustermann", "Max", "1971-02-03"))
    hb = await create(hub, resources.observation(erika, "718-7", "2026-11-01T10:00:00Z"))
    glucose = await create(hub, resources.observation(erika, "2345-7", "2026-10-15T08:30:00Z"))
    other = await create(hub, resources.observation(max_, "718-7", "2025-01-01T00:00:00Z"))
    foreign = await create(
        hub,
        resources.patient("A123456780", "Müller", "Erika", "1964-08-12"),
        organisation="hospital-b",
    )
    return {
        "erika": erika,
        "max": max_,
        "hb": hb,
        "glucose": glucose,
        "other": other,
        "foreign": foreign,
    }


async def test_patient_by_kvnr(hub: Hub, ward: dict[str, str]) -> None:
    found = await search_ids(hub, "/fhir/Patient", identifier=f"{KVNR}|A123456780")
    assert found == [ward["erika"]]
    assert await search_ids(hub, "/fhir/Patient", identifier="A123456780") == [ward["erika"]]
    assert await search_ids(hub, "/fhir/Patient", identifier="http://other|A123456780") == []


async def test_name_and_birth_date(hub: Hub, ward: dict[str, str]) -> None:
    assert await search_ids(hub, "/fhir/Patient", name="muller") == [ward["erika"]]
    # `phonetic`: by the sound of each name word (test_search_phonetic.py).
    assert await search_ids(hub, "/fhir/Patient", phonetic="muller") == [ward["erika"]]
    assert await search_ids(hub, "/fhir/Patient", phonetic="erika") == [ward["erika"]]
    assert set(await search_ids(hub, "/fhir/Patient", family="Mu")) == {ward["erika"], ward["max"]}
    assert await search_ids(hub, "/fhir/Patient", **{"family:exact": "Müller"}) == [ward["erika"]]
    assert await search_ids(hub, "/fhir/Patient", **{"name:contains": "sterm"}) == [ward["max"]]
    found = await search_ids(hub, "/fhir/Patient", family="mu", birthdate="1964-08-12")
    assert found == [ward["erika"]]
    assert await search_ids(hub, "/fhir/Patient", birthdate="1964") == [ward["erika"]]
    assert await search_ids(hub, "/fhir/Patient", birthdate="ge1970-01-01") == [ward["max"]]


async def test_a_patients_labs_by_code_and_date(hub: Hub, ward: dict[str, str]) -> None:
    erika = ward["erika"]
    assert set(await search_ids(hub, "/fhir/Observation", subject=f"Patient/{erika}")) == {
        ward["hb"],
        ward["glucose"],
    }
    found = await search_ids(hub, "/fhir/Observation", patient=erika, code="http://loinc.org|718-7")
    assert found == [ward["hb"]]
    either = await search_ids(hub, "/fhir/Observation", code="718-7,2345-7", patient=erika)
    assert set(either) == {ward["hb"], ward["glucose"]}
    response = await hub.http.get(
        "/fhir/Observation?date=ge2026-10-01&date=lt2026-11-01&patient=" + erika,
        headers=await hub.token(),
    )
    assert [e["resource"]["id"] for e in response.json()["entry"]] == [ward["glucose"]]


async def test_other_organisations_are_never_found_nor_counted(
    hub: Hub, ward: dict[str, str]
) -> None:
    response = await hub.http.get(
        "/fhir/Patient",
        params={"identifier": "A123456780", "_total": "accurate"},
        headers=await hub.token(),
    )
    bundle = response.json()
    assert bundle["total"] == 1
    assert ward["foreign"] not in [e["resource"]["id"] for e in bundle["entry"]]


async def test_one_compiled_search_serves_each_organisation_its_own(
    hub: Hub, ward: dict[str, str]
) -> None:
    """The same search by two organisations, in turn: one compiled statement (template.py),
    the organisation one of its values."""
    found = {}
    for organisation in ("hospital-a", "hospital-b", "hospital-a"):
        response = await hub.http.get(
            "/fhir/Patient",
            params={"identifier": f"{KVNR}|A123456780", "_total": "accurate"},
            headers=await hub.token(organisation=organisation),
        )
        bundle = response.json()
        found[organisation] = ([e["resource"]["id"] for e in bundle["entry"]], bundle["total"])
    assert found == {"hospital-a": ([ward["erika"]], 1), "hospital-b": ([ward["foreign"]], 1)}


async def test_paging_links_walk_all_results(hub: Hub, ward: dict[str, str]) -> None:
    seen: list[str] = []
    url: str | None = "/fhir/Observation?_count=2"
    while url:
        bundle = (await hub.http.get(url, headers=await hub.token())).json()
        seen += [entry["resource"]["id"] for entry in bundle["entry"]]
        url = next((link["url"] for link in bundle["link"] if link["relation"] == "next"), None)
    assert sorted(seen) == sorted([ward["hb"], ward["glucose"], ward["other"]])


async def test_id_and_last_updated(hub: Hub, ward: dict[str, str]) -> None:
    assert await search_ids(hub, "/fhir/Patient", _id=ward["max"]) == [ward["max"]]
    assert len(await search_ids(hub, "/fhir/Patient", _lastUpdated="ge2020-01-01")) == 2
    assert await search_ids(hub, "/fhir/Patient", _lastUpdated="lt2020-01-01") == []


async def test_search_by_post(hub: Hub, ward: dict[str, str]) -> None:
    response = await hub.http.post(
        "/fhir/Patient/_search",
        data={"family": "Must"},
        headers={**await hub.token(), "content-type": "application/x-www-form-urlencoded"},
    )
    assert [e["resource"]["id"] for e in response.json()["entry"]] == [ward["max"]]


async def test_updates_and_deletes_change_the_index(hub: Hub, ward: dict[str, str]) -> None:
    renamed = resources.patient("B987654321", "Neumann", "Max", "1971-02-03")
    renamed["id"] = ward["max"]
    await hub.http.put(
        f"/fhir/Patient/{ward['max']}", content=orjson.dumps(renamed), headers=await hub.token()
    )
    assert await search_ids(hub, "/fhir/Patient", family="Neumann") == [ward["max"]]
    assert await search_ids(hub, "/fhir/Patient", family="Mustermann") == []
    await hub.http.delete(f"/fhir/Patient/{ward['max']}", headers=await hub.token())
    assert await search_ids(hub, "/fhir/Patient", family="Neumann") == []


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("/fhir/Patient?shoe-size=42", 400),
        ("/fhir/Patient?birthdate=yesterday", 400),
        ("/fhir/Patient?birthdate=2026-13-01", 400),
        ("/fhir/Patient?family:sounds-like=x", 400),
        ("/fhir/Patient?_count=-1", 400),
        ("/fhir/Patient?_count=1001", 400),
        ("/fhir/Dragon?name=x", 404),
    ],
)
async def test_bad_searches_are_operation_outcomes(hub: Hub, query: str, status: int) -> None:
    response = await hub.http.get(query, headers=await hub.token())
    assert response.status_code == status
    assert response.json()["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize(
    ("path", "parameter"),
    [
        ("/fhir/Observation/_search", "subject:Patient.family"),
        ("/fhir/Patient/_search", "_id"),
        ("/fhir/Observation/_search", "date"),
    ],
)
async def test_many_alternatives_are_searched_and_too_many_refused(
    hub: Hub, path: str, parameter: str
) -> None:
    """Up to 200 comma-separated values work on both databases (500 prefix matches in a
    chain were an SQLite error, a 500); more are a 400 naming the parameter."""
    template = "2020-01-{:02d}" if parameter == "date" else "Name{}"
    headers = {"Authorization": (await hub.token())["Authorization"]}

    def values(count: int) -> str:
        return ",".join(template.format(number % 28 + 1) for number in range(count))

    allowed = await hub.http.post(path, data={parameter: values(200)}, headers=headers)
    assert allowed.status_code == 200, allowed.text
    refused = await hub.http.post(path, data={parameter: values(201)}, headers=headers)
    assert refused.status_code == 400, refused.text
    assert [parameter] in [issue.get("expression") for issue in refused.json()["issue"]]


async def test_count_zero_is_the_total_only(hub: Hub, ward: dict[str, str]) -> None:
    response = await hub.http.get("/fhir/Patient?_count=0", headers=await hub.token())
    assert response.status_code == 200
    bundle = response.json()
    assert (bundle["total"], bundle.get("entry", [])) == (2, [])


async def test_lenient_handling_ignores_unknown_parameters(hub: Hub, ward: dict[str, str]) -> None:
    response = await hub.http.get(
        "/fhir/Patient?shoe-size=42&family=Must",
        headers={**await hub.token(), "Prefer": "handling=lenient"},
    )
    assert [e["resource"]["id"] for e in response.json()["entry"]] == [ward["max"]]


async def test_oversized_values_are_indexed_without_error(hub: Hub) -> None:
    odd = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://x/" + "s" * 400, "code": "c" * 400}]},
        "valueString": "v" * 400,
        "meta": {"source": "http://x/" + "u" * 700},
    }
    response = await hub.http.post(
        "/fhir/Observation", content=orjson.dumps(odd), headers=await hub.token()
    )
    assert response.status_code == 201
    assert await search_ids(hub, "/fhir/Observation", **{"value-string": "v" * 300}) != []


PKV = "http://fhir.de/sid/pkv/kvid-10"
IKNR = "http://fhir.de/sid/arge-ik/iknr"
CASE = "https://hospital-a.example/sid/fallnummer"
V2 = "http://terminology.hl7.org/CodeSystem/v2-0203"
DE_BASIS = "http://fhir.de/CodeSystem/identifier-type-de-basis"


async def test_german_identifiers_work_out_of_the_box(hub: Hub) -> None:
    """KVNR (GKV and PKV), IK numbers and case numbers, by value, by type and by chain."""
    gkv = {"type": {"coding": [{"system": DE_BASIS, "code": "KVZ10"}]}, "system": KVNR}
    insured = await create(
        hub,
        {
            "resourceType": "Patient",
            "identifier": [{**gkv, "value": "A123456780"}],
            "name": [{"family": "Kassen"}],
        },
    )
    private = await create(
        hub,
        {
            "resourceType": "Patient",
            "identifier": [{"system": PKV, "value": "P123456789"}],
            "name": [{"family": "Privat"}],
        },
    )
    clinic = await create(
        hub,
        {
            "resourceType": "Organization",
            "identifier": [{"system": IKNR, "value": "260326822"}],
            "name": "Klinikum",
        },
    )
    case = await create(
        hub,
        {
            "resourceType": "Encounter",
            "status": "in-progress",
            "class": {"code": "IMP"},
            "identifier": [
                {
                    "type": {"coding": [{"system": V2, "code": "VN"}]},
                    "system": CASE,
                    "value": "F-2026-0001",
                }
            ],
            "subject": {"reference": f"Patient/{insured}"},
            "serviceProvider": {"reference": f"Organization/{clinic}"},
        },
    )
    assert await search_ids(hub, "/fhir/Patient", identifier=f"{PKV}|P123456789") == [private]
    assert await search_ids(hub, "/fhir/Patient", identifier=f"{KVNR}|P123456789") == []
    of_type = {"identifier:of-type": f"{DE_BASIS}|KVZ10|A123456780"}
    assert await search_ids(hub, "/fhir/Patient", **of_type) == [insured]
    assert await search_ids(hub, "/fhir/Organization", identifier=f"{IKNR}|260326822") == [clinic]
    assert await search_ids(hub, "/fhir/Encounter", identifier=f"{CASE}|F-2026-0001") == [case]
    by_type = {"identifier:of-type": f"{V2}|VN|F-2026-0001"}
    assert await search_ids(hub, "/fhir/Encounter", **by_type) == [case]
    chained = {"subject:Patient.identifier": f"{KVNR}|A123456780"}
    assert await search_ids(hub, "/fhir/Encounter", **chained) == [case]
    by_ik = {"service-provider.identifier": f"{IKNR}|260326822"}
    assert await search_ids(hub, "/fhir/Encounter", **by_ik) == [case]


async def test_a_logical_reference_by_kvnr(hub: Hub) -> None:
    """`subject:identifier` finds references that carry only the patient's KVNR."""
    logical = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "x"},
        "subject": {"identifier": {"system": KVNR, "value": "A123456780"}},
    }
    found = await create(hub, logical)
    params = {"subject:identifier": f"{KVNR}|A123456780"}
    assert await search_ids(hub, "/fhir/Observation", **params) == [found]


async def test_exact_strings_match_case_and_accents(hub: Hub) -> None:
    """`:exact` compares the whole string as written (R4): `family:exact=cruz` is not Cruz,
    nor Crúz; a plain string search folds both."""
    ids = {
        await create(hub, resources.patient(f"A00000000{n}", family, "Ana", "1990-01-01")): family
        for n, family in enumerate(("Cruz", "cruz", "Crúz", "Cruzado", "CRUZ"))
    }

    async def found(**params: str) -> set[str]:
        return {ids[fhir_id] for fhir_id in await search_ids(hub, "/fhir/Patient", **params)}

    assert await found(**{"family:exact": "Cruz"}) == {"Cruz"}
    assert await found(**{"family:exact": "cruz"}) == {"cruz"}
    assert await found(**{"family:exact": "Crúz"}) == {"Crúz"}
    assert await found(**{"family:exact": "Cruz,CRUZ"}) == {"Cruz", "CRUZ"}
    assert await found(**{"family:exact": "Cru"}) == set()
    assert await found(family="cruz") == {"Cruz", "cruz", "Crúz", "Cruzado", "CRUZ"}
