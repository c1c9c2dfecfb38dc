"""Chaining, reverse chaining (`_has`), `_include` and `_revinclude`: each looks only into the
caller's organisation, so another hospital's data neither matches, nor selects, nor is
included."""

from __future__ import annotations

import orjson
import pytest

from tests.fhir.conftest import Hub
from tests.fhir.test_search import create, search_ids
from tests.support import resources
from tests.support.database import rows
from tests.support.resources import KVNR


@pytest.fixture
async def clinic(hub: Hub) -> dict[str, str]:
    """Hospital A: a practitioner, two patients with labs and an encounter; hospital B: the
    same KVNR with a lab that refers to hospital A's patient id."""
    doctor = await create(hub, {"resourceType": "Practitioner", "name": [{"family": "Hausarzt"}]})
    erika = await create(
        hub,
        resources.patient(
            "A123456780", "Müller", generalPractitioner=[{"reference": f"Practitioner/{doctor}"}]
        ),
    )
    max_ = await create(hub, resources.patient("B987654321", "Mustermann"))
    visit = await create(
        hub,
        {
            "resourceType": "Encounter",
            "status": "finished",
            "class": {"code": "AMB"},
            "subject": {"reference": f"Patient/{erika}"},
        },
    )
    hb = await create(
        hub, resources.observation(erika, "718-7", encounter={"reference": f"Encounter/{visit}"})
    )
    glucose = await create(hub, resources.observation(max_, "2345-7"))
    foreign_patient = await create(hub, resources.patient("C111111111", "Fremd"), "hospital-b")
    foreign_lab = await create(hub, resources.observation(erika, "9999-9"), "hospital-b")
    return {
        "doctor": doctor,
        "erika": erika,
        "max": max_,
        "visit": visit,
        "hb": hb,
        "glucose": glucose,
        "foreign_patient": foreign_patient,
        "foreign_lab": foreign_lab,
    }


async def test_chained_parameters(hub: Hub, clinic: dict[str, str]) -> None:
    path = "/fhir/Observation"
    kvnr = f"{KVNR}|A123456780"
    assert await search_ids(hub, path, **{"subject:Patient.identifier": kvnr}) == [clinic["hb"]]
    assert await search_ids(hub, path, **{"subject.name": "muster"}) == [clinic["glucose"]]
    assert await search_ids(hub, path, **{"patient.family": "müller,mustermann"}) != []
    two_levels = {"subject:Patient.general-practitioner.name": "hausarzt"}
    assert await search_ids(hub, path, **two_levels) == [clinic["hb"]]
    through_encounter = {"encounter.subject.identifier": kvnr}
    assert await search_ids(hub, path, **through_encounter) == [clinic["hb"]]
    assert await search_ids(hub, path, **{"subject.name": "fremd"}) == []


async def test_reverse_chaining(hub: Hub, clinic: dict[str, str]) -> None:
    path = "/fhir/Patient"
    assert await search_ids(hub, path, **{"_has:Observation:patient:code": "718-7"}) == [
        clinic["erika"]
    ]
    # hospital B's lab refers to Erika, but must not select her
    assert await search_ids(hub, path, **{"_has:Observation:patient:code": "9999-9"}) == []
    nested = {"_has:Encounter:subject:_has:Observation:encounter:code": "718-7"}
    assert await search_ids(hub, path, **nested) == [clinic["erika"]]
    doctors = {"_has:Patient:general-practitioner:identifier": f"{KVNR}|A123456780"}
    assert await search_ids(hub, "/fhir/Practitioner", **doctors) == [clinic["doctor"]]


async def _bundle(hub: Hub, query: str) -> dict[str, object]:
    response = await hub.http.get(f"/fhir/{query}", headers=await hub.token())
    assert response.status_code == 200, response.text
    return dict(response.json())


def _entries(bundle: dict[str, object], mode: str) -> set[str]:
    entries = bundle.get("entry") or []
    assert isinstance(entries, list)
    return {
        f"{e['resource']['resourceType']}/{e['resource']['id']}"
        for e in entries
        if e["search"]["mode"] == mode
    }


