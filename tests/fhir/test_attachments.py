"""Attachments of DocumentReference and Media through HTTP: large data moves to storage as a
Binary on write (the database holds no base64 of it), small data stays inline; the Binary is
read exactly as the resource it is attached to (own organisation, consent sharing,
break-glass; another organisation's is a 404), audited with the Patient; urls of attachments
name only the writer's own Binaries."""

from __future__ import annotations

import base64
import hashlib
import os
from typing import Any

import orjson
import pytest

from medicus.fhir.attachments import INLINE_ATTACHMENT_BYTES
from tests.fhir.conftest import Hub
from tests.support import clients, resources
from tests.support.database import rows

PERSON = "A123456780"
FHIR = {"accept": "application/fhir+json"}
REASON = "Unconscious on admission, allergies unknown"


def _document(patient: str, *attachments: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "DocumentReference",
        "status": "current",
        "subject": {"reference": f"Patient/{patient}"},
        "content": [{"attachment": attachment} for attachment in attachments],
    }


def _pdf(data: bytes, **elements: Any) -> dict[str, Any]:
    return {"contentType": "application/pdf", "data": base64.b64encode(data).decode(), **elements}


async def _create(hub: Hub, resource: dict[str, Any], organisation: str = "hospital-a") -> Any:
    answer = await hub.http.post(
        f"/fhir/{resource['resourceType']}",
        content=orjson.dumps(resource),
        headers=await hub.token(organisation),
    )
    assert answer.status_code == 201, answer.text[:500]
    return answer.json()


async def _content(hub: Hub, resource_type: str, fhir_id: str) -> str:
    [(content,)] = await rows(
        hub.platform,
        "SELECT content FROM fhir_resource WHERE resource_type = :t AND fhir_id = :i",
        t=resource_type,
        i=fhir_id,
    )
    return str(content)


async def _reads(hub: Hub, target: str) -> list[tuple[str, str, str]]:
    """(outcome, reason, Patient records) of every read of `target` in the audit trail."""
    found = await rows(
        hub.platform,
        "SELECT outcome, detail, patients FROM audit_pending"
        " WHERE target = :t AND action = 'fhir.read'"
        " UNION ALL SELECT outcome, detail, patients FROM audit_entry"
        " WHERE target = :t AND action = 'fhir.read'",
        t=target,
    )
    return sorted((o, orjson.loads(d)["reason"], str(p)) for o, d, p in found)


async def test_a_large_attachment_moves_to_storage(hub: Hub) -> None:
    patient = (await _create(hub, resources.patient(PERSON)))["id"]
    data = os.urandom(2 * 1024 * 1024)
    created = await _create(hub, _document(patient, _pdf(data, title="Arztbrief")))
    attachment = created["content"][0]["attachment"]
    assert "data" not in attachment
    sha1 = base64.b64encode(hashlib.sha1(data).digest()).decode()
    assert (attachment["size"], attachment["hash"], attachment["title"]) == (
        len(data),
        sha1,
        "Arztbrief",
    )
    binary = attachment["url"].removeprefix("Binary/")
    stored = await _content(hub, "DocumentReference", created["id"])
    assert len(stored) < 2000, "the database holds a reference, not the base64"
    assert base64.b64encode(data[:3000]).decode()[:4000] not in stored
    assert len(await _content(hub, "Binary", binary)) < 2000

    token = await hub.token()
    raw = await hub.http.get(f"/fhir/Binary/{binary}", headers=token)
    assert (raw.status_code, raw.content) == (200, data)
    assert raw.headers["content-type"] == "application/pdf"
    resource = (await hub.http.get(f"/fhir/Binary/{binary}", headers={**token, **FHIR})).json()
    assert resource["securityContext"] == {"reference": f"DocumentReference/{created['id']}"}
    assert await _reads(hub, f"Binary/{binary}") == [
        ("success", "own-organisation", patient),
        ("success", "own-organisation", patient),
    ]
    [(detail, patients)] = await rows(
        hub.platform,
        "SELECT detail, patients FROM audit_pending WHERE target = :t AND action = 'fhir.create'"
        " UNION ALL SELECT detail, patients FROM audit_entry"
        " WHERE target = :t AND action = 'fhir.create'",
        t=f"Binary/{binary}",
    )
    assert orjson.loads(detail)["attachment_of"] == f"DocumentReference/{created['id']}"
    assert patients == patient

    # Its later versions and its deletion leave the Binary: version 1 still names it.
    changed = {**created, "status": "superseded"}
    updated = await hub.http.put(
        f"/fhir/DocumentReference/{created['id']}", content=orjson.dumps(changed), headers=token
    )
    assert updated.status_code == 200, updated.text
    deleted = await hub.http.delete(f"/fhir/DocumentReference/{created['id']}", headers=token)
    assert deleted.status_code == 204
    assert (await hub.http.get(f"/fhir/Binary/{binary}", headers=token)).content == data


