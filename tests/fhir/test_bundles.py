"""Transaction and batch bundles through HTTP: atomicity, urn:uuid and conditional
references, processing order, and entry-by-entry answers of a batch."""

from __future__ import annotations

import base64
from typing import Any

import orjson

from tests.fhir.conftest import Hub
from tests.support import resources
from tests.support.database import count, rows, statements
from tests.support.resources import KVNR

PATIENT_URL = "urn:uuid:8b1f2f4e-1d7a-4a3c-9d5e-0f1a2b3c4d5e"


def _patient(kvnr: str) -> dict[str, Any]:
    return resources.patient(kvnr, "Mustermann", "Erika")


def _observation(subject: str, value: float = 13.2) -> dict[str, Any]:
    """A haemoglobin value about `subject` (a reference, also to an entry's full URL)."""
    quantity = resources.grams_per_decilitre(value)
    return resources.observation(subject={"reference": subject}, valueQuantity=quantity)


def _bundle(kind: str, *entries: dict[str, Any]) -> bytes:
    return orjson.dumps({"resourceType": "Bundle", "type": kind, "entry": list(entries)})


async def _post(hub: Hub, body: bytes, organisation: str = "hospital-a", **headers: str) -> Any:
    return await hub.http.post(
        "/fhir", content=body, headers={**await hub.token(organisation=organisation), **headers}
    )


async def _resource_count(hub: Hub) -> int:
    return await count(hub.platform, "fhir_resource")