async def test_include_and_revinclude(hub: Hub, clinic: dict[str, str]) -> None:
    erika, hb = clinic["erika"], clinic["hb"]
    bundle = await _bundle(
        hub, f"Observation?_id={hb}&_include=Observation:subject&_total=accurate"
    )
    assert _entries(bundle, "match") == {f"Observation/{hb}"}
    assert _entries(bundle, "include") == {f"Patient/{erika}"}
    assert bundle["total"] == 1
    typed = await _bundle(hub, f"Observation?_id={hb}&_include=Observation:subject:Group")
    assert _entries(typed, "include") == set()
    everything = await _bundle(hub, f"Observation?_id={hb}&_include=Observation:*")
    assert _entries(everything, "include") == {f"Patient/{erika}", f"Encounter/{clinic['visit']}"}
    star = await _bundle(hub, f"Observation?_id={hb}&_include=*")
    assert _entries(star, "include") == _entries(everything, "include")
    referring = _entries(await _bundle(hub, f"Patient?_id={erika}&_revinclude=*"), "include")
    assert {f"Observation/{hb}", f"Encounter/{clinic['visit']}"} <= referring
    reverse = await _bundle(hub, f"Patient?_id={erika}&_revinclude=Observation:subject")
    assert _entries(reverse, "include") == {f"Observation/{hb}"}  # not hospital B's lab


async def test_include_iterate(hub: Hub, clinic: dict[str, str]) -> None:
    query = (
        f"Observation?_id={clinic['hb']}&_include=Observation:subject"
        "&_include:iterate=Patient:general-practitioner"
    )
    assert _entries(await _bundle(hub, query), "include") == {
        f"Patient/{clinic['erika']}",
        f"Practitioner/{clinic['doctor']}",
    }
    without = f"Observation?_id={clinic['hb']}&_include=Observation:subject"
    assert f"Practitioner/{clinic['doctor']}" not in _entries(
        await _bundle(hub, without), "include"
    )


async def test_includes_need_read_scope(hub: Hub, clinic: dict[str, str]) -> None:
    headers = await hub.token(scope="user/Observation.rs")
    response = await hub.http.get(
        f"/fhir/Observation?_id={clinic['hb']}&_include=Observation:subject", headers=headers
    )
    assert response.status_code == 200
    assert [e["search"]["mode"] for e in response.json()["entry"]] == ["match"]
    chained = await hub.http.get("/fhir/Observation?subject:Patient.name=muller", headers=headers)
    assert chained.status_code == 403


@pytest.mark.parametrize(
    "query",
    [
        "Observation?status.name=x",
        "Observation?subject:Dragon.name=x",
        "Observation?subject.shoe-size=x",
        "Patient?_has:Observation:code:code=x",
        "Patient?_has:Observation:patient=x",
        "Patient?_has:Dragon:patient:code=x",
        "Observation?_include=Observation:status",
        "Observation?_include=Patient:general-practitioner",
        "Observation?_include=nonsense",
        "Observation?_include:deep=Observation:subject",
    ],
)
async def test_bad_chains_and_includes_are_400(hub: Hub, query: str) -> None:
    response = await hub.http.get(f"/fhir/{query}", headers=await hub.token())
    assert response.status_code == 400, response.text
    assert response.json()["resourceType"] == "OperationOutcome"


async def test_search_bodies_are_valid_json(hub: Hub, clinic: dict[str, str]) -> None:
    response = await hub.http.get(
        f"/fhir/Patient?_id={clinic['erika']}&_revinclude=Observation:subject",
        headers=await hub.token(),
    )
    assert orjson.loads(response.content)["type"] == "searchset"


async def test_included_reads_are_audited(hub: Hub, clinic: dict[str, str]) -> None:
    await _bundle(hub, f"Observation?_id={clinic['hb']}&_include=Observation:subject")
    await hub.platform.audit.seal_all()
    entries = await rows(
        hub.platform, "SELECT action, outcome FROM audit_entry WHERE target = 'Patient'"
    )
    assert ("fhir.read", "success") in entries
