"""`$validate`, `$meta`, `Patient/$everything` and `Observation/$lastn` through HTTP, and
operations medicus does not have."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tests.fhir.conftest import Hub
from tests.fhir.test_search import assert_refused
from tests.support import clients
from tests.support.database import rows


async def _put(hub: Hub, resource: dict[str, Any], organisation: str = "hospital-a") -> None:
    await clients.put(hub.http, await hub.token(organisation=organisation), resource, 201)


async def test_validate_reports_without_storing(hub: Hub) -> None:
    token = await hub.token()
    bad = {"resourceType": "Patient", "birthDate": "soon"}
    response = await hub.http.post(
        "/fhir/Patient/$validate", content=orjson.dumps(bad), headers=token
    )
    assert response.status_code == 200
    issues = response.json()["issue"]
    assert any("Patient.birthDate" in issue.get("expression", []) for issue in issues)
    good = {"resourceType": "Patient", "birthDate": "1964-08-12"}
    wrapped = {"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": good}]}
    response = await hub.http.post(
        "/fhir/Patient/$validate", content=orjson.dumps(wrapped), headers=token
    )
    assert response.json()["issue"][0]["severity"] == "information"
    listed = await hub.http.get("/fhir/Patient", params={"_total": "accurate"}, headers=token)
    assert listed.json()["total"] == 0


async def test_meta(hub: Hub) -> None:
    await _put(
        hub, {"resourceType": "Patient", "id": "hospital-a.m1", "meta": {"tag": [{"code": "vip"}]}}
    )
    response = await hub.http.get("/fhir/Patient/hospital-a.m1/$meta", headers=await hub.token())
    meta = response.json()["parameter"][0]["valueMeta"]
    assert (meta["versionId"], meta["tag"]) == ("1", [{"code": "vip"}])


def _matches(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in bundle.get("entry", []) if e["search"]["mode"] == "match"]


async def test_everything_is_the_patients_compartment_in_own_hospital(hub: Hub) -> None:
    await _put(hub, {"resourceType": "Patient", "id": "hospital-a.erika"})
    await _put(hub, {"resourceType": "Patient", "id": "hospital-a.max"})
    for number, subject in enumerate(["hospital-a.erika", "hospital-a.erika", "hospital-a.max"]):
        await _put(
            hub,
            {
                "resourceType": "Observation",
                "id": f"hospital-a.o{number}",
                "status": "final",
                "code": {"text": "Hb"},
                "subject": {"reference": f"Patient/{subject}"},
            },
        )
    await _put(
        hub,
        {
            "resourceType": "Encounter",
            "id": "hospital-a.e1",
            "status": "finished",
            "class": {"code": "IMP"},
            "subject": {"reference": "Patient/hospital-a.erika"},
            "participant": [
                {"individual": {"reference": "Practitioner/hospital-a.treating"}},
                {"individual": {"reference": "Practitioner/hospital-b.foreign"}},
            ],
        },
    )
    await _put(hub, {"resourceType": "Practitioner", "id": "hospital-a.doc"})
    await _put(hub, {"resourceType": "Practitioner", "id": "hospital-a.treating"})
    await _put(
        hub, {"resourceType": "Practitioner", "id": "hospital-b.foreign"}, organisation="hospital-b"
    )
    await _put(
        hub,
        {
            "resourceType": "Observation",
            "id": "hospital-b.elsewhere",
            "status": "final",
            "code": {"text": "Hb"},
            "subject": {"reference": "Patient/hospital-a.erika"},
        },
        organisation="hospital-b",
    )
    token = await hub.token()
    response = await hub.http.get("/fhir/Patient/hospital-a.erika/$everything", headers=token)
    assert response.status_code == 200
    entries = response.json()["entry"]
    found = {(e["resource"]["resourceType"], e["resource"]["id"]) for e in entries}
    assert found == {
        ("Patient", "hospital-a.erika"),
        ("Observation", "hospital-a.o0"),
        ("Observation", "hospital-a.o1"),
        ("Encounter", "hospital-a.e1"),
        ("Practitioner", "hospital-a.treating"),  # referenced by the Encounter, held here
    }
    modes = {e["resource"]["id"]: e["search"]["mode"] for e in entries}
    assert (modes["hospital-a.treating"], modes["hospital-a.e1"]) == ("include", "match")
    observations_only = await hub.http.get(
        "/fhir/Patient/hospital-a.erika/$everything", params={"_type": "Observation"}, headers=token
    )
    assert {e["resource"]["id"] for e in observations_only.json()["entry"]} == {
        "hospital-a.o0",
        "hospital-a.o1",
    }
    typed = await hub.http.get(
        "/fhir/Patient/hospital-a.erika/$everything", params={"_type": "Encounter"}, headers=token
    )
    assert {e["resource"]["id"] for e in typed.json()["entry"]} == {"hospital-a.e1"}
    since = {"_count": "2", "_since": "2000-01-01T00:00:00+01:00"}
    paged = await hub.http.get(
        "/fhir/Patient/hospital-a.erika/$everything", params=since, headers=token
    )
    assert len(_matches(paged.json())) == 2
    following = next(link["url"] for link in paged.json()["link"] if link["relation"] == "next")
    rest = await hub.http.get(following, headers=token)
    assert rest.status_code == 200, rest.text
    assert len(_matches(rest.json())) == 2
    foreign = await hub.http.get(
        "/fhir/Patient/hospital-a.erika/$everything",
        headers=await hub.token(organisation="hospital-b"),
    )
    assert foreign.status_code == 404
    assert (
        await hub.http.get(
            "/fhir/Patient/hospital-a.erika/$everything",
            params={"_since": "yesterday"},
            headers=token,
        )
    ).status_code == 400


def _vital(
    fhir_id: str, patient: str, loinc: str, when: str | None, holder: str = "hospital-a"
) -> dict[str, Any]:
    """An Observation `fhir_id` about Patient `patient`, ids in the holder's namespace."""
    vital: dict[str, Any] = {
        "resourceType": "Observation",
        "id": f"{holder}.{fhir_id}",
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "vital-signs",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": "http://loinc.org", "code": loinc}]},
        "subject": {"reference": f"Patient/hospital-a.{patient}"},
    }
    if when is not None:
        vital["effectiveDateTime"] = when
    return vital


