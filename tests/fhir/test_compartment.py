"""Each stored resource knows the Patient record whose compartment it is in
(`fhir_resource.patient_id`), from its first write on, through updates and deletion."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import select

from medicus.fhir.models import RESOURCES
from medicus.fhir.search.extract import extract
from medicus.fhir.writer import patient_of
from tests.fhir.conftest import Hub


def _patient_of(resource: dict[str, Any]) -> str | None:
    kind = resource["resourceType"]
    return patient_of(kind, "this", extract(kind, resource))


def test_a_patient_is_its_own() -> None:
    assert _patient_of({"resourceType": "Patient"}) == "this"


def test_the_first_compartment_parameter_decides() -> None:
    observation = {
        "resourceType": "Observation",
        "performer": [{"reference": "Patient/ben"}],
        "subject": {"reference": "Patient/anna"},
    }
    assert _patient_of(observation) == "anna"
    assert _patient_of({**observation, "subject": {"reference": "Group/ward"}}) == "ben"


def test_no_patient_for_what_is_no_patients_data() -> None:
    assert _patient_of({"resourceType": "Practitioner"}) is None
    assert _patient_of({"resourceType": "Medication"}) is None
    assert _patient_of({"resourceType": "Observation", "subject": {"reference": "Group/g"}}) is None
    assert _patient_of({"resourceType": "Observation"}) is None


async def _patients(hub: Hub) -> dict[str, str | None]:
    async with hub.platform.database.snapshot() as session:
        rows = await session.execute(
            select(RESOURCES.c.resource_type, RESOURCES.c.fhir_id, RESOURCES.c.patient_id)
        )
    return {f"{kind}/{fhir_id}": patient for kind, fhir_id, patient in rows}


async def test_writes_keep_the_patient_of_each_resource(hub: Hub) -> None:
    headers = await hub.token()
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:8c7e7a52-6a1e-4a8e-9d55-1b8f1e0d3c01",
                "resource": {"resourceType": "Patient"},
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "resource": {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {"text": "Hb"},
                    "subject": {"reference": "urn:uuid:8c7e7a52-6a1e-4a8e-9d55-1b8f1e0d3c01"},
                },
                "request": {"method": "POST", "url": "Observation"},
            },
            {
                "resource": {"resourceType": "Practitioner"},
                "request": {"method": "POST", "url": "Practitioner"},
            },
        ],
    }
    answer = await hub.http.post("/fhir", content=orjson.dumps(bundle), headers=headers)
    assert answer.status_code == 200, answer.text
    patient, observation, practitioner = (
        entry["response"]["location"].split("/_history")[0] for entry in answer.json()["entry"]
    )
    patient_id = patient.split("/")[1]
    assert await _patients(hub) == {
        patient: patient_id,
        observation: patient_id,
        practitioner: None,
    }

    other = await hub.http.post(
        "/fhir/Patient", content=orjson.dumps({"resourceType": "Patient"}), headers=headers
    )
    moved = {
        "resourceType": "Observation",
        "id": observation.split("/")[1],
        "status": "final",
        "code": {"text": "Hb"},
        "subject": {"reference": f"Patient/{other.json()['id']}"},
    }
    updated = await hub.http.put(
        f"/fhir/{observation}", content=orjson.dumps(moved), headers=headers
    )
    assert updated.status_code == 200, updated.text
    assert (await _patients(hub))[observation] == other.json()["id"]

    deleted = await hub.http.delete(f"/fhir/{observation}", headers=headers)
    assert deleted.status_code in (200, 204)
    assert (await _patients(hub))[observation] == other.json()["id"]
