"""`$validate`, `$meta` and `Patient/$everything` through HTTP."""

from __future__ import annotations

from typing import Any

import orjson

from tests.fhir.conftest import Hub


async def _put(hub: Hub, resource: dict[str, Any], organisation: str = "hospital-a") -> None:
    path = f"/fhir/{resource['resourceType']}/{resource['id']}"
    response = await hub.http.put(
        path, content=orjson.dumps(resource), headers=await hub.token(organisation=organisation)
    )
    assert response.status_code == 201, response.text


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
    await _put(hub, {"resourceType": "Patient", "id": "m1", "meta": {"tag": [{"code": "vip"}]}})
    response = await hub.http.get("/fhir/Patient/m1/$meta", headers=await hub.token())
    meta = response.json()["parameter"][0]["valueMeta"]
    assert (meta["versionId"], meta["tag"]) == ("1", [{"code": "vip"}])


def _matches(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in bundle.get("entry", []) if e["search"]["mode"] == "match"]


async def test_everything_is_the_patients_compartment_in_own_hospital(hub: Hub) -> None:
    await _put(hub, {"resourceType": "Patient", "id": "erika"})
    await _put(hub, {"resourceType": "Patient", "id": "max"})
    for number, subject in enumerate(["erika", "erika", "max"]):
        await _put(
            hub,
            {
                "resourceType": "Observation",
                "id": f"o{number}",
                "status": "final",
                "code": {"text": "Hb"},
                "subject": {"reference": f"Patient/{subject}"},
            },
        )
    await _put(
        hub,
        {
            "resourceType": "Encounter",
            "id": "e1",
            "status": "finished",
            "class": {"code": "IMP"},
            "subject": {"reference": "Patient/erika"},
            "participant": [
                {"individual": {"reference": "Practitioner/treating"}},
                {"individual": {"reference": "Practitioner/foreign"}},
            ],
        },
    )
    await _put(hub, {"resourceType": "Practitioner", "id": "doc"})
    await _put(hub, {"resourceType": "Practitioner", "id": "treating"})
    await _put(hub, {"resourceType": "Practitioner", "id": "foreign"}, organisation="hospital-b")
    await _put(
        hub,
        {
            "resourceType": "Observation",
            "id": "elsewhere",
            "status": "final",
            "code": {"text": "Hb"},
            "subject": {"reference": "Patient/erika"},
        },
        organisation="hospital-b",
    )
    token = await hub.token()
    response = await hub.http.get("/fhir/Patient/erika/$everything", headers=token)
    assert response.status_code == 200
    entries = response.json()["entry"]
    found = {(e["resource"]["resourceType"], e["resource"]["id"]) for e in entries}
    assert found == {
        ("Patient", "erika"),
        ("Observation", "o0"),
        ("Observation", "o1"),
        ("Encounter", "e1"),
        ("Practitioner", "treating"),  # referenced by the Encounter, held here
    }
    modes = {e["resource"]["id"]: e["search"]["mode"] for e in entries}
    assert (modes["treating"], modes["e1"]) == ("include", "match")
    observations_only = await hub.http.get(
        "/fhir/Patient/erika/$everything", params={"_type": "Observation"}, headers=token
    )
    assert {e["resource"]["id"] for e in observations_only.json()["entry"]} == {"o0", "o1"}
    typed = await hub.http.get(
        "/fhir/Patient/erika/$everything", params={"_type": "Encounter"}, headers=token
    )
    assert {e["resource"]["id"] for e in typed.json()["entry"]} == {"e1"}
    since = {"_count": "2", "_since": "2000-01-01T00:00:00+01:00"}
    paged = await hub.http.get("/fhir/Patient/erika/$everything", params=since, headers=token)
    assert len(_matches(paged.json())) == 2
    following = next(link["url"] for link in paged.json()["link"] if link["relation"] == "next")
    rest = await hub.http.get(following, headers=token)
    assert rest.status_code == 200, rest.text
    assert len(_matches(rest.json())) == 2
    foreign = await hub.http.get(
        "/fhir/Patient/erika/$everything", headers=await hub.token(organisation="hospital-b")
    )
    assert foreign.status_code == 404
    assert (
        await hub.http.get(
            "/fhir/Patient/erika/$everything", params={"_since": "yesterday"}, headers=token
        )
    ).status_code == 400
