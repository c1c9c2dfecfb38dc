"""A write names an id: whether another hospital holds a resource by that id must not show in
the answer, and no hospital can take an id that another's connector will use.

Hospital B writes to (a) an id of a Patient that hospital A holds (and does not share with B)
and (b) the same kind of id that nobody holds: every answer — status and body, over HTTP and
as batch and transaction entries — is the same. Client-assigned ids are accepted only in the
writer's organisation's namespace (`{organisation id}.…`), so A's connector still creates the
Patient with its KIS number after B tried to take it."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import orjson
import pytest

from tests.fhir.conftest import Hub

TAKEN = "hospital-a.kis-4711"
FREE = "hospital-a.kis-4712"
PLACEHOLDER = "hospital-a.kis-47xx"
KIS = "http://klinikum-a.example/kis/patient-number"
JSON_PATCH = {"content-type": "application/json-patch+json"}
STATUS_PATCH = [{"op": "replace", "path": "/active", "value": False}]


def _patient(fhir_id: str | None, number: str = "4711") -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "active": True,
        "identifier": [{"system": KIS, "value": number}],
        "birthDate": "1964-08-12",
    }
    return resource if fhir_id is None else {"id": fhir_id, **resource}


async def _holders_patient(hub: Hub) -> dict[str, Any]:
    """A's Patient `TAKEN`, created with its client-assigned id."""
    response = await hub.http.put(
        f"/fhir/Patient/{TAKEN}", content=orjson.dumps(_patient(TAKEN)), headers=await hub.token()
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def _answer(response: httpx.Response, fhir_id: str) -> tuple[int, Any]:
    """Status and body, with the id asked for replaced by one placeholder."""
    body = response.content.decode().replace(fhir_id, PLACEHOLDER)
    return response.status_code, orjson.loads(body) if body else None


async def _http(hub: Hub, kind: str, fhir_id: str) -> httpx.Response:
    """One write of hospital B's to `fhir_id`."""
    headers = {**await hub.token("hospital-b"), "x-request-id": "probe"}
    body = orjson.dumps(_patient(fhir_id, "9"))
    patch = orjson.dumps(STATUS_PATCH)
    if kind == "PUT":
        return await hub.http.put(f"/fhir/Patient/{fhir_id}", content=body, headers=headers)
    if kind == "conditional PUT":
        url = f"/fhir/Patient?identifier={KIS}|no-such-number"
        return await hub.http.put(url, content=body, headers=headers)
    if kind == "PATCH":
        url = f"/fhir/Patient/{fhir_id}"
        return await hub.http.patch(url, content=patch, headers={**headers, **JSON_PATCH})
    if kind == "conditional PATCH":
        url = f"/fhir/Patient?_id={fhir_id}"
        return await hub.http.patch(url, content=patch, headers={**headers, **JSON_PATCH})
    if kind == "DELETE":
        return await hub.http.delete(f"/fhir/Patient/{fhir_id}", headers=headers)
    assert kind == "conditional DELETE"
    return await hub.http.delete(f"/fhir/Patient?_id={fhir_id}", headers=headers)


def _entry(kind: str, fhir_id: str) -> dict[str, Any]:
    """The bundle entry of the same write."""
    patch = {
        "resourceType": "Binary",
        "contentType": "application/json-patch+json",
        "data": base64.b64encode(orjson.dumps(STATUS_PATCH)).decode(),
    }
    return {
        "PUT": {
            "resource": _patient(fhir_id, "9"),
            "request": {"method": "PUT", "url": f"Patient/{fhir_id}"},
        },
        "conditional PUT": {
            "resource": _patient(fhir_id, "9"),
            "request": {"method": "PUT", "url": f"Patient?identifier={KIS}|no-such-number"},
        },
        "PATCH": {"resource": patch, "request": {"method": "PATCH", "url": f"Patient/{fhir_id}"}},
        "conditional PATCH": {
            "resource": patch,
            "request": {"method": "PATCH", "url": f"Patient?_id={fhir_id}"},
        },
        "DELETE": {"request": {"method": "DELETE", "url": f"Patient/{fhir_id}"}},
        "conditional DELETE": {"request": {"method": "DELETE", "url": f"Patient?_id={fhir_id}"}},
    }[kind]


KINDS = ["PUT", "conditional PUT", "PATCH", "conditional PATCH", "DELETE", "conditional DELETE"]


@pytest.mark.parametrize("kind", KINDS)
async def test_a_write_to_another_hospitals_id_answers_as_to_a_free_one(
    hub: Hub, kind: str
) -> None:
    held = await _holders_patient(hub)
    answers = {
        fhir_id: _answer(await _http(hub, kind, fhir_id), fhir_id) for fhir_id in (TAKEN, FREE)
    }
    assert answers[TAKEN] == answers[FREE]
    status, _ = answers[TAKEN]
    assert status in (404, 204), answers  # refused as unknown, or nothing to delete
    for bundle_type in ("batch", "transaction"):
        bodies = {}
        for fhir_id in (TAKEN, FREE):
            bundle = {
                "resourceType": "Bundle",
                "type": bundle_type,
                "entry": [_entry(kind, fhir_id)],
            }
            response = await hub.http.post(
                "/fhir",
                content=orjson.dumps(bundle),
                headers={**await hub.token("hospital-b"), "x-request-id": "probe"},
            )
            bodies[fhir_id] = _answer(response, fhir_id)
        assert bodies[TAKEN] == bodies[FREE], bundle_type
    # Nothing of A's changed; nothing was created under either id.
    mine = await hub.http.get(f"/fhir/Patient/{TAKEN}", headers=await hub.token())
    assert mine.json() == held
    free = await hub.http.get(f"/fhir/Patient/{FREE}", headers=await hub.token())
    assert free.status_code == 404


async def test_a_hospitals_ids_cannot_be_taken_by_another(hub: Hub) -> None:
    b = await hub.token("hospital-b")
    squat = await hub.http.put(
        f"/fhir/Patient/{TAKEN}", content=orjson.dumps(_patient(TAKEN)), headers=b
    )
    assert squat.status_code == 404
    assert "'hospital-b.'" in squat.json()["issue"][0]["diagnostics"]  # where B's ids go
    await _holders_patient(hub)  # A's connector creates it all the same
    own = await hub.http.put(
        "/fhir/Patient/hospital-b.kis-4711",
        content=orjson.dumps(_patient("hospital-b.kis-4711")),
        headers=b,
    )
    assert own.status_code == 201, own.text


async def test_a_conditional_update_on_the_kis_number_is_an_idempotent_upsert(hub: Hub) -> None:
    """How a connector writes without choosing ids: each hospital's condition finds only what
    that hospital holds, so the same KIS number at two hospitals makes two records."""
    url = f"/fhir/Patient?identifier={KIS}|4711"
    first = await hub.http.put(url, content=orjson.dumps(_patient(None)), headers=await hub.token())
    again = await hub.http.put(url, content=orjson.dumps(_patient(None)), headers=await hub.token())
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    assert again.json()["meta"]["versionId"] == "2"
    elsewhere = await hub.http.put(
        url, content=orjson.dumps(_patient(None)), headers=await hub.token("hospital-b")
    )
    assert elsewhere.status_code == 201
    assert elsewhere.json()["id"] != first.json()["id"]
