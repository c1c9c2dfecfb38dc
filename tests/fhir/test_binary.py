"""FHIR Binary through HTTP: its bytes in storage (never base64 in the database), read in
their own type or as FHIR JSON, replaced and deleted with the Binary, readable only by its
organisation (another's answers 404, audited), bad input answered clearly."""

from __future__ import annotations

import base64
import hashlib
import os
from typing import Any

import orjson
import pytest

from medicus.fhir.binary import DATA_URL, STORED_OBJECT, object_of
from tests.fhir.conftest import Hub
from tests.support.database import rows

PDF = {"content-type": "application/pdf"}
FHIR = {"accept": "application/fhir+json"}


async def _raw(hub: Hub, data: bytes, organisation: str = "hospital-a", **headers: str) -> str:
    """POST `data` as a PDF Binary of `organisation`; its id."""
    token = await hub.token(organisation)
    answer = await hub.http.post("/fhir/Binary", content=data, headers={**token, **PDF, **headers})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


async def _stored_json(hub: Hub, fhir_id: str) -> dict[str, Any]:
    """The Binary's JSON as the database holds it."""
    [(content,)] = await rows(
        hub.platform,
        "SELECT content FROM fhir_resource WHERE resource_type = 'Binary' AND fhir_id = :i",
        i=fhir_id,
    )
    return dict(orjson.loads(content))


async def _decisions(hub: Hub, target: str) -> list[tuple[str, str, str]]:
    """(action, outcome, reason) of every audit entry about `target`, sealed or not."""
    found = await rows(
        hub.platform,
        "SELECT action, outcome, detail FROM audit_pending WHERE target = :t"
        " UNION ALL SELECT action, outcome, detail FROM audit_entry WHERE target = :t",
        t=target,
    )
    return sorted((a, o, orjson.loads(d)["reason"]) for a, o, d in found)


async def test_bytes_posted_raw_come_back_byte_exact_from_storage(hub: Hub) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    fhir_id = await _raw(hub, data)
    stored = await _stored_json(hub, fhir_id)
    assert "data" not in stored
    assert stored["contentType"] == "application/pdf"
    object_id = object_of(stored)
    assert object_id is not None
    kept = await hub.platform.storage.describe(object_id)
    assert kept is not None
    assert (kept.size, kept.owner, kept.organisation_id) == (
        len(data),
        f"Binary/{fhir_id}",
        "hospital-a",
    )

    token = await hub.token()
    raw = await hub.http.get(f"/fhir/Binary/{fhir_id}", headers=token)
    assert raw.status_code == 200
    assert raw.content == data
    assert raw.headers["content-type"] == "application/pdf"
    assert raw.headers["etag"] == f'"{hashlib.sha256(data).hexdigest()}"'
    assert raw.headers["x-content-type-options"] == "nosniff"
    ranged = await hub.http.get(
        f"/fhir/Binary/{fhir_id}", headers={**token, "range": "bytes=1048570-1048585"}
    )
    assert (ranged.status_code, ranged.content) == (206, data[1048570:1048586])
    again = await hub.http.get(
        f"/fhir/Binary/{fhir_id}", headers={**token, "if-none-match": raw.headers["etag"]}
    )
    assert again.status_code == 304

    resource = await hub.http.get(f"/fhir/Binary/{fhir_id}", headers={**token, **FHIR})
    assert resource.status_code == 200
    body = resource.json()
    assert "data" not in body, "more than 1 MiB: the bytes are read in their own type"
    urls = {extension["url"] for extension in body["_data"]["extension"]}
    assert urls == {STORED_OBJECT, DATA_URL}
    assert resource.headers["etag"] == 'W/"1"'
    assert await _decisions(hub, f"Binary/{fhir_id}") == [
        ("fhir.create", "success", "own-organisation"),
        *[("fhir.read", "success", "own-organisation")] * 4,
    ]


async def test_a_binary_resource_with_data_keeps_it_in_storage(hub: Hub) -> None:
    data = b"Befund: unauffaellig\n" * 100
    binary = {
        "resourceType": "Binary",
        "contentType": "text/plain",
        "data": base64.b64encode(data).decode(),
    }
    token = await hub.token()
    created = await hub.http.post("/fhir/Binary", content=orjson.dumps(binary), headers=token)
    assert created.status_code == 201, created.text
    fhir_id = created.json()["id"]
    assert "data" not in created.json()
    assert "data" not in await _stored_json(hub, fhir_id)

    resource = await hub.http.get(f"/fhir/Binary/{fhir_id}", headers={**token, **FHIR})
    assert base64.b64decode(resource.json()["data"]) == data
    assert (await hub.http.get(f"/fhir/Binary/{fhir_id}?_format=json", headers=token)).json()[
        "data"
    ] == binary["data"]
    raw = await hub.http.get(f"/fhir/Binary/{fhir_id}", headers=token)
    assert (raw.content, raw.headers["content-type"]) == (data, "text/plain")
    # A transaction's GET entry answers as HTTP does with FHIR asked for.
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [{"request": {"method": "GET", "url": f"Binary/{fhir_id}"}}],
    }
    answer = await hub.http.post("/fhir", content=orjson.dumps(bundle), headers=token)
    assert answer.json()["entry"][0]["resource"]["data"] == binary["data"]