async def test_small_attachments_stay_inline(hub: Hub) -> None:
    small = os.urandom(INLINE_ATTACHMENT_BYTES)
    created = await _create(hub, _document("p", _pdf(small), _pdf(small + b"!")))
    inline, moved = (content["attachment"] for content in created["content"])
    assert base64.b64decode(inline["data"]) == small
    assert "url" not in inline
    assert "data" not in moved
    assert moved["url"].startswith("Binary/")
    media = await _create(
        hub,
        {
            "resourceType": "Media",
            "status": "completed",
            "content": _pdf(os.urandom(INLINE_ATTACHMENT_BYTES * 2), contentType="image/png"),
        },
    )
    assert set(media["content"]) == {"contentType", "url", "size", "hash"}
    read = await hub.http.get(f"/fhir/{media['content']['url']}", headers=await hub.token())
    assert read.headers["content-type"] == "image/png"


async def _shared_document(hub: Hub) -> tuple[str, str, str]:
    """Hospital A's record of the person with a large document; hospital B's record of the
    same person, whom B treats; hospital C's record. (a1, Binary id, c1)."""
    a1 = (await _create(hub, resources.patient(PERSON)))["id"]
    document = await _create(hub, _document(a1, _pdf(os.urandom(200_000))))
    b1 = (await _create(hub, resources.patient(PERSON), "hospital-b"))["id"]
    c1 = (await _create(hub, resources.patient(PERSON), "hospital-c"))["id"]
    await _create(hub, resources.encounter(b1), "hospital-b")
    return a1, document["content"][0]["attachment"]["url"].removeprefix("Binary/"), c1


async def _consent(hub: Hub, a1: str) -> None:
    """A's consent of the person to share, recorded during a stay at A."""
    token = await hub.token()
    stay = await _create(hub, resources.encounter(a1))
    await _create(hub, resources.consent(a1))
    finished = resources.encounter(a1, "finished", id=stay["id"])
    await clients.put(hub.http, token, finished)


async def test_the_binary_is_read_as_the_document_it_is_attached_to(hub: Hub) -> None:
    a1, binary, c1 = await _shared_document(hub)
    reader = await hub.token("hospital-b")
    path = f"/fhir/Binary/{binary}"
    assert (await hub.http.get(path, headers=reader)).status_code == 404
    assert (await hub.http.get(path, headers={**reader, **FHIR})).status_code == 404
    assert await _reads(hub, f"Binary/{binary}") == [
        ("denied", "other-organisation", a1),
        ("denied", "other-organisation", a1),
    ]

    await _consent(hub, a1)
    shared = await hub.http.get(path, headers=reader)
    assert shared.status_code == 200
    assert len(shared.content) == 200_000
    assert ("success", "consent-and-treatment", a1) in await _reads(hub, f"Binary/{binary}")

    physician = await hub.token("hospital-c")
    assert (await hub.http.get(path, headers=physician)).status_code == 404
    opened = await hub.http.post(
        "/api/break-glass", json={"patient": c1, "reason": REASON}, headers=physician
    )
    assert opened.status_code == 201, opened.text
    assert (await hub.http.get(path, headers=physician)).content == shared.content
    assert ("success", "break-glass", a1) in await _reads(hub, f"Binary/{binary}")


async def test_an_attachment_names_only_its_organisations_binaries(hub: Hub) -> None:
    theirs = await hub.http.post(
        "/fhir/Binary",
        content=b"%PDF-1.7 of hospital B",
        headers={**await hub.token("hospital-b"), "content-type": "application/pdf"},
    )
    mine = await hub.http.post(
        "/fhir/Binary",
        content=b"%PDF-1.7 of hospital A",
        headers={**await hub.token(), "content-type": "application/pdf"},
    )
    token = await hub.token()
    base = hub.platform.endpoints.fhir_base_url
    answers = {}
    for name, url in (
        ("theirs", f"Binary/{theirs.json()['id']}"),
        ("none", "Binary/no-such-binary"),
        ("absolute", f"{base}/Binary/{theirs.json()['id']}"),
    ):
        document = _document("p", {"contentType": "application/pdf", "url": url})
        answer = await hub.http.post(
            "/fhir/DocumentReference", content=orjson.dumps(document), headers=token
        )
        assert answer.status_code == 422, (name, answer.text)
        answers[name] = answer.json()["issue"][0]["diagnostics"]
    assert answers["theirs"].replace(theirs.json()["id"], "no-such-binary") == answers["none"]
    assert "no Binary of your organisation" in answers["none"]
    document = _document(
        "p", {"contentType": "application/pdf", "url": f"Binary/{mine.json()['id']}"}
    )
    assert (await _create(hub, document))["content"][0]["attachment"]["url"].startswith("Binary/")
    elsewhere = _document("p", {"contentType": "application/pdf", "url": "https://example.org/x"})
    await _create(hub, elsewhere)


