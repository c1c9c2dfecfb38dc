"""The storage's HTTP API with bearer tokens of two hospitals: objects kept from a plain body
(sniffed, named, within size and quota), read whole, in parts and conditionally, deleted;
another hospital's user finds nothing (404, audited); bad input is a problem, never a 500."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from medicus.app import create_app
from medicus.platform import Platform, build_platform
from medicus.settings import Settings
from medicus.storage.config import BackendConfig
from medicus.storage.encryption import CHUNK_BYTES
from medicus.storage.sniffing import SNIFF_BYTES
from tests.conftest import hang_up_mid_body, make_settings
from tests.support.clients import bearer
from tests.support.database import rows

MiB = 1024 * 1024
QUOTA = 8 * MiB
LARGEST = 4 * MiB
HOSPITAL_A = "klinikum-a"
HOSPITAL_B = "klinikum-b"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n" + b"x" * 2000
ELF = b"\x7fELF\x02\x01\x01" + b"\0" * 1000


@pytest.fixture
def settings(tmp_path: Path, fresh_database_url: str) -> Settings:
    """A database of its own (usage starts at 0), a quota of 8 MiB and objects of 4 MiB."""
    return make_settings(
        tmp_path,
        fresh_database_url,
        storage_quota_gb=QUOTA / 1024**3,
        storage_max_object_gb=LARGEST / 1024**3,
    )


async def _auth(platform: Platform, organisation: str = HOSPITAL_A, **grant: str) -> dict[str, str]:
    headers = await bearer(platform, organisation, **grant)
    return {"authorization": headers["Authorization"]}


async def _upload(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    data: bytes,
    content_type: str | None = "application/pdf",
    **extra: Any,
) -> httpx.Response:
    sent = dict(headers)
    if content_type is not None:
        sent["content-type"] = content_type
    return await client.post("/storage/objects", content=data, headers=sent, **extra)


async def _kept(
    client: httpx.AsyncClient, headers: dict[str, str], data: bytes, **extra: Any
) -> dict[str, Any]:
    response = await _upload(client, headers, data, **extra)
    assert response.status_code == 201, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def _used(client: httpx.AsyncClient, headers: dict[str, str]) -> int:
    response = await client.get("/storage/usage", headers=headers)
    assert response.status_code == 200, response.text
    return int(response.json()["usedBytes"])


def _files(tmp_path: Path) -> list[Path]:
    return [path for path in (tmp_path / "objects").rglob("*") if path.is_file()]


async def _nothing_kept(platform: Platform, client: httpx.AsyncClient, tmp_path: Path) -> None:
    assert await rows(platform, "SELECT id FROM stored_object") == []
    assert await _used(client, await _auth(platform)) == 0
    assert _files(tmp_path) == []


def _problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text[:300]
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    return body


# --- keeping ----------------------------------------------------------------------------------


async def test_an_upload_is_kept_sealed_and_reads_back_with_its_headers(
    platform: Platform, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    headers = await _auth(platform)
    data = PDF + os.urandom(CHUNK_BYTES + 5000)
    disposition = {"content-disposition": "attachment; filename*=UTF-8''%E2%82%AC%20Befund.pdf"}
    response = await _upload(client, {**headers, **disposition}, data)
    assert response.status_code == 201, response.text
    kept = response.json()
    sha256 = hashlib.sha256(data).hexdigest()
    assert kept == {
        "id": kept["id"],
        "size": len(data),
        "sha256": sha256,
        "contentType": "application/pdf",
        "fileName": "€ Befund.pdf",
    }
    assert response.headers["location"] == f"/storage/objects/{kept['id']}"
    assert response.headers["etag"] == f'"{sha256}"'
    [sealed] = _files(tmp_path)
    assert kept["id"] in sealed.name
    assert data[:64] not in sealed.read_bytes()
    assert data[-64:] not in sealed.read_bytes()

    read = await client.get(response.headers["location"], headers=headers)
    assert read.status_code == 200
    assert read.content == data
    digest = base64.b64encode(bytes.fromhex(sha256)).decode()
    assert read.headers["content-type"] == "application/pdf"
    assert read.headers["content-length"] == str(len(data))
    assert read.headers["etag"] == f'"{sha256}"'
    assert read.headers["content-disposition"] == (
        "attachment; filename=\"_ Befund.pdf\"; filename*=UTF-8''%E2%82%AC%20Befund.pdf"
    )
    assert read.headers["x-content-type-options"] == "nosniff"
    assert read.headers["cache-control"] == "private, no-cache"
    assert read.headers["accept-ranges"] == "bytes"
    assert read.headers["repr-digest"] == f"sha-256=:{digest}:"
    assert read.headers["digest"] == f"sha-256={digest}"

    head = await client.head(response.headers["location"], headers=headers)
    assert head.status_code == 200
    assert head.content == b""
    for name in ("content-length", "etag", "content-type", "content-disposition", "repr-digest"):
        assert head.headers[name] == read.headers[name]
    assert await _used(client, headers) == len(data)


async def test_an_empty_object_is_kept_and_read(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    headers = await _auth(platform)
    kept = await _kept(client, headers, b"", content_type="text/plain")
    read = await client.get(f"/storage/objects/{kept['id']}", headers=headers)
    assert (read.status_code, read.content, read.headers["content-length"]) == (200, b"", "0")
    ranged = await client.get(
        f"/storage/objects/{kept['id']}", headers={**headers, "range": "bytes=0-10"}
    )
    assert ranged.status_code == 200


async def test_an_organisations_first_uploads_at_once_are_all_kept(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    """The first uploads of an organisation create its usage row together: the later ones
    wait for it (PostgreSQL answered 500 for a duplicate key before)."""
    headers = await _auth(platform, "klinikum-neu")
    answers = await asyncio.gather(
        *(_upload(client, headers, PDF, "application/pdf") for _ in range(6))
    )
    assert [answer.status_code for answer in answers] == [201] * 6, [a.text for a in answers]
    assert await _used(client, headers) == 6 * len(PDF)


SNIFFED = [
    (None, PNG, "image/png"),
    ("application/octet-stream", PDF, "application/pdf"),
    ("application/octet-stream", b"just some text", "application/octet-stream"),
    ("image/jpg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\0" * 100, "image/jpg"),
    ("text/plain; charset=utf-8", "Befund: unauffällig".encode(), "text/plain; charset=utf-8"),
    ("image/x-portable-pixmap", PNG, "image/x-portable-pixmap"),
]


async def test_the_content_type_is_the_declared_or_the_sniffed_one(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    headers = await _auth(platform)
    for declared, data, kept_as in SNIFFED:
        kept = await _kept(client, headers, data, content_type=declared)
        assert kept["contentType"] == kept_as, declared
        read = await client.get(f"/storage/objects/{kept['id']}", headers=headers)
        assert read.headers["content-type"] == kept_as


REFUSED = [
    ("application/pdf", PNG, "image/png"),
    ("image/png", PDF, "application/pdf"),
    ("text/plain", PDF, "application/pdf"),
    ("application/pdf", ELF, "program"),
    ("application/octet-stream", ELF, "program"),
    (None, b"MZ" + b"\0" * 58 + b"\x80\0\0\0" + b"\0" * 64 + b"PE\0\0" + b"\0" * 200, "program"),
    ("multipart/form-data; boundary=x", PDF, "multipart/form-data"),
]


async def test_a_contradicting_type_or_a_program_is_415_and_nothing_is_kept(
    platform: Platform, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    headers = await _auth(platform)
    for declared, data, says in REFUSED:
        problem = _problem(await _upload(client, headers, data, content_type=declared), 415)
        assert says in problem["detail"], declared
        await _nothing_kept(platform, client, tmp_path)


NAMED: list[tuple[dict[str, str], dict[str, str], str | None]] = [
    ({"content-disposition": 'attachment; filename="Befund 1.pdf"'}, {}, "Befund 1.pdf"),
    (
        {"content-disposition": "attachment; filename=a.pdf; filename*=UTF-8''b%C3%A4.pdf"},
        {},
        "bä.pdf",
    ),
    ({"content-disposition": "attachment; filename*=iso-8859-1'de'%E4.pdf"}, {}, "ä.pdf"),
    ({"content-disposition": 'attachment; filename="x\\"y.pdf"'}, {}, 'x"y.pdf'),
    ({"content-disposition": "attachment"}, {"name": "Röntgen.pdf"}, "Röntgen.pdf"),
    ({"content-disposition": "inline; filename=a.pdf"}, {"name": "b.pdf"}, "a.pdf"),
    ({}, {"name": "  Arztbrief.pdf "}, "Arztbrief.pdf"),
    ({}, {}, None),
]


async def test_the_file_name_comes_from_content_disposition_or_the_query(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    auth = await _auth(platform)
    for headers, params, kept_name in NAMED:
        kept = await _kept(client, {**auth, **headers}, PDF, params=params)
        assert kept["fileName"] == kept_name, headers


BAD_NAMES: list[tuple[dict[str, str], dict[str, str]]] = [
    ({}, {"name": "../../etc/passwd"}),
    ({}, {"name": "C:\\Windows\\win.ini"}),
    ({}, {"name": "a\x00b.pdf"}),
    ({}, {"name": "a\nb.pdf"}),
    ({}, {"name": "rechnung\u202efdp.exe"}),
    ({}, {"name": "x" * 256}),
    ({}, {"name": " "}),
    ({}, {"name": ".."}),
    ({"content-disposition": "attachment; filename*=UTF-8''%FF%FE.pdf"}, {}),
    ({"content-disposition": "attachment; filename*=UTF-8''..%2Fx.pdf"}, {}),
    ({"content-disposition": "attachment; filename*=utf-16''x.pdf"}, {}),
    ({"content-disposition": 'attachment; filename="unterminated'}, {}),
    ({"content-disposition": 'garbage;;;===""'}, {}),
    ({"content-disposition": ";"}, {}),
]


async def test_a_bad_file_name_is_400_and_nothing_is_kept(
    platform: Platform, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    auth = await _auth(platform)
    for headers, params in BAD_NAMES:
        _problem(await _upload(client, {**auth, **headers}, PDF, params=params), 400)
    await _nothing_kept(platform, client, tmp_path)


async def test_bad_headers_are_problems_before_the_body_is_read(
    platform: Platform, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    auth = await _auth(platform)
    for content_type in ("pdf", "application/pdf; charset", "a/" + "b" * 300):
        _problem(await _upload(client, auth, PDF, content_type=content_type), 400)
    for length, status in (
        ("abc", 400),
        ("-1", 400),
        ("1e3", 400),
        ("\u0663".encode(), 400),
        ("9" * 5000, 413),
    ):
        _problem(await _upload(client, {**auth, "content-length": length}, PDF), status)  # type: ignore[dict-item]
    _problem(await _upload(client, {**auth, "content-encoding": "gzip"}, PDF), 415)

    async def chunked() -> AsyncIterator[bytes]:
        yield PDF

    headers = {**auth, "content-type": "application/pdf"}
    response = await client.post("/storage/objects", content=chunked(), headers=headers)
    assert "/storage/uploads" in _problem(response, 411)["detail"]
    await _nothing_kept(platform, client, tmp_path)


async def test_an_object_above_the_largest_is_413_and_beyond_the_quota_507(
    platform: Platform, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    headers = await _auth(platform)
    too_large = await _upload(client, headers, os.urandom(LARGEST + 1), "application/octet-stream")
    assert str(LARGEST) in _problem(too_large, 413)["detail"]
    await _nothing_kept(platform, client, tmp_path)
    for _ in range(2):
        await _kept(client, headers, os.urandom(LARGEST), content_type="application/octet-stream")
    beyond = await _upload(client, headers, b"one byte too many"[:1], "text/plain")
    assert "quota" in _problem(beyond, 507)["detail"]
    assert await _used(client, headers) == QUOTA
    other = await _auth(platform, HOSPITAL_B)
    await _kept(client, other, PDF)  # the quota is each organisation's


@pytest.mark.parametrize("sent", [10, SNIFF_BYTES + 10_000])
async def test_a_client_hanging_up_mid_body_leaves_nothing_and_releases_the_quota(
    platform: Platform, client: httpx.AsyncClient, tmp_path: Path, sent: int
) -> None:
    """Before the first bytes were sniffed, and after (the object was being sealed)."""
    app = create_app(platform.settings, platform)
    auth = await _auth(platform)
    messages = await hang_up_mid_body(
        app,
        "/storage/objects",
        [
            (b"host", b"testserver"),
            (b"content-length", str(LARGEST).encode()),
            (b"content-type", b"application/octet-stream"),
            (b"authorization", auth["authorization"].encode()),
        ],
        os.urandom(sent),
    )
    assert [m for m in messages if m["type"] == "http.response.start"] == []
    await _nothing_kept(platform, client, tmp_path)


@pytest.mark.parametrize("sent", [b"short", PDF * 2])
async def test_a_body_of_another_length_than_announced_is_400_and_nothing_is_kept(
    platform: Platform, client: httpx.AsyncClient, tmp_path: Path, sent: bytes
) -> None:
    headers = {**await _auth(platform), "content-length": str(len(PDF))}
    _problem(await _upload(client, headers, sent), 400)
    await _nothing_kept(platform, client, tmp_path)


# --- who may ----------------------------------------------------------------------------------


async def test_another_hospital_gets_404_for_everything_and_is_audited(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    mine = await _auth(platform)
    kept = await _kept(client, mine, PDF)
    url = f"/storage/objects/{kept['id']}"
    theirs = await _auth(platform, HOSPITAL_B)
    assert _problem(await client.get(url, headers=theirs), 404)["detail"].startswith("There is")
    assert (await client.head(url, headers=theirs)).status_code == 404
    assert (await client.get(url, headers={**theirs, "range": "bytes=0-1"})).status_code == 404
    _problem(await client.delete(url, headers=theirs), 404)
    unknown = "00000000-0000-4000-8000-000000000000"
    unknown_answer = await client.get(f"/storage/objects/{unknown}", headers=theirs)
    assert unknown_answer.json()["detail"] == _problem(await client.get(url, headers=theirs), 404)[
        "detail"
    ].replace(kept["id"], unknown)
    assert (await client.get(url, headers=mine)).content == PDF
    await platform.audit.seal_all()
    audited = set(
        await rows(
            platform,
            "SELECT action, outcome, organisation FROM audit_entry WHERE target = :target",
            target=f"Binary/{kept['id']}",
        )
    )
    assert ("fhir.read", "denied", HOSPITAL_B) in audited
    assert ("fhir.delete", "denied", HOSPITAL_B) in audited
    assert ("fhir.read", "success", HOSPITAL_A) in audited
    assert ("fhir.read", "success", HOSPITAL_B) not in audited
    assert ("fhir.create", "success", HOSPITAL_A) in set(
        await rows(platform, "SELECT action, outcome, organisation FROM audit_entry")
    )


async def test_a_patient_and_a_token_without_binary_scope_get_403(
    platform: Platform, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    kept = await _kept(client, await _auth(platform), PDF)
    url = f"/storage/objects/{kept['id']}"
    patient = await _auth(platform, role="patient", scope="patient/*.rs", subject="p-1")
    narrow = await _auth(platform, scope="user/Observation.cruds")
    for headers in (patient, narrow):
        _problem(await _upload(client, headers, PDF), 403)
        _problem(await client.get(url, headers=headers), 403)
        _problem(await client.delete(url, headers=headers), 403)
    _problem(await client.get("/storage/usage", headers=patient), 403)
    assert len(await rows(platform, "SELECT id FROM stored_object")) == 1


async def test_without_a_valid_token_it_is_401(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    kept = await _kept(client, await _auth(platform), PDF)
    for authorization in (None, "Bearer not-a-token", "Basic dXNlcjpwdw==", "Bearer "):
        headers = {} if authorization is None else {"authorization": authorization}
        for method, url in (
            ("POST", "/storage/objects"),
            ("GET", f"/storage/objects/{kept['id']}"),
            ("DELETE", f"/storage/objects/{kept['id']}"),
            ("GET", "/storage/usage"),
        ):
            response = await client.request(method, url, headers=headers, content=b"")
            _problem(response, 401)


async def test_an_id_that_is_no_object_id_is_404(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    headers = await _auth(platform)
    for object_id in (
        "not-a-uuid",
        "00000000-0000-4000-8000-00000000000G",
        "{00000000-0000-4000-8000-000000000000}",
        "..%2F..%2Fkeys",
        "x" * 3000,
        "%00",
    ):
        for method in ("GET", "HEAD", "DELETE"):
            url = f"/storage/objects/{object_id}"
            response = await client.request(method, url, headers=headers)
            assert response.status_code == 404, (method, object_id)


async def test_delete_is_204_then_404_and_releases_the_quota(
    platform: Platform, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    headers = await _auth(platform)
    kept = await _kept(client, headers, PDF)
    url = f"/storage/objects/{kept['id']}"
    wrong = {**headers, "if-match": '"0000"'}
    _problem(await client.delete(url, headers=wrong), 412)
    deleted = await client.delete(url, headers={**headers, "if-match": f'"{kept["sha256"]}"'})
    assert (deleted.status_code, deleted.content) == (204, b"")
    _problem(await client.get(url, headers=headers), 404)
    _problem(await client.delete(url, headers=headers), 404)
    assert await _used(client, headers) == 0
    assert _files(tmp_path) == []


async def test_usage_is_the_organisations(platform: Platform, client: httpx.AsyncClient) -> None:
    headers = await _auth(platform)
    await _kept(client, headers, PDF)
    response = await client.get("/storage/usage", headers=headers)
    assert response.json() == {
        "organisation": HOSPITAL_A,
        "usedBytes": len(PDF),
        "quotaBytes": QUOTA,
        "maxObjectBytes": LARGEST,
    }
    other = await client.get("/storage/usage", headers=await _auth(platform, HOSPITAL_B))
    assert other.json()["usedBytes"] == 0


# --- conditional requests and ranges ----------------------------------------------------------


@pytest.fixture
async def large(platform: Platform, client: httpx.AsyncClient) -> tuple[str, bytes, dict[str, str]]:
    """An object of three chunks and a bit, its bytes and the headers to read it."""
    headers = await _auth(platform)
    data = os.urandom(3 * CHUNK_BYTES + 1234)
    kept = await _kept(client, headers, data, content_type="application/octet-stream")
    return f"/storage/objects/{kept['id']}", data, headers


CONDITIONS: list[tuple[dict[str, str], int]] = [
    ({"if-none-match": "ETAG"}, 304),
    ({"if-none-match": "W/ETAG"}, 304),
    ({"if-none-match": '"other", ETAG'}, 304),
    ({"if-none-match": "*"}, 304),
    ({"if-none-match": '"other"'}, 200),
    ({"if-none-match": "garbage, ,,"}, 200),
    ({"if-match": "ETAG"}, 200),
    ({"if-match": "*"}, 200),
    ({"if-match": '"other"'}, 412),
    ({"if-match": "W/ETAG"}, 412),
    ({"if-match": "garbage"}, 412),
    ({"if-match": '"other"', "if-none-match": "ETAG"}, 412),
    ({"if-none-match": "ETAG", "range": "bytes=0-1"}, 304),
]


async def test_conditional_requests(
    large: tuple[str, bytes, dict[str, str]], client: httpx.AsyncClient
) -> None:
    url, data, headers = large
    etag = (await client.head(url, headers=headers)).headers["etag"]
    for condition, status in CONDITIONS:
        sent = {**headers, **{k: v.replace("ETAG", etag) for k, v in condition.items()}}
        for method in ("GET", "HEAD"):
            response = await client.request(method, url, headers=sent)
            assert response.status_code == status, (method, condition)
            if status == 304:
                assert response.content == b""
                assert response.headers["etag"] == etag
                assert "content-length" not in response.headers
            if status == 412 and method == "GET":
                _problem(response, 412)
            if status == 200 and method == "GET":
                assert response.content == data


def _slice(data: bytes, first: int, last: int) -> bytes:
    return data[first : last + 1]


async def test_a_range_is_206_of_that_range(
    large: tuple[str, bytes, dict[str, str]], client: httpx.AsyncClient
) -> None:
    url, data, headers = large
    size = len(data)
    around_chunks = (CHUNK_BYTES - 10, 2 * CHUNK_BYTES + 10)
    for spec, (first, last) in (
        ("bytes=0-99", (0, 99)),
        ("bytes=100-", (100, size - 1)),
        ("bytes=-100", (size - 100, size - 1)),
        ("bytes=-99999999", (0, size - 1)),
        (f"bytes={around_chunks[0]}-{around_chunks[1]}", around_chunks),
        (f"bytes={size - 1}-{size + 1000}", (size - 1, size - 1)),
        ("BYTES = 5 - 9", (5, 9)),
        ("bytes=0-0", (0, 0)),
        (f"bytes=0-{'9' * 500}", (0, size - 1)),
        ("bytes=0-9, 5-20", (0, 20)),
        (f"bytes=10-19,20-29,{size}-", (10, 29)),
    ):
        response = await client.get(url, headers={**headers, "range": spec})
        assert response.status_code == 206, (spec, response.text)
        assert response.headers["content-range"] == f"bytes {first}-{last}/{size}", spec
        assert response.headers["content-length"] == str(last - first + 1)
        assert response.content == _slice(data, first, last), spec


async def test_several_ranges_are_multipart_byteranges(
    large: tuple[str, bytes, dict[str, str]], client: httpx.AsyncClient
) -> None:
    url, data, headers = large
    size = len(data)
    response = await client.get(url, headers={**headers, "range": "bytes=-10, 0-9, 5000-5099"})
    assert response.status_code == 206
    media_type, _, boundary = response.headers["content-type"].partition("; boundary=")
    assert media_type == "multipart/byteranges"
    assert "content-range" not in response.headers
    expected = b""
    for index, (first, last) in enumerate(((size - 10, size - 1), (0, 9), (5000, 5099))):
        expected += b"\r\n" if index else b""
        expected += (
            f"--{boundary}\r\nContent-Type: application/octet-stream\r\n"
            f"Content-Range: bytes {first}-{last}/{size}\r\n\r\n"
        ).encode() + _slice(data, first, last)
    expected += f"\r\n--{boundary}--\r\n".encode()
    assert response.content == expected
    assert response.headers["content-length"] == str(len(expected))


IGNORED: list[str | bytes] = [
    "bytes=abc",
    "bits=0-1",
    "bytes=5-2",
    "bytes=",
    "bytes=,",
    "bytes=0-1;2-3",
    "bytes=0x10-20",
    "bytes=1-2-3",
    "bytes=--5",
    "bytes=0-1," + "0-1," * 2000,
    "bytes=" + "9" * 5000 + "-",
    "bytes=" + ",".join(f"{i * 10}-{i * 10}" for i in range(17)),
    "bytes=\u0661-\u0662".encode(),
]


async def test_a_range_that_does_not_parse_or_has_too_many_parts_is_ignored(
    large: tuple[str, bytes, dict[str, str]], client: httpx.AsyncClient
) -> None:
    url, data, headers = large
    for spec in IGNORED:
        response = await client.get(url, headers={**headers, "range": spec})  # type: ignore[dict-item]
        assert response.status_code == 200, spec
        assert response.content == data


async def test_an_unsatisfiable_range_is_416(
    large: tuple[str, bytes, dict[str, str]], client: httpx.AsyncClient
) -> None:
    url, data, headers = large
    size = len(data)
    for spec in ("bytes=999999999-", "bytes=-0", f"bytes={size}-", f"bytes={size}-, -0"):
        response = await client.get(url, headers={**headers, "range": spec})
        _problem(response, 416)
        assert response.headers["content-range"] == f"bytes */{size}"


async def test_if_range_applies_the_range_only_for_the_current_etag(
    large: tuple[str, bytes, dict[str, str]], client: httpx.AsyncClient
) -> None:
    url, data, headers = large
    etag = (await client.head(url, headers=headers)).headers["etag"]
    ranged = {**headers, "range": "bytes=0-9"}
    assert (await client.get(url, headers={**ranged, "if-range": etag})).status_code == 206
    for other in ('"other"', f"W/{etag}", "Wed, 21 Oct 2015 07:28:00 GMT"):
        response = await client.get(url, headers={**ranged, "if-range": other})
        assert (response.status_code, response.content) == (200, data)
    head = await client.head(url, headers=ranged)
    assert (head.status_code, head.headers["content-length"]) == (200, str(len(data)))


# --- on each kind of backend ------------------------------------------------------------------


async def test_the_api_on_each_backend(
    backend_config: BackendConfig, tmp_path: Path, fresh_database_url: str
) -> None:
    """Keep, read in parts and delete through HTTP, the object on a local folder, S3 (moto)
    or Azure Blob (azurite)."""
    settings = make_settings(tmp_path, fresh_database_url, storage_backends=[backend_config])
    platform = build_platform(settings)
    transport = httpx.ASGITransport(app=create_app(settings, platform))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            headers = await _auth(platform)
            data = PDF + os.urandom(2 * CHUNK_BYTES + 777)
            kept = await _kept(client, headers, data)
            url = f"/storage/objects/{kept['id']}"
            assert (await client.get(url, headers=headers)).content == data
            first, last = CHUNK_BYTES - 3, CHUNK_BYTES + 3
            ranged = await client.get(url, headers={**headers, "range": f"bytes={first}-{last}"})
            assert (ranged.status_code, ranged.content) == (206, _slice(data, first, last))
            assert (await client.delete(url, headers=headers)).status_code == 204
            assert (await client.get(url, headers=headers)).status_code == 404
    finally:
        await platform.close()
