"""`_list` through HTTP: the resources of the searched type that a List of the caller's
organisation names in `entry.item`; another organisation's List, a deleted one or an unknown
one finds nothing; with other parameters, OR and AND, updates of the List, scopes, and the
functional lists medicus does not have."""

from __future__ import annotations

import orjson
import pytest

from tests.fhir.conftest import Hub
from tests.fhir.test_search import assert_refused, create, search_ids
from tests.support import resources


def _list(*items: str) -> dict[str, object]:
    return {
        "resourceType": "List",
        "status": "current",
        "mode": "working",
        "entry": [{"item": {"reference": item}} for item in items],
    }


@pytest.fixture
async def ward(hub: Hub) -> dict[str, str]:
    adler = await create(hub, resources.patient(None, "Adler"))
    berger = await create(hub, resources.patient(None, "Berger"))
    cramer = await create(hub, resources.patient(None, "Cramer"))
    foreign = await create(hub, resources.patient(None, "Fremd"), "hospital-b")
    lab = await create(
        hub,
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "Hb"},
            "subject": {"reference": f"Patient/{adler}"},
        },
    )
    rounds = await create(
        hub,
        _list(f"Patient/{adler}", f"Patient/{berger}", f"Observation/{lab}", f"Patient/{foreign}"),
    )
    return {
        "adler": adler,
        "berger": berger,
        "cramer": cramer,
        "foreign": foreign,
        "lab": lab,
        "rounds": rounds,
        "cramers": await create(hub, _list(f"Patient/{cramer}")),
        # hospital B's List naming a patient of hospital A
        "theirs": await create(hub, _list(f"Patient/{cramer}"), "hospital-b"),
    }


async def _patients(hub: Hub, **params: str) -> set[str]:
    return set(await search_ids(hub, "/fhir/Patient", **params))


async def test_the_items_of_a_list(hub: Hub, ward: dict[str, str]) -> None:
    """Only the caller's own patients: hospital B's patient on the List stays unseen."""
    assert await _patients(hub, _list=ward["rounds"]) == {ward["adler"], ward["berger"]}
    assert await _patients(hub, _list=ward["cramers"]) == {ward["cramer"]}


async def test_only_the_items_of_the_searched_type(hub: Hub, ward: dict[str, str]) -> None:
    observations = await search_ids(hub, "/fhir/Observation", _list=ward["rounds"])
    assert observations == [ward["lab"]]
    assert await search_ids(hub, "/fhir/Encounter", _list=ward["rounds"]) == []


async def test_another_organisations_list_is_as_if_absent(hub: Hub, ward: dict[str, str]) -> None:
    assert await _patients(hub, _list=ward["theirs"]) == set()
    assert await _patients(hub, _list="no-such-list") == set()
    response = await hub.http.get(
        "/fhir/Patient",
        params={"_list": ward["theirs"], "_total": "accurate"},
        headers=await hub.token(organisation="hospital-b"),
    )
    assert (response.json()["total"], response.json().get("entry", [])) == (0, [])


async def test_a_deleted_list_names_nothing(hub: Hub, ward: dict[str, str]) -> None:
    response = await hub.http.delete(f"/fhir/List/{ward['rounds']}", headers=await hub.token())
    assert response.status_code in (200, 204)
    assert await _patients(hub, _list=ward["rounds"]) == set()


async def test_an_updated_list_names_its_new_items(hub: Hub, ward: dict[str, str]) -> None:
    changed = {**_list(f"Patient/{ward['cramer']}"), "id": ward["rounds"]}
    response = await hub.http.put(
        f"/fhir/List/{ward['rounds']}", content=orjson.dumps(changed), headers=await hub.token()
    )
    assert response.status_code == 200, response.text
    assert await _patients(hub, _list=ward["rounds"]) == {ward["cramer"]}


async def test_with_other_parameters(hub: Hub, ward: dict[str, str]) -> None:
    assert await _patients(hub, _list=ward["rounds"], family="berg") == {ward["berger"]}
    assert await _patients(hub, _list=ward["rounds"], family="cramer") == set()
    either = f"{ward['rounds']},{ward['cramers']}"
    assert await _patients(hub, _list=either) == {ward["adler"], ward["berger"], ward["cramer"]}
    response = await hub.http.get(
        "/fhir/Patient",
        params=[("_list", ward["rounds"]), ("_list", ward["cramers"])],
        headers=await hub.token(),
    )
    assert response.json().get("entry", []) == []
    ordered = await search_ids(hub, "/fhir/Patient", _list=ward["rounds"], _sort="-family")
    assert ordered == [ward["berger"], ward["adler"]]
    counted = await hub.http.get(
        "/fhir/Patient",
        params={"_list": ward["rounds"], "_summary": "count"},
        headers=await hub.token(),
    )
    assert counted.json()["total"] == 2


async def test_a_token_that_may_not_read_lists(hub: Hub, ward: dict[str, str]) -> None:
    response = await hub.http.get(
        "/fhir/Patient",
        params={"_list": ward["rounds"]},
        headers=await hub.token(scope="user/Patient.rs"),
    )
    assert response.status_code == 403
    assert ["_list"] in [issue.get("expression") for issue in response.json()["issue"]]


@pytest.mark.parametrize(
    ("query", "expression"),
    [
        ("_list=$current-allergies", "_list"),
        ("_list=$current-problems,42", "_list"),
        ("_list=", "_list"),
        ("_list:missing=true", "_list:missing"),
    ],
)
async def test_malformed_values_name_the_parameter(hub: Hub, query: str, expression: str) -> None:
    await assert_refused(hub, f"/fhir/AllergyIntolerance?{query}", expression)


async def test_the_capability_statement_lists_list(hub: Hub) -> None:
    statement = (await hub.http.get("/fhir/metadata")).json()
    patient = next(r for r in statement["rest"][0]["resource"] if r["type"] == "Patient")
    listed = next(p for p in patient["searchParam"] if p["name"] == "_list")
    assert "functional" in listed["documentation"].lower()