async def test_put_replaces_the_bytes_and_delete_shreds_them(hub: Hub) -> None:
    fhir_id = await _raw(hub, b"%PDF-1.7 first")
    first = object_of(await _stored_json(hub, fhir_id))
    token = await hub.token()
    replaced = await hub.http.put(
        f"/fhir/Binary/{fhir_id}", content=b"%PDF-1.7 second", headers={**token, **PDF}
    )
    assert replaced.status_code == 200, replaced.text
    second = object_of(await _stored_json(hub, fhir_id))
    assert first is not None
    assert second not in (None, first)
    assert await hub.platform.storage.describe(first) is None, "the old bytes are shredded"
    raw = await hub.http.get(f"/fhir/Binary/{fhir_id}", headers=token)
    assert raw.content == b"%PDF-1.7 second"
    old = await hub.http.get(f"/fhir/Binary/{fhir_id}/_history/1", headers={**token, **FHIR})
    assert old.status_code == 200
    assert "data" not in old.json()

    # A PUT of the JSON as read (naming its object, no data) keeps the bytes.
    as_read = (await hub.http.get(f"/fhir/Binary/{fhir_id}", headers={**token, **FHIR})).json()
    kept = {key: value for key, value in as_read.items() if key not in ("data", "meta")}
    kept["securityContext"] = {"reference": "Patient/nobody"}
    again = await hub.http.put(f"/fhir/Binary/{fhir_id}", content=orjson.dumps(kept), headers=token)
    assert again.status_code == 200, again.text
    assert object_of(await _stored_json(hub, fhir_id)) == second
    assert (await hub.http.get(f"/fhir/Binary/{fhir_id}", headers=token)).content == (
        b"%PDF-1.7 second"
    )

    deleted = await hub.http.delete(f"/fhir/Binary/{fhir_id}", headers=token)
    assert deleted.status_code == 204
    assert second is not None
    assert await hub.platform.storage.describe(second) is None
    assert (await hub.http.get(f"/fhir/Binary/{fhir_id}", headers=token)).status_code == 410


async def test_another_organisations_binary_is_not_known(hub: Hub) -> None:
    fhir_id = await _raw(hub, b"%PDF-1.7 of hospital A")
    stranger = await hub.token("hospital-b")
    for headers in ({}, FHIR):
        answer = await hub.http.get(f"/fhir/Binary/{fhir_id}", headers={**stranger, **headers})
        assert answer.status_code == 404
        assert answer.json()["resourceType"] == "OperationOutcome"
    nobody = await hub.http.get("/fhir/Binary/no-such-binary", headers=stranger)
    assert nobody.status_code == 404
    told = answer.json()["issue"][0]["diagnostics"]
    assert nobody.json()["issue"][0]["diagnostics"] == told.replace(fhir_id, "no-such-binary")
    put = await hub.http.put(
        f"/fhir/Binary/{fhir_id}", content=b"%PDF", headers={**stranger, **PDF}
    )
    assert put.status_code == 404
    assert await _decisions(hub, f"Binary/{fhir_id}") == [
        ("fhir.create", "success", "own-organisation"),
        ("fhir.read", "denied", "other-organisation"),
        ("fhir.read", "denied", "other-organisation"),
        ("fhir.update", "denied", "other-organisation"),
    ]
    owner = await hub.token()
    assert (await hub.http.get(f"/fhir/Binary/{fhir_id}", headers=owner)).content == (
        b"%PDF-1.7 of hospital A"
    )


async def test_a_binary_is_read_as_its_security_context(hub: Hub) -> None:
    """X-Security-Context names the resource whose access rules a raw Binary follows: a
    token that may read that type may read the Binary; one that may read Binaries but not
    that type may not."""
    token = await hub.token()
    patient = await hub.http.post(
        "/fhir/Patient", content=orjson.dumps({"resourceType": "Patient"}), headers=token
    )
    context = f"Patient/{patient.json()['id']}"
    fhir_id = await _raw(hub, b"%PDF-1.7 consent form", **{"x-security-context": context})
    assert (await _stored_json(hub, fhir_id))["securityContext"] == {"reference": context}
    patients_only = await hub.token(scope="user/Patient.r")
    assert (await hub.http.get(f"/fhir/Binary/{fhir_id}", headers=patients_only)).status_code == 200
    binaries_only = await hub.token(scope="user/Binary.r")
    refused = await hub.http.get(f"/fhir/Binary/{fhir_id}", headers=binaries_only)
    assert refused.status_code == 403
    found = await rows(
        hub.platform,
        "SELECT detail, patients FROM audit_pending WHERE target = :t AND action = 'fhir.read'"
        " UNION ALL SELECT detail, patients FROM audit_entry"
        " WHERE target = :t AND action = 'fhir.read'",
        t=f"Binary/{fhir_id}",
    )
    assert {orjson.loads(detail)["securityContext"] for detail, _ in found} == {context}
    assert all(patient.json()["id"] in str(patients) for _, patients in found)


