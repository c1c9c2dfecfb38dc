"""Conditional interactions, JSON Patch, conditional reads and `Prefer` through HTTP."""

from __future__ import annotations

import asyncio
from email.utils import format_datetime, parsedate_to_datetime

import orjson

from tests.fhir.conftest import Hub
from tests.support import resources
from tests.support.resources import KVNR


def _patient(kvnr: str, family: str = "Mustermann") -> dict[str, object]:
    return resources.patient(kvnr, family, "Erika", "1964-08-12")


async def _count(hub: Hub, kvnr: str) -> int:
    response = await hub.http.get(
        "/fhir/Patient",
        params={"identifier": f"{KVNR}|{kvnr}", "_total": "accurate"},
        headers=await hub.token(),
    )
    return int(response.json()["total"])


async def test_conditional_create_creates_once(hub: Hub) -> None:
    headers = {**await hub.token(), "If-None-Exist": f"identifier={KVNR}|A123456780"}
    first = await hub.http.post(
        "/fhir/Patient", content=orjson.dumps(_patient("A123456780")), headers=headers
    )
    again = await hub.http.post(
        "/fhir/Patient", content=orjson.dumps(_patient("A123456780")), headers=headers
    )
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert await _count(hub, "A123456780") == 1


async def test_concurrent_conditional_creates_make_one_resource(hub: Hub) -> None:
    headers = {**await hub.token(), "If-None-Exist": f"identifier={KVNR}|C111111111"}
    body = orjson.dumps(_patient("C111111111"))
    answers = await asyncio.gather(
        *(hub.http.post("/fhir/Patient", content=body, headers=headers) for _ in range(6))
    )
    assert sorted(a.status_code for a in answers) == [200] * 5 + [201]
    assert await _count(hub, "C111111111") == 1


async def test_conditional_create_with_several_matches_is_412(hub: Hub) -> None:
    for _ in range(2):
        await hub.http.post(
            "/fhir/Patient", content=orjson.dumps(_patient("D1")), headers=await hub.token()
        )
    headers = {**await hub.token(), "If-None-Exist": f"identifier={KVNR}|D1"}
    response = await hub.http.post(
        "/fhir/Patient", content=orjson.dumps(_patient("D1")), headers=headers
    )
    assert response.status_code == 412
    assert response.json()["issue"][0]["code"] == "multiple-matches"


async def test_conditional_update_creates_then_updates(hub: Hub) -> None:
    url = f"/fhir/Patient?identifier={KVNR}|E222222222"
    created = await hub.http.put(
        url, content=orjson.dumps(_patient("E222222222")), headers=await hub.token()
    )
    assert created.status_code == 201
    changed = await hub.http.put(
        url, content=orjson.dumps(_patient("E222222222", "Musterfrau")), headers=await hub.token()
    )
    assert changed.status_code == 200
    assert changed.json()["id"] == created.json()["id"]
    assert changed.json()["meta"]["versionId"] == "2"
    assert changed.json()["name"][0]["family"] == "Musterfrau"


async def test_conditional_update_needs_a_condition_it_understands(hub: Hub) -> None:
    body = orjson.dumps(_patient("F1"))
    empty = await hub.http.put("/fhir/Patient", content=body, headers=await hub.token())
    unknown = await hub.http.put(
        "/fhir/Patient?shoe-size=42", content=body, headers=await hub.token()
    )
    assert (empty.status_code, unknown.status_code) == (400, 400)


async def test_conditional_delete(hub: Hub) -> None:
    created = await hub.http.post(
        "/fhir/Patient", content=orjson.dumps(_patient("G333333333")), headers=await hub.token()
    )
    response = await hub.http.delete(
        f"/fhir/Patient?identifier={KVNR}|G333333333", headers=await hub.token()
    )
    assert response.status_code == 204
    gone = await hub.http.get(f"/fhir/Patient/{created.json()['id']}", headers=await hub.token())
    assert gone.status_code == 410
    nothing = await hub.http.delete(
        f"/fhir/Patient?identifier={KVNR}|G333333333", headers=await hub.token()
    )
    assert nothing.status_code == 204


async def test_conditional_interactions_do_not_see_other_hospitals(hub: Hub) -> None:
    other = await hub.token(organisation="hospital-b")
    await hub.http.post(
        "/fhir/Patient", content=orjson.dumps(_patient("H444444444")), headers=other
    )
    headers = {**await hub.token(), "If-None-Exist": f"identifier={KVNR}|H444444444"}
    mine = await hub.http.post(
        "/fhir/Patient", content=orjson.dumps(_patient("H444444444")), headers=headers
    )
    assert mine.status_code == 201
    deleted = await hub.http.delete(
        f"/fhir/Patient?identifier={KVNR}|H444444444", headers=await hub.token()
    )
    assert deleted.status_code == 204
    still = await hub.http.get(
        "/fhir/Patient",
        params={"identifier": f"{KVNR}|H444444444", "_total": "accurate"},
        headers=other,
    )
    assert still.json()["total"] == 1