@pytest.fixture
async def vitals(hub: Hub) -> None:
    """Erika's temperatures (8310-5) and heart rates (8867-4), Max's temperature, and a
    temperature of Erika's that hospital B holds."""
    for patient in ("erika", "max"):
        await _put(hub, {"resourceType": "Patient", "id": f"hospital-a.{patient}"})
    for vital in (
        _vital("t-old", "erika", "8310-5", "2026-01-01T08:00:00Z"),
        _vital("t-new", "erika", "8310-5", "2026-03-01T08:00:00.5Z"),
        _vital("t-mid", "erika", "8310-5", "2026-02-01T08:00:00Z"),
        _vital("t-undated", "erika", "8310-5", None),
        _vital("h-old", "erika", "8867-4", "2025-12-01T08:00:00Z"),
        _vital("h-new", "erika", "8867-4", "2026-02-15T08:00:00Z"),
        _vital("t-max", "max", "8310-5", "2025-01-01T08:00:00Z"),
    ):
        await _put(hub, vital)
    await _put(
        hub, _vital("t-b", "erika", "8310-5", "2026-12-01T08:00:00Z", "hospital-b"), "hospital-b"
    )


async def _lastn(hub: Hub, **params: str) -> list[str]:
    """The ids (without the namespace) `$lastn` answers; patients named without theirs."""
    if "patient" in params:
        params["patient"] = f"hospital-a.{params['patient']}"
    if "subject" in params:
        params["subject"] = params["subject"].replace("Patient/", "Patient/hospital-a.")
    response = await hub.http.get(
        "/fhir/Observation/$lastn", params=params, headers=await hub.token()
    )
    assert response.status_code == 200, response.text
    bundle = response.json()
    assert (bundle["type"], bundle["total"]) == ("searchset", len(bundle.get("entry", [])))
    return [entry["resource"]["id"].partition(".")[2] for entry in bundle.get("entry", [])]


async def test_lastn_is_the_newest_of_each_code_per_patient(hub: Hub, vitals: None) -> None:
    """R4 `Observation/$lastn`: the `max` (default 1) newest of each code, by effective
    date, newest first; other search parameters narrow it; another hospital's are not
    seen."""
    assert await _lastn(hub, patient="erika", category="vital-signs") == ["t-new", "h-new"]
    assert await _lastn(hub, patient="erika", category="vital-signs", max="2") == [
        "t-new",
        "h-new",
        "t-mid",
        "h-old",
    ]
    assert await _lastn(hub, subject="Patient/erika", code="8310-5", max="9") == [
        "t-new",
        "t-mid",
        "t-old",
        "t-undated",
    ]
    before = {"patient": "erika", "code": "8310-5,8867-4", "date": "lt2026-02-10", "max": "1"}
    assert await _lastn(hub, **before) == ["t-mid", "h-old"]
    assert await _lastn(hub, patient="max", category="vital-signs") == ["t-max"]
    assert await _lastn(hub, patient="nobody", category="vital-signs") == []


async def test_lastn_is_audited_like_a_search(hub: Hub, vitals: None) -> None:
    """One entry, naming the Patient records of the Observations returned."""
    assert await _lastn(hub, patient="max", code="8310-5") == ["t-max"]
    await hub.platform.audit.seal_all()
    entries = await rows(
        hub.platform,
        "SELECT action, outcome, patients FROM audit_entry WHERE target = 'Observation/$lastn'",
    )
    assert entries == [("fhir.search", "success", "hospital-a.max")]


@pytest.mark.parametrize(
    ("query", "expression"),
    [
        ("category=vital-signs", "$lastn"),  # no subject
        ("patient=erika", "$lastn"),  # neither category nor code
        ("patient=erika&code=8310-5&max=0", "max"),
        ("patient=erika&code=8310-5&max=many", "max"),
        ("patient=erika&code=8310-5&_count=5", "_count"),
        ("patient=erika&code=8310-5&_sort=date", "_sort"),
        ("patient=erika&code=8310-5&colour=red", "colour"),
    ],
)
async def test_lastn_refuses_what_it_cannot_answer(
    hub: Hub, vitals: None, query: str, expression: str
) -> None:
    await assert_refused(hub, f"/fhir/Observation/$lastn?{query}", expression)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/fhir/Observation/$stats"),
        ("POST", "/fhir/Observation/$stats"),
        ("GET", "/fhir/Patient/$lastn"),
        ("GET", "/fhir/Observation/t-old/$lastn"),
        ("GET", "/fhir/Encounter/e1/$everything"),
        ("GET", "/fhir/Patient/$validate"),
    ],
)
async def test_other_operations_are_not_supported(hub: Hub, method: str, path: str) -> None:
    """An operation medicus does not have is said to be so (501), not taken for an id."""
    response = await hub.http.request(method, path, headers=await hub.token())
    assert response.status_code == 501, response.text
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    operation = "$" + path.rsplit("$", 1)[1]
    assert f"operation {operation} is not supported" in outcome["issue"][0]["diagnostics"]
    assert outcome["issue"][0]["code"] == "not-supported"
