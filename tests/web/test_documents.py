"""Documents filed to a chart through HTTP: the portal's tus endpoint takes the session and
the CSRF token, a finished upload becomes a DocumentReference with a Binary over the stored
object (one transaction, as the uploader, audited), its download streams the same bytes
through the Binary read, and only the uploader's own unowned object of their own
organisation can be filed. The platform operator's storage page."""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import orjson

from medicus.iam.pages import CSRF_COOKIE
from tests.iam.browser import Browser
from tests.support.database import rows
from tests.web.conftest import (
    NURSE,
    PLATFORM_ADMIN,
    Ward,
    add_platform_admin,
    anna_at_both_hospitals,
    sealed_entries,
)

UPLOADS = "/portal/uploads"
TUS = {"Tus-Resumable": "1.0.0"}
PDF = b"%PDF-1.7\n" + os.urandom(300_000) + b"\n%%EOF\n"
DISCHARGE = "18842-5"


@asynccontextmanager
async def _nurse(ward: Ward) -> AsyncIterator[Browser]:
    """The nurse of hospital B, logged in to the portal (her CSRF cookie set)."""
    async with ward.browser_of(NURSE) as nurse:
        await nurse.login("/portal")
        yield nurse


def _csrf(browser: Browser) -> str:
    token = browser.http.cookies.get(CSRF_COOKIE)
    assert token
    return token


async def _upload(browser: Browser, data: bytes, csrf: str | None = None) -> httpx.Response:
    """A tus upload of `data` in two PATCHes; the last answer."""
    headers = {**TUS, "X-CSRF-Token": csrf if csrf is not None else _csrf(browser)}
    created = await browser.http.post(
        UPLOADS,
        headers={**headers, "Upload-Length": str(len(data)), "Upload-Metadata": _metadata()},
    )
    assert created.status_code == 201, created.text
    location = created.headers["location"]
    assert location.startswith(f"{UPLOADS}/")
    half = len(data) // 2
    answer = created
    for offset, piece in ((0, data[:half]), (half, data[half:])):
        answer = await browser.http.patch(
            location,
            content=piece,
            headers={
                **headers,
                "Upload-Offset": str(offset),
                "Content-Type": "application/offset+octet-stream",
            },
        )
        assert answer.status_code == 204, answer.text
    return answer