async def test_json_patch(hub: Hub) -> None:
    created = (
        await hub.http.post(
            "/fhir/Patient", content=orjson.dumps(_patient("J1")), headers=await hub.token()
        )
    ).json()
    url = f"/fhir/Patient/{created['id']}"
    patch_headers = {
        **await hub.token(),
        "content-type": "application/json-patch+json",
        "If-Match": 'W/"1"',
    }
    operations = [
        {"op": "test", "path": "/birthDate", "value": "1964-08-12"},
        {"op": "replace", "path": "/birthDate", "value": "1964-08-13"},
        {"op": "add", "path": "/gender", "value": "female"},
    ]
    patched = await hub.http.patch(url, content=orjson.dumps(operations), headers=patch_headers)
    assert patched.status_code == 200, patched.text
    assert (patched.json()["birthDate"], patched.json()["gender"]) == ("1964-08-13", "female")
    assert patched.headers["etag"] == 'W/"2"'
    stale = await hub.http.patch(url, content=orjson.dumps(operations), headers=patch_headers)
    assert stale.status_code == 412
    failing_test = [{"op": "test", "path": "/birthDate", "value": "1900-01-01"}]
    headers = {**patch_headers, "If-Match": 'W/"2"'}
    assert (
        await hub.http.patch(url, content=orjson.dumps(failing_test), headers=headers)
    ).status_code == 422
    bad_path = [{"op": "remove", "path": "/nothing/here"}]
    refused = await hub.http.patch(url, content=orjson.dumps(bad_path), headers=headers)
    assert refused.status_code == 422
    reason = refused.json()["issue"][0]["diagnostics"]
    assert "nothing" in reason
    assert "1964-08-13" not in reason  # the stored resource is not echoed into the error
    not_a_patch = {"op": "remove"}
    assert (
        await hub.http.patch(url, content=orjson.dumps(not_a_patch), headers=headers)
    ).status_code == 400
    change_id = [{"op": "replace", "path": "/id", "value": "other"}]
    assert (
        await hub.http.patch(url, content=orjson.dumps(change_id), headers=headers)
    ).status_code == 422
    invalid = [{"op": "replace", "path": "/birthDate", "value": "yesterday"}]
    answer = await hub.http.patch(url, content=orjson.dumps(invalid), headers=headers)
    assert answer.status_code == 422
    assert "Patient.birthDate" in answer.json()["issue"][1]["expression"]
    fhir_json = {**headers, "content-type": "application/fhir+json"}  # a FHIRPath Patch
    assert (await hub.http.patch(url, content=b"{}", headers=fhir_json)).status_code == 422
    text = {**headers, "content-type": "text/plain"}
    assert (await hub.http.patch(url, content=b"{}", headers=text)).status_code == 415
    read = (await hub.http.get(url, headers=await hub.token())).json()
    assert read["meta"]["versionId"] == "2"


async def test_if_none_match_and_if_modified_since(hub: Hub) -> None:
    created = await hub.http.post(
        "/fhir/Patient", content=orjson.dumps(_patient("K1")), headers=await hub.token()
    )
    url = f"/fhir/Patient/{created.json()['id']}"
    token = await hub.token()
    same = await hub.http.get(url, headers={**token, "If-None-Match": 'W/"1"'})
    assert (same.status_code, same.content) == (304, b"")
    other = await hub.http.get(url, headers={**token, "If-None-Match": 'W/"7"'})
    assert other.status_code == 200
    modified = parsedate_to_datetime(created.headers["last-modified"])
    unchanged = await hub.http.get(
        url, headers={**token, "If-Modified-Since": created.headers["last-modified"]}
    )
    assert unchanged.status_code == 304
    earlier = format_datetime(modified.replace(year=2000), usegmt=True)
    assert (
        await hub.http.get(url, headers={**token, "If-Modified-Since": earlier})
    ).status_code == 200
    assert (
        await hub.http.get(url, headers={**token, "If-None-Match": "nonsense"})
    ).status_code == 400


async def test_prefer_return(hub: Hub) -> None:
    body = orjson.dumps(_patient("L1"))
    token = await hub.token()
    minimal = await hub.http.post(
        "/fhir/Patient", content=body, headers={**token, "Prefer": "return=minimal"}
    )
    assert (minimal.status_code, minimal.content) == (201, b"")
    assert "/fhir/Patient/" in minimal.headers["location"]
    outcome = await hub.http.post(
        "/fhir/Patient", content=body, headers={**token, "Prefer": "return=OperationOutcome"}
    )
    assert outcome.json()["resourceType"] == "OperationOutcome"
    full = await hub.http.post(
        "/fhir/Patient", content=body, headers={**token, "Prefer": "return=representation"}
    )
    assert full.json()["resourceType"] == "Patient"


async def test_invalid_resource_is_422_naming_the_element(hub: Hub) -> None:
    wrong = {**_patient("M1"), "birthDate": "12.08.1964", "shoeSize": 42}
    response = await hub.http.post(
        "/fhir/Patient", content=orjson.dumps(wrong), headers=await hub.token()
    )
    assert response.status_code == 422
    expressions = {e for issue in response.json()["issue"] for e in issue.get("expression", [])}
    assert {"Patient.birthDate", "Patient.shoeSize"} <= expressions
    assert await _count(hub, "M1") == 0


async def test_concurrent_update_as_create_of_one_id_never_fails_with_500(hub: Hub) -> None:
    body = orjson.dumps({**_patient("N1"), "id": "hospital-a.same-id"})
    token = await hub.token()
    answers = await asyncio.gather(
        *(
            hub.http.put("/fhir/Patient/hospital-a.same-id", content=body, headers=token)
            for _ in range(6)
        )
    )
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses.count(201) == 1
    assert set(statuses) <= {200, 201, 409}
    history = await hub.http.get("/fhir/Patient/hospital-a.same-id/_history", headers=token)
    assert len(history.json()["entry"]) == statuses.count(200) + 1