async def test_transaction_resolves_urn_uuid_references(hub: Hub) -> None:
    body = _bundle(
        "transaction",
        {
            "fullUrl": "urn:uuid:0c6e3a35-5a4e-4d1d-9b59-2d6c1c0e7a11",
            "resource": _observation(PATIENT_URL),
            "request": {"method": "POST", "url": "Observation"},
        },
        {
            "fullUrl": PATIENT_URL,
            "resource": _patient("A123456780"),
            "request": {"method": "POST", "url": "Patient"},
        },
    )
    response = await _post(hub, body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["type"] == "transaction-response"
    statuses = [entry["response"]["status"] for entry in answer["entry"]]
    assert statuses == ["201 Created", "201 Created"]
    observation_location = answer["entry"][0]["response"]["location"]
    patient_id = answer["entry"][1]["response"]["location"].split("/")[1]
    observation = await hub.http.get(
        f"/fhir/{observation_location.split('/_history')[0]}", headers=await hub.token()
    )
    assert observation.json()["subject"]["reference"] == f"Patient/{patient_id}"
    found = await hub.http.get(
        "/fhir/Observation", params={"subject": f"Patient/{patient_id}"}, headers=await hub.token()
    )
    assert len(found.json()["entry"]) == 1


async def test_transaction_failing_half_way_leaves_nothing(hub: Hub) -> None:
    before = await _resource_count(hub)
    body = _bundle(
        "transaction",
        {
            "fullUrl": PATIENT_URL,
            "resource": _patient("B1"),
            "request": {"method": "POST", "url": "Patient"},
        },
        {
            "resource": _observation(PATIENT_URL),
            "request": {"method": "POST", "url": "Observation"},
        },
        {
            "resource": {
                **_observation(PATIENT_URL),
                "status": "no-such-status",
                "valueQuantity": "high",
            },
            "request": {"method": "POST", "url": "Observation"},
        },
    )
    response = await _post(hub, body)
    assert response.status_code == 422
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert "Bundle.entry[2]" in outcome["issue"][0]["diagnostics"]
    assert await _resource_count(hub) == before


async def _index_row_count(hub: Hub) -> int:
    return await count(hub.platform, "fhir_token")


async def test_transaction_failing_after_its_creations_were_written_leaves_nothing(
    hub: Hub,
) -> None:
    """The PUT makes the queued creations reach the database (70 resources: on PostgreSQL
    by COPY) before its If-Match fails: the rollback must take those rows, index rows
    included, with it."""
    created = await hub.http.post(
        "/fhir/Observation",
        content=orjson.dumps(_observation("Patient/x")),
        headers={**await hub.token(), "Content-Type": "application/fhir+json"},
    )
    existing = created.json()["id"]
    resources, index_rows = await _resource_count(hub), await _index_row_count(hub)
    body = _bundle(
        "transaction",
        {
            "fullUrl": PATIENT_URL,
            "resource": _patient("C1"),
            "request": {"method": "POST", "url": "Patient"},
        },
        *[
            {
                "resource": _observation(PATIENT_URL, value),
                "request": {"method": "POST", "url": "Observation"},
            }
            for value in range(70)
        ],
        {
            "resource": {**_observation("Patient/x", 9.9), "id": existing},
            "request": {"method": "PUT", "url": f"Observation/{existing}", "ifMatch": 'W/"7"'},
        },
    )
    response = await _post(hub, body)
    assert response.status_code == 412, response.text
    assert await _resource_count(hub) == resources
    assert await _index_row_count(hub) == index_rows


async def test_transaction_with_a_dangling_urn_uuid_is_refused(hub: Hub) -> None:
    body = _bundle(
        "transaction",
        {
            "resource": _observation("urn:uuid:00000000-0000-0000-0000-000000000000"),
            "request": {"method": "POST", "url": "Observation"},
        },
    )
    response = await _post(hub, body)
    assert response.status_code == 400
    assert await _resource_count(hub) == 0


async def test_conditional_references_and_conditional_create_in_a_transaction(hub: Hub) -> None:
    first = _bundle(
        "transaction",
        {
            "fullUrl": PATIENT_URL,
            "resource": _patient("C123456789"),
            "request": {
                "method": "POST",
                "url": "Patient",
                "ifNoneExist": f"identifier={KVNR}|C123456789",
            },
        },
    )
    created = (await _post(hub, first)).json()["entry"][0]["response"]
    assert created["status"] == "201 Created"
    again = _bundle(
        "transaction",
        {
            "fullUrl": PATIENT_URL,
            "resource": _patient("C123456789"),
            "request": {
                "method": "POST",
                "url": "Patient",
                "ifNoneExist": f"identifier={KVNR}|C123456789",
            },
        },
        {
            "resource": _observation(PATIENT_URL),
            "request": {"method": "POST", "url": "Observation"},
        },
        {
            "resource": _observation(f"Patient?identifier={KVNR}|C123456789", 9.9),
            "request": {"method": "POST", "url": "Observation"},
        },
    )
    answer = (await _post(hub, again)).json()["entry"]
    assert answer[0]["response"]["status"] == "200 OK"
    assert answer[0]["response"]["location"] == created["location"]
    patient = created["location"].split("/_history")[0]
    found = await hub.http.get(
        "/fhir/Observation",
        params={"subject": patient, "_total": "accurate"},
        headers=await hub.token(),
    )
    assert found.json()["total"] == 2
    unknown = _bundle(
        "transaction",
        {
            "resource": _observation(f"Patient?identifier={KVNR}|nobody"),
            "request": {"method": "POST", "url": "Observation"},
        },
    )
    assert (await _post(hub, unknown)).status_code == 412


async def test_transaction_order_delete_before_create_and_reads_last(hub: Hub) -> None:
    await hub.http.put(
        "/fhir/Patient/hospital-a.old-1",
        content=orjson.dumps({**_patient("D1"), "id": "hospital-a.old-1"}),
        headers=await hub.token(),
    )
    body = _bundle(
        "transaction",
        {"request": {"method": "GET", "url": "Patient?identifier=" + f"{KVNR}|D2"}},
        {
            "resource": {**_patient("D2"), "id": "hospital-a.new-1"},
            "request": {"method": "PUT", "url": "Patient/hospital-a.new-1"},
        },
        {"request": {"method": "DELETE", "url": "Patient/hospital-a.old-1"}},
    )
    answer = (await _post(hub, body)).json()["entry"]
    assert answer[0]["resource"]["total"] == 1
    assert answer[1]["response"]["status"] == "201 Created"
    assert answer[2]["response"]["status"] == "204 No Content"
    assert (
        await hub.http.get("/fhir/Patient/hospital-a.old-1", headers=await hub.token())
    ).status_code == 410


async def test_transaction_may_not_change_one_resource_twice(hub: Hub) -> None:
    body = _bundle(
        "transaction",
        {
            "resource": {**_patient("E1"), "id": "twice"},
            "request": {"method": "PUT", "url": "Patient/twice"},
        },
        {"request": {"method": "DELETE", "url": "Patient/twice"}},
    )
    assert (await _post(hub, body)).status_code == 400


async def test_transaction_entries_may_not_share_a_full_url(hub: Hub) -> None:
    body = _bundle(
        "transaction",
        {
            "fullUrl": PATIENT_URL,
            "resource": _patient("E2"),
            "request": {"method": "POST", "url": "Patient"},
        },
        {
            "fullUrl": PATIENT_URL,
            "resource": _patient("E3"),
            "request": {"method": "POST", "url": "Patient"},
        },
    )
    assert (await _post(hub, body)).status_code == 400
    assert await _resource_count(hub) == 0


async def test_patch_entry_in_a_transaction(hub: Hub) -> None:
    await hub.http.put(
        "/fhir/Patient/hospital-a.p-1",
        content=orjson.dumps({**_patient("F1"), "id": "hospital-a.p-1"}),
        headers=await hub.token(),
    )
    patch = base64.b64encode(
        orjson.dumps([{"op": "add", "path": "/gender", "value": "female"}])
    ).decode()
    body = _bundle(
        "transaction",
        {
            "resource": {
                "resourceType": "Binary",
                "contentType": "application/json-patch+json",
                "data": patch,
            },
            "request": {"method": "PATCH", "url": "Patient/hospital-a.p-1"},
        },
    )
    response = await _post(hub, body, Prefer="return=representation")
    assert response.json()["entry"][0]["resource"]["gender"] == "female"


async def test_batch_answers_entry_by_entry(hub: Hub) -> None:
    body = _bundle(
        "batch",
        {"resource": _patient("G1"), "request": {"method": "POST", "url": "Patient"}},
        {
            "resource": {"resourceType": "Patient", "birthDate": "never"},
            "request": {"method": "POST", "url": "Patient"},
        },
        {"request": {"method": "GET", "url": "Patient/does-not-exist"}},
        {"request": {"method": "BREW", "url": "Coffee"}},
        {"resource": _patient("G2"), "request": {"method": "POST", "url": "Patient"}},
    )
    response = await _post(hub, body)
    assert response.status_code == 200
    statuses = [entry["response"]["status"] for entry in response.json()["entry"]]
    assert statuses == ["201 Created", "422", "404", "400", "201 Created"]
    assert response.json()["entry"][1]["response"]["outcome"]["resourceType"] == "OperationOutcome"


async def test_bundle_input_errors(hub: Hub) -> None:
    assert (await _post(hub, b"{not json")).status_code == 400
    assert (await _post(hub, orjson.dumps({"resourceType": "Patient"}))).status_code == 400
    assert (
        await _post(hub, orjson.dumps({"resourceType": "Bundle", "type": "collection"}))
    ).status_code == 400
    no_request = _bundle("transaction", {"resource": _patient("H1")})
    assert (await _post(hub, no_request)).status_code == 400
    bad_url = _bundle(
        "transaction",
        {"resource": _patient("H1"), "request": {"method": "POST", "url": "Nonsense"}},
    )
    assert (await _post(hub, bad_url)).status_code == 404
    for version, status in (("x", "400"), ("\u0663", "400"), ("99999999999999999999", "404")):
        url = f"Patient/p1/_history/{version}"
        answer = await _post(hub, _bundle("batch", {"request": {"method": "GET", "url": url}}))
        assert answer.json()["entry"][0]["response"]["status"] == status, version


async def test_transaction_cannot_touch_another_hospitals_record(hub: Hub) -> None:
    await hub.http.put(
        "/fhir/Patient/hospital-b.theirs",
        content=orjson.dumps({**_patient("J1"), "id": "hospital-b.theirs"}),
        headers=await hub.token(organisation="hospital-b"),
    )
    before = await _resource_count(hub)
    body = _bundle(
        "transaction",
        {"resource": _patient("J2"), "request": {"method": "POST", "url": "Patient"}},
        {
            "resource": {**_patient("J3"), "id": "hospital-b.theirs"},
            "request": {"method": "PUT", "url": "Patient/hospital-b.theirs"},
        },
    )
    response = await _post(hub, body)
    assert response.status_code == 404
    assert await _resource_count(hub) == before


async def test_a_refusal_in_a_transaction_names_its_entry(hub: Hub) -> None:
    """A write that `access` refuses (another hospital's patient) fails the transaction like
    any other failing entry: nothing stored, and the outcome says which entry it was."""
    elsewhere = await _post(
        hub,
        _bundle(
            "batch", {"resource": _patient("R1"), "request": {"method": "POST", "url": "Patient"}}
        ),
        organisation="hospital-b",
    )
    target = elsewhere.json()["entry"][0]["response"]["location"].split("/_history")[0]
    before = await _resource_count(hub)
    body = _bundle(
        "transaction",
        {"resource": _patient("R2"), "request": {"method": "POST", "url": "Patient"}},
        {
            "resource": {**_patient("R1"), "id": target.split("/")[1]},
            "request": {"method": "PUT", "url": target},
        },
    )
    refused = await _post(hub, body)
    assert refused.status_code == 404, refused.text
    assert refused.json()["issue"][0]["diagnostics"].startswith("Bundle.entry[1]: ")
    assert await _resource_count(hub) == before


async def test_a_failing_read_of_a_transaction_is_answered_in_its_entry(hub: Hub) -> None:
    """The reads of a transaction run after its writes were committed: one that fails is
    answered in its entry, and the answer does not claim that the committed writes failed."""
    body = _bundle(
        "transaction",
        {"resource": _patient("G1"), "request": {"method": "POST", "url": "Patient"}},
        {"request": {"method": "GET", "url": "Patient/hospital-a.nobody"}},
    )
    answer = await _post(hub, body)
    assert answer.status_code == 200, answer.text
    created, read = answer.json()["entry"]
    assert created["response"]["status"] == "201 Created"
    assert read["response"]["status"] == "404"
    assert read["response"]["outcome"]["issue"][0]["code"] == "not-found"
    stored = await hub.http.get(
        f"/fhir/{created['response']['location'].split('/_history')[0]}",
        headers=await hub.token(),
    )
    assert stored.status_code == 200


async def test_no_bundle_plants_an_audit_event_in_the_hub(hub: Hub) -> None:
    """AuditEvents are the audit trail's, read-only over HTTP (405 for a POST): a bundle
    entry may neither store one beside the trail nor read such a planted one back."""
    event = {
        "resourceType": "AuditEvent",
        "type": {"code": "rest"},
        "recorded": "2026-01-01T00:00:00Z",
        "agent": [{"requestor": True}],
        "source": {"observer": {"display": "forged"}},
    }
    before = await _resource_count(hub)
    batch = _bundle(
        "batch",
        {"resource": event, "request": {"method": "POST", "url": "AuditEvent"}},
        {"request": {"method": "GET", "url": "AuditEvent?_count=5"}},
    )
    answer = await _post(hub, batch)
    assert answer.status_code == 200, answer.text
    written, read = answer.json()["entry"]
    assert written["response"]["status"] == "405"
    assert read["response"]["status"] == "501"
    transaction = _bundle(
        "transaction", {"resource": event, "request": {"method": "POST", "url": "AuditEvent"}}
    )
    assert (await _post(hub, transaction)).status_code == 405
    assert await _resource_count(hub) == before


def _observations(count_: int, subject: str, value: float) -> bytes:
    """A transaction of `count_` PUTs of Observations with ids of hospital-a's namespace."""
    entries = []
    for number in range(count_):
        fhir_id = f"hospital-a.obs-{number}"
        resource = {**_observation(subject, value), "id": fhir_id}
        entries.append(
            {"resource": resource, "request": {"method": "PUT", "url": f"Observation/{fhir_id}"}}
        )
    return _bundle("transaction", *entries)


async def test_a_transaction_of_puts_issues_statements_per_table_not_per_entry(hub: Hub) -> None:
    patient = await hub.http.put(
        "/fhir/Patient/hospital-a.p-250",
        content=orjson.dumps({**_patient("K250"), "id": "hospital-a.p-250"}),
        headers=await hub.token(),
    )
    assert patient.status_code == 201
    subject = "Patient/hospital-a.p-250"
    with statements(hub.platform) as creating:
        assert (await _post(hub, _observations(250, subject, 12.0))).status_code == 200
    with statements(hub.platform) as updating:
        assert (await _post(hub, _observations(250, subject, 14.0))).status_code == 200
    assert len(creating) < 30, creating
    assert len(updating) < 30, updating
    versions = await hub.http.get(
        "/fhir/Observation/hospital-a.obs-249/_history", headers=await hub.token()
    )
    assert [e["resource"]["meta"]["versionId"] for e in versions.json()["entry"]] == ["2", "1"]
    found = await hub.http.get(
        "/fhir/Observation?value-quantity=14|http://unitsofmeasure.org|g/dL&_summary=count",
        headers=await hub.token(),
    )
    assert found.json()["total"] == 250
    stale = await hub.http.get(
        "/fhir/Observation?value-quantity=12|http://unitsofmeasure.org|g/dL&_summary=count",
        headers=await hub.token(),
    )
    assert stale.json()["total"] == 0


async def test_transaction_audits_its_writes_in_their_order(hub: Hub) -> None:
    await hub.http.put(
        "/fhir/Patient/hospital-a.p-o1",
        content=orjson.dumps({**_patient("O1"), "id": "hospital-a.p-o1"}),
        headers=await hub.token(),
    )
    body = _bundle(
        "transaction",
        {"resource": _patient("O2"), "request": {"method": "POST", "url": "Patient"}},
        {
            "resource": {**_patient("O1"), "id": "hospital-a.p-o1", "gender": "female"},
            "request": {"method": "PUT", "url": "Patient/hospital-a.p-o1"},
        },
        {
            "resource": {**_patient("O3"), "id": "hospital-a.p-o3"},
            "request": {"method": "PUT", "url": "Patient/hospital-a.p-o3"},
        },
    )
    assert (await _post(hub, body)).status_code == 200
    await hub.platform.audit.seal_all()
    actions = await rows(
        hub.platform,
        "SELECT action, target FROM audit_entry WHERE action LIKE 'fhir.%' ORDER BY seq",
    )
    assert [action for action, _ in actions[-3:]] == ["fhir.create", "fhir.update", "fhir.create"]
    assert actions[-2][1] == "Patient/hospital-a.p-o1"