@pytest.mark.parametrize(
    ("attachment", "expression"),
    [
        ({"contentType": "application/pdf", "data": "*" * 100_000}, "attachment.data"),
        (_pdf(b"x" * 100_000, size=5), "attachment.size"),
        (_pdf(b"x" * 100_000, hash="AAAA"), "attachment.hash"),
        (_pdf(b"x" * 100_000, url="https://example.org/x"), "attachment.url"),
        (_pdf(b"\x89PNG\r\n\x1a\n" + bytes(100_000)), "attachment.contentType"),
    ],
    ids=["garbled-base64", "wrong-size", "wrong-hash", "url-and-data", "png-as-pdf"],
)
async def test_bad_large_attachments_are_refused(
    hub: Hub, attachment: dict[str, Any], expression: str
) -> None:
    document = _document("p", {"contentType": "text/plain", "data": "AAAA"}, attachment)
    answer = await hub.http.post(
        "/fhir/DocumentReference", content=orjson.dumps(document), headers=await hub.token()
    )
    assert answer.status_code == 422, answer.text
    issue = answer.json()["issue"][1]
    assert issue["expression"] == [f"DocumentReference.content[1].{expression}"]
    [(used,)] = await rows(hub.platform, "SELECT COALESCE(SUM(used_bytes), 0) FROM storage_usage")
    assert used == 0, "nothing is left in storage"


async def test_a_patch_may_not_bring_large_data(hub: Hub) -> None:
    created = await _create(hub, _document("p", {"contentType": "text/plain", "data": "AAAA"}))
    data = base64.b64encode(os.urandom(100_000)).decode()
    patch = [{"op": "replace", "path": "/content/0/attachment/data", "value": data}]
    answer = await hub.http.patch(
        f"/fhir/DocumentReference/{created['id']}",
        content=orjson.dumps(patch),
        headers={**await hub.token(), "content-type": "application/json-patch+json"},
    )
    assert answer.status_code == 422, answer.text
    assert "PUT" in answer.json()["issue"][0]["diagnostics"]


async def test_transactions_move_attachments_and_name_their_binaries(hub: Hub) -> None:
    large = os.urandom(300_000)
    binary = {"resourceType": "Binary", "contentType": "image/png", "data": "iVBORw0KGgo="}
    by_url = _document("p", {"contentType": "image/png", "url": "urn:uuid:binary-1"})
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": by_url, "request": {"method": "POST", "url": "DocumentReference"}},
            {
                "resource": _document("p", _pdf(large)),
                "request": {"method": "POST", "url": "DocumentReference"},
            },
            {
                "fullUrl": "urn:uuid:binary-1",
                "resource": binary,
                "request": {"method": "POST", "url": "Binary"},
            },
        ],
    }
    token = await hub.token()
    answer = await hub.http.post(
        "/fhir",
        content=orjson.dumps(bundle),
        headers={**token, "prefer": "return=representation"},
    )
    assert answer.status_code == 200, answer.text[:1000]
    first, second, made = (entry["resource"] for entry in answer.json()["entry"])
    assert first["content"][0]["attachment"]["url"] == f"Binary/{made['id']}"
    moved = second["content"][0]["attachment"]["url"]
    assert (await hub.http.get(f"/fhir/{moved}", headers=token)).content == large
    png = await hub.http.get(f"/fhir/Binary/{made['id']}", headers=token)
    assert png.content == base64.b64decode(binary["data"])

    # A failing transaction leaves nothing in storage.
    [(before,)] = await rows(hub.platform, "SELECT SUM(used_bytes) FROM storage_usage")
    failing = {
        **bundle,
        "entry": [
            {
                "resource": _document("p", _pdf(large)),
                "request": {"method": "POST", "url": "DocumentReference"},
            },
            {
                "resource": {"resourceType": "Patient", "birthDate": "yesterday"},
                "request": {"method": "POST", "url": "Patient"},
            },
        ],
    }
    refused = await hub.http.post("/fhir", content=orjson.dumps(failing), headers=token)
    assert refused.status_code == 422
    [(after,)] = await rows(hub.platform, "SELECT SUM(used_bytes) FROM storage_usage")
    assert after == before


async def test_a_batch_moves_attachments_entry_by_entry(hub: Hub) -> None:
    large = os.urandom(100_000)
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {
                "resource": _document("p", _pdf(large)),
                "request": {"method": "POST", "url": "DocumentReference"},
            },
            {
                "resource": _document("p", {"contentType": "a/b", "url": "Binary/nothing"}),
                "request": {"method": "POST", "url": "DocumentReference"},
            },
        ],
    }
    token = await hub.token()
    answer = await hub.http.post(
        "/fhir", content=orjson.dumps(bundle), headers={**token, "prefer": "return=representation"}
    )
    moved, refused = answer.json()["entry"]
    assert refused["response"]["status"] == "422"
    url = moved["resource"]["content"][0]["attachment"]["url"]
    assert (await hub.http.get(f"/fhir/{url}", headers=token)).content == large