def _metadata() -> str:
    def encoded(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    return f"filename {encoded('Entlassbrief.pdf')},filetype {encoded('application/pdf')}"


async def _file(
    browser: Browser, patient_id: str, object_ref: str, **fields: str
) -> httpx.Response:
    form = {"csrf": _csrf(browser), "object": object_ref, "kind": DISCHARGE, "title": "Brief"}
    return await browser.http.post(f"/portal/patients/{patient_id}/documents", data=form | fields)


async def test_the_portals_tus_needs_a_session_and_the_csrf_token(ward: Ward) -> None:
    anonymous = await ward.http.post(UPLOADS, headers={**TUS, "Upload-Length": "10"})
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"].startswith("application/problem+json")
    options = await ward.http.options(UPLOADS)
    assert options.status_code == 204
    async with _nurse(ward) as nurse:
        for token in ("", "forged"):
            refused = await nurse.http.post(
                UPLOADS, headers={**TUS, "Upload-Length": "10", "X-CSRF-Token": token}
            )
            assert refused.status_code == 403, token
            assert refused.headers["content-type"].startswith("application/problem+json")
        created = await nurse.http.post(
            UPLOADS, headers={**TUS, "Upload-Length": "10", "X-CSRF-Token": _csrf(nurse)}
        )
        assert created.status_code == 201
        location = created.headers["location"]
        patch = {**TUS, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"}
        forged = await nurse.http.patch(location, content=b"0123456789", headers=patch)
        assert forged.status_code == 403
        described = await nurse.http.head(location, headers=TUS)
        assert (described.status_code, described.headers["upload-offset"]) == (200, "0")
        overridden = await nurse.http.post(
            location,
            content=b"0123456789",
            headers={**patch, "X-HTTP-Method-Override": "PATCH", "X-CSRF-Token": "x"},
        )
        assert overridden.status_code == 403


async def test_a_nurse_files_an_upload_and_downloads_the_same_bytes(ward: Ward) -> None:
    ids = await anna_at_both_hospitals(ward)
    async with _nurse(ward) as nurse:
        chart = await nurse.http.get(f"/portal/patients/{ids['b1']}")
        assert 'id="upload-form"' in chart.text
        finished = await _upload(nurse, PDF)
        named = finished.headers["medicus-object"]
        assert named.startswith("/storage/objects/")
        filed = await _file(nurse, ids["b1"], named, title="Entlassbrief  Innere")
        assert filed.status_code == 303
        assert filed.headers["location"].startswith(f"/portal/patients/{ids['b1']}?filed=1")
        chart = await nurse.http.get(filed.headers["location"])
        assert "Entlassbrief Innere" in chart.text
        documents = await _documents(ward, ids["b1"])
        assert len(documents) == 1
        attachment = documents[0]["content"][0]["attachment"]
        assert documents[0]["type"]["coding"][0]["code"] == DISCHARGE
        assert attachment["contentType"] == "application/pdf"
        assert attachment["size"] == len(PDF)
        binary_id = attachment["url"].removeprefix("Binary/")
        assert f'href="/portal/documents/{binary_id}"' in chart.text
        download = await nurse.http.get(f"/portal/documents/{binary_id}")
        assert download.status_code == 200
        assert hashlib.sha256(download.content).digest() == hashlib.sha256(PDF).digest()
        assert download.headers["content-type"] == "application/pdf"
        again = await _file(nurse, ids["b1"], named)
        assert again.status_code == 404, "an object becomes one document only"
    reads = await sealed_entries(ward, "fhir.read", "target, outcome, detail")
    binary_reads = [r for r in reads if r[0] == f"Binary/{binary_id}"]
    assert binary_reads
    assert binary_reads[-1][1] == "success"
    assert orjson.loads(binary_reads[-1][2])["client"] == "medicus-portal"
    creates = await sealed_entries(ward, "fhir.create", "target, outcome")
    assert (f"Binary/{binary_id}", "success") in creates
    assert (f"DocumentReference/{documents[0]['id']}", "success") in creates
    owners = await rows(ward.platform, "SELECT owner FROM stored_object")
    assert [tuple(r) for r in owners] == [(f"Binary/{binary_id}",)]


async def test_only_ones_own_unowned_upload_can_be_filed(ward: Ward) -> None:
    ids = await anna_at_both_hospitals(ward)
    bearer = (await ward.region.token("hospital-a"))["Authorization"]
    elsewhere = await ward.http.post(
        "/storage/objects",
        content=PDF,
        headers={"Authorization": bearer, "Content-Type": "application/pdf"},
    )
    assert elsewhere.status_code == 201, elsewhere.text
    colleague = await ward.physician.login("/portal")
    assert colleague.status_code == 200
    physicians = await _upload(ward.physician, PDF)
    async with _nurse(ward) as nurse:
        for foreign in (elsewhere.json()["id"], physicians.headers["medicus-object"]):
            refused = await _file(nurse, ids["b1"], foreign)
            assert refused.status_code == 404, foreign
        own = (await _upload(nurse, PDF)).headers["medicus-object"]
        for patient, fields, status in (
            (ids["a1"], {}, 404),
            ("no-such-record", {}, 404),
            (ids["b1"], {"kind": "1234-5"}, 422),
            (ids["b1"], {"title": "   "}, 422),
            (ids["b1"], {"csrf": "stale"}, 400),
            (ids["b1"], {"object": "not-an-object"}, 404),
        ):
            refused = await _file(nurse, patient, own, **fields)
            assert refused.status_code == status, (patient, fields)
        assert await _documents(ward, ids["b1"]) == []
        filed = await _file(nurse, ids["b1"], own)
        assert filed.status_code == 303
    owners = await rows(ward.platform, "SELECT owner FROM stored_object WHERE owner IS NOT NULL")
    assert len(owners) == 1


async def test_the_storage_page_is_the_platform_operators(ward: Ward) -> None:
    ids = await anna_at_both_hospitals(ward)
    async with _nurse(ward) as nurse:
        await _file(nurse, ids["b1"], (await _upload(nurse, PDF)).headers["medicus-object"])
        refused = await nurse.http.get("/portal/platform/storage")
        assert refused.status_code == 403
    await add_platform_admin(ward)
    async with ward.browser_of(PLATFORM_ADMIN) as operator:
        operator.http.headers["Accept-Language"] = "en"
        start = await operator.login("/portal")
        assert 'href="/portal/platform/storage"' in start.text
        page = await operator.http.get("/portal/platform/storage")
        assert page.status_code == 200
        text = page.text
        assert "<td>local</td>" in text
        assert "Local directory" in text
        assert "hospital-b" in text, "usage by organisation, by name"
        assert "293 KB" in text, "the filed PDF (300,016 bytes), in units of 1,024"
        assert "500 GB" in text, "the default quota, as the settings say it"
        operator.http.headers["Accept-Language"] = "de"
        german = await operator.http.get("/portal/platform/storage")
        assert "Belegung je Einrichtung" in german.text


async def _documents(ward: Ward, patient_id: str) -> list[dict]:
    headers = await ward.region.token("hospital-b")
    found = await ward.http.get(
        "/fhir/DocumentReference", params={"patient": patient_id}, headers=headers
    )
    assert found.status_code == 200, found.text
    return [entry["resource"] for entry in found.json().get("entry", [])]