@pytest.mark.parametrize(
    ("method", "path", "headers", "body", "status", "message"),
    [
        ("POST", "Binary", {"content-type": ""}, b"%PDF", 415, "Content-Type"),
        ("POST", "Binary", PDF, b"", 400, "empty"),
        ("POST", "Binary", {}, b'{"resourceType": "Binary", "contentType": "a/b", "data": "**"}',
         422, "Binary.data is not base64"),
        ("POST", "Binary", {}, b'{"resourceType": "Binary", "data": "AAAA"}', 422, "contentType"),
        ("POST", "Binary", {}, b'{"resourceType": "Binary", "contentType": "a/b", "_data": '
         b'{"extension": [{"url": "' + STORED_OBJECT.encode() + b'", "valueString": "x"}]}}',
         422, "only the server"),
        ("PATCH", "Binary/x", {"content-type": "application/json-patch+json"}, b"[]", 405, "PUT"),
        ("PUT", "Binary?_id=x", {}, b'{"resourceType": "Binary", "contentType": "a/b"}', 405,
         "PUT"),
        ("POST", "Binary", {"content-type": "a/" + "b" * 300}, b"%PDF", 415, "255"),
        ("PUT", "Binary/" + "x" * 200, PDF, b"%PDF", 400, "not a valid FHIR id"),
        ("POST", "Binary", {"content-type": "application/pdf"}, b"\x7fELF\x02\x01\x01" + bytes(60),
         415, "program"),
        ("POST", "Binary", {}, b'{"resourceType": "Binary", "contentType": "application/pdf", '
         b'"data": "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"}', 422,
         "image/png"),
    ],
    ids=["no-content-type", "empty", "garbled-base64", "no-contentType", "forged-object",
         "patch", "conditional-put", "long-content-type", "long-id", "program", "png-as-pdf"],
)  # fmt: skip
async def test_bad_binaries_are_answered_clearly(
    hub: Hub,
    method: str,
    path: str,
    headers: dict[str, str],
    body: bytes,
    status: int,
    message: str,
) -> None:
    token = {**await hub.token(), **headers}
    answer = await hub.http.request(method, f"/fhir/{path}", content=body, headers=token)
    assert answer.status_code == status, answer.text
    outcome = answer.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert message in str(outcome)
    [(used,)] = await rows(hub.platform, "SELECT COALESCE(SUM(used_bytes), 0) FROM storage_usage")
    assert used == 0, "nothing is left in storage"


async def test_a_put_may_not_name_another_binarys_object(hub: Hub) -> None:
    mine = await _raw(hub, b"%PDF-1.7 mine")
    other = await _raw(hub, b"%PDF-1.7 other")
    foreign = await _raw(hub, b"%PDF-1.7 of hospital B", "hospital-b")
    token = await hub.token()
    for source in (other, foreign):
        named = object_of(await _stored_json(hub, source))
        body = {"resourceType": "Binary", "id": mine, "contentType": "application/pdf"}
        body["_data"] = {"extension": [{"url": STORED_OBJECT, "valueString": named}]}
        answer = await hub.http.put(
            f"/fhir/Binary/{mine}", content=orjson.dumps(body), headers=token
        )
        assert answer.status_code == 422, answer.text
    assert (await hub.http.get(f"/fhir/Binary/{mine}", headers=token)).content == b"%PDF-1.7 mine"


async def test_binary_capabilities(hub: Hub) -> None:
    statement = (await hub.http.get("/fhir/metadata")).json()
    [binary] = [r for r in statement["rest"][0]["resource"] if r["type"] == "Binary"]
    codes = {interaction["code"] for interaction in binary["interaction"]}
    assert {"create", "read", "vread", "update", "delete"} <= codes
    assert "patch" not in codes
    assert binary["conditionalDelete"] == "not-supported"


async def test_a_binarys_object_is_not_served_around_its_rules_by_the_storage_api(
    hub: Hub,
) -> None:
    fhir_id = await _raw(hub, b"%PDF-1.7 a letter", **{"x-security-context": "Patient/p1"})
    object_id = object_of(await _stored_json(hub, fhir_id))
    token = await hub.token(scope="user/Binary.cruds")
    for method in ("GET", "HEAD", "DELETE"):
        answer = await hub.http.request(method, f"/storage/objects/{object_id}", headers=token)
        assert answer.status_code == 404, method
        assert method == "HEAD" or f"/fhir/Binary/{fhir_id}" in answer.json()["detail"]
    assert (await hub.platform.storage.describe(str(object_id))) is not None
    refusals = await _decisions(hub, f"Binary/{object_id}")
    assert {reason for _action, outcome, reason in refusals if outcome != "success"} == {
        "read-through-owner"
    }
