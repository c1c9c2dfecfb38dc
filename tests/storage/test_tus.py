"""Resumable uploads over the tus 1.0 protocol, through HTTP: creation (with and without
bytes), appending, resuming after a dropped connection, checksums, termination, expiry,
quotas, another organisation's uploads, bad input; and a real tus client (tuspy) against a
real server process."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import itertools
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from tusclient import client as tus_client

from medicus.platform import Platform, build_platform
from medicus.settings import Settings
from medicus.storage.encryption import CHUNK_BYTES, HEADER_BYTES, TAG_BYTES
from medicus.storage.models import StorageUploadRow
from tests.conftest import (
    POSTGRES_ADMIN_URL,
    DatabaseFactory,
    hang_up_mid_body,
    make_settings,
    register_organisation,
)
from tests.e2e.conftest import RunningServer, medicus_environment, register_backend_service, serving
from tests.support.clients import bearer
from tests.support.clock import MovableClock

ORG, OTHER = "klinikum-tus", "praxis-tus"
TUS = {"Tus-Resumable": "1.0.0"}
STREAM = {**TUS, "Content-Type": "application/offset+octet-stream"}
MAX_GB, QUOTA_GB = 0.05, 0.1
MAX_BYTES = int(MAX_GB * 1024**3)


@pytest.fixture
def settings(tmp_path: Path, fresh_database_url: str) -> Settings:
    return make_settings(
        tmp_path, fresh_database_url, storage_max_object_gb=MAX_GB, storage_quota_gb=QUOTA_GB
    )


@pytest.fixture
async def platform(settings: Settings, clock: MovableClock) -> AsyncIterator[Platform]:
    built = build_platform(settings, clock)
    await register_organisation(built, ORG)
    await register_organisation(built, OTHER)
    yield built
    await built.close()


async def _token(platform: Platform, organisation: str = ORG, **options: str) -> dict[str, str]:
    headers = await bearer(platform, organisation, **options)
    return {"Authorization": headers["Authorization"]}


@pytest.fixture
async def staff(platform: Platform) -> dict[str, str]:
    return {**await _token(platform), **TUS}


def _metadata(**values: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


async def _create(
    http: httpx.AsyncClient, headers: dict[str, str], length: int, **extra: str
) -> str:
    metadata = _metadata(filename="befund.pdf", filetype="application/pdf")
    response = await http.post(
        "/storage/uploads",
        headers={**headers, "Upload-Length": str(length), "Upload-Metadata": metadata, **extra},
    )
    assert response.status_code == 201, response.text
    return response.headers["location"]


async def _patch(
    http: httpx.AsyncClient, headers: dict[str, str], at: str, offset: int, data: bytes
) -> httpx.Response:
    return await http.patch(
        at, content=data, headers={**headers, **STREAM, "Upload-Offset": str(offset)}
    )


async def _offset(http: httpx.AsyncClient, headers: dict[str, str], at: str) -> int:
    response = await http.head(at, headers=headers)
    assert response.status_code == 200, response.headers
    return int(response.headers["upload-offset"])


async def _object_bytes(platform: Platform, location: str) -> bytes:
    object_id = location.rsplit("/", 1)[1]
    return b"".join([part async for part in platform.storage.stream(object_id)])


async def _used(platform: Platform, organisation: str = ORG) -> int:
    async with platform.database.snapshot() as session:
        found = await session.execute(
            text("SELECT used_bytes FROM storage_usage WHERE organisation_id = :org"),
            {"org": organisation},
        )
        return int(found.scalar() or 0)


def _staging(settings: Settings, location: str) -> Path:
    return settings.data_dir / "uploads" / f"{location.rsplit('/', 1)[1]}.sealed"


async def test_options_announce_the_protocol(client: httpx.AsyncClient) -> None:
    response = await client.options("/storage/uploads")
    assert response.status_code == 204
    assert response.headers["tus-version"] == "1.0.0"
    assert response.headers["tus-max-size"] == str(MAX_BYTES)
    assert response.headers["tus-extension"] == (
        "creation,creation-with-upload,termination,checksum,expiration"
    )
    assert response.headers["tus-checksum-algorithm"] == "sha1,sha256,md5"


async def test_an_upload_in_pieces_becomes_the_object_byte_exact(
    client: httpx.AsyncClient, platform: Platform, settings: Settings, staff: dict[str, str]
) -> None:
    data = os.urandom(3 * CHUNK_BYTES + 12_345)
    at = await _create(client, staff, len(data))
    assert at.startswith("/storage/uploads/")
    head = await client.head(at, headers=staff)
    assert head.headers["upload-offset"] == "0"
    assert head.headers["upload-length"] == str(len(data))
    assert head.headers["cache-control"] == "no-store"
    assert head.headers["tus-resumable"] == "1.0.0"
    assert head.headers["upload-metadata"] == _metadata(
        filename="befund.pdf", filetype="application/pdf"
    )
    assert dt.datetime.strptime(head.headers["upload-expires"], "%a, %d %b %Y %H:%M:%S GMT")
    assert await _used(platform) == len(data)
    # Pieces ending inside a chunk, exactly at a chunk's end, and the rest.
    cuts = [0, CHUNK_BYTES + 7, 2 * CHUNK_BYTES, len(data)]
    for start, end in itertools.pairwise(cuts):
        response = await _patch(client, staff, at, start, data[start:end])
        assert response.status_code == 204, response.text
        assert response.headers["upload-offset"] == str(end)
        assert await _offset(client, staff, at) == end
    assert "upload-expires" not in response.headers
    location = response.headers["medicus-object"]
    assert location.startswith("/storage/objects/")
    assert (await client.head(at, headers=staff)).headers["medicus-object"] == location
    assert await _object_bytes(platform, location) == data
    stored = await platform.storage.describe(location.rsplit("/", 1)[1])
    assert stored is not None
    assert (stored.sha256, stored.file_name, stored.content_type) == (
        hashlib.sha256(data).hexdigest(),
        "befund.pdf",
        "application/pdf",
    )
    assert not _staging(settings, at).exists()
    assert await _used(platform) == len(data)  # the object keeps the reservation
    again = await _patch(client, staff, at, len(data), b"")
    assert again.status_code == 204
    assert (await _patch(client, staff, at, len(data), b"x")).status_code == 400


async def test_the_pending_bytes_in_the_database_are_sealed(
    client: httpx.AsyncClient, platform: Platform, settings: Settings, staff: dict[str, str]
) -> None:
    data = b"Befund: Fraktur des Radius, keine Dislokation. " * 1000
    at = await _create(client, staff, len(data) + 10)
    assert (await _patch(client, staff, at, 0, data)).status_code == 204
    async with platform.database.snapshot() as session:
        row = await session.get(StorageUploadRow, at.rsplit("/", 1)[1])
    assert row is not None
    assert row.received == len(data)
    assert b"Fraktur" not in row.tail
    assert len(row.tail) == 12 + len(data) + 16
    assert b"Fraktur" not in _staging(settings, at).read_bytes()


async def test_creation_with_upload(
    client: httpx.AsyncClient, platform: Platform, staff: dict[str, str]
) -> None:
    data = os.urandom(100_000)
    whole = await client.post(
        "/storage/uploads",
        content=data,
        headers={**STREAM, **staff, "Upload-Length": str(len(data))},
    )
    assert whole.status_code == 201, whole.text
    assert whole.headers["upload-offset"] == str(len(data))
    assert await _object_bytes(platform, whole.headers["medicus-object"]) == data

    part = await client.post(
        "/storage/uploads",
        content=data[:40_000],
        headers={**STREAM, **staff, "Upload-Length": str(len(data))},
    )
    assert part.status_code == 201
    assert part.headers["upload-offset"] == "40000"
    at = part.headers["location"]
    finished = await _patch(client, staff, at, 40_000, data[40_000:])
    assert await _object_bytes(platform, finished.headers["medicus-object"]) == data

    empty = await client.post("/storage/uploads", headers={**staff, "Upload-Length": "0"})
    assert empty.status_code == 201
    assert await _object_bytes(platform, empty.headers["medicus-object"]) == b""


async def test_a_dropped_connection_keeps_what_arrived_and_resumes_byte_exact(
    client: httpx.AsyncClient, platform: Platform, staff: dict[str, str]
) -> None:
    data = os.urandom(2 * CHUNK_BYTES + 999)
    at = await _create(client, staff, len(data))
    arrived = CHUNK_BYTES + 4321
    headers = {
        **staff,
        **STREAM,
        "Upload-Offset": "0",
        "X-HTTP-Method-Override": "PATCH",
        "Content-Length": str(len(data)),
    }
    app = client._transport.app  # type: ignore[attr-defined]
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    await hang_up_mid_body(app, at, raw, data[:arrived])
    assert await _offset(client, staff, at) == arrived
    response = await _patch(client, staff, at, arrived, data[arrived:])
    assert response.status_code == 204
    kept = await _object_bytes(platform, response.headers["medicus-object"])
    assert hashlib.sha256(kept).hexdigest() == hashlib.sha256(data).hexdigest()


async def test_surplus_bytes_of_a_crash_before_the_commit_are_cut_off(
    client: httpx.AsyncClient, platform: Platform, settings: Settings, staff: dict[str, str]
) -> None:
    """What a process killed between appending to the staging file and committing leaves."""
    data = os.urandom(3 * CHUNK_BYTES)
    at = await _create(client, staff, len(data))
    assert (await _patch(client, staff, at, 0, data[:CHUNK_BYTES])).status_code == 204
    staging = _staging(settings, at)
    assert staging.stat().st_size == HEADER_BYTES  # the first chunk waits for a byte after it
    with staging.open("ab") as surplus:
        surplus.write(os.urandom(CHUNK_BYTES + TAG_BYTES + 77))
    response = await _patch(client, staff, at, CHUNK_BYTES, data[CHUNK_BYTES:])
    assert response.status_code == 204, response.text
    assert await _object_bytes(platform, response.headers["medicus-object"]) == data


async def test_a_checksum_mismatch_keeps_nothing(
    client: httpx.AsyncClient, platform: Platform, staff: dict[str, str]
) -> None:
    data = os.urandom(50_000)
    at = await _create(client, staff, len(data))
    wrong = base64.b64encode(hashlib.sha256(b"other").digest()).decode()
    mismatch = await client.patch(
        at,
        content=data[:20_000],
        headers={**staff, **STREAM, "Upload-Offset": "0", "Upload-Checksum": f"sha256 {wrong}"},
    )
    assert mismatch.status_code == 460
    assert mismatch.headers["content-type"] == "application/problem+json"
    assert mismatch.headers["tus-resumable"] == "1.0.0"
    assert await _offset(client, staff, at) == 0
    for algorithm in ("sha1", "md5", "sha256"):
        offset = await _offset(client, staff, at)
        piece = data[offset : offset + 10_000]
        right = base64.b64encode(hashlib.new(algorithm, piece).digest()).decode()
        response = await client.patch(
            at,
            content=piece,
            headers={
                **staff,
                **STREAM,
                "Upload-Offset": str(offset),
                "Upload-Checksum": f"{algorithm} {right}",
            },
        )
        assert response.status_code == 204, response.text
    assert await _offset(client, staff, at) == 30_000
    for checksum in ("crc32 AAAAAA==", "sha256 !!!", "sha256 AAAA", "sha256"):
        response = await client.patch(
            at,
            content=b"x",
            headers={**staff, **STREAM, "Upload-Offset": "30000", "Upload-Checksum": checksum},
        )
        assert response.status_code == 400, checksum
    wrong_body = await client.post(
        "/storage/uploads",
        content=data,
        headers={
            **staff,
            **STREAM,
            "Upload-Length": str(len(data)),
            "Upload-Checksum": f"sha256 {wrong}",
        },
    )
    assert wrong_body.status_code == 460
    assert await _used(platform) == len(data)  # only the first upload's reservation


async def test_the_protocol_refuses_what_it_cannot_take(
    client: httpx.AsyncClient, platform: Platform, staff: dict[str, str]
) -> None:
    at = await _create(client, staff, 1000)
    assert (await _patch(client, staff, at, 0, b"a" * 100)).status_code == 204
    conflict = await _patch(client, staff, at, 0, b"b" * 100)
    assert conflict.status_code == 409
    assert "100 bytes" in conflict.json()["detail"]
    wrong_type = await client.patch(
        at,
        content=b"x",
        headers={**staff, "Content-Type": "application/octet-stream", "Upload-Offset": "100"},
    )
    assert wrong_type.status_code == 415
    no_version = await client.patch(
        at,
        content=b"x",
        headers={
            "Authorization": staff["Authorization"],
            "Content-Type": STREAM["Content-Type"],
            "Upload-Offset": "100",
        },
    )
    assert no_version.status_code == 412
    assert no_version.headers["tus-version"] == "1.0.0"
    too_long = await _patch(client, staff, at, 100, b"c" * 901)
    assert too_long.status_code == 400
    assert await _offset(client, staff, at) == 100
    for offset in ("-1", "abc", "1e3", "", "99999999999999999999"):
        response = await client.patch(
            at, content=b"x", headers={**staff, **STREAM, "Upload-Offset": offset}
        )
        assert response.status_code == 400, offset
    missing = await client.patch(at, content=b"x", headers={**staff, **STREAM})
    assert missing.status_code == 400
    unauthenticated = await client.head(at, headers=TUS)
    assert unauthenticated.status_code == 401
    assert unauthenticated.headers["tus-resumable"] == "1.0.0"


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Upload-Length": "-5"}, 400),
        ({"Upload-Length": "five"}, 400),
        ({}, 400),
        ({"Upload-Defer-Length": "1"}, 400),
        ({"Upload-Length": "10", "Upload-Metadata": "filename !!notbase64"}, 400),
        ({"Upload-Length": "10", "Upload-Metadata": "a YQ==,a YQ=="}, 400),
        ({"Upload-Length": "10", "Upload-Metadata": "k " + "QUFB" * 1100}, 400),
        ({"Upload-Length": "10", "Upload-Metadata": _metadata(filetype="not a type")}, 400),
        ({"Upload-Length": "10", "Upload-Metadata": "filename /w==,x"}, 400),
        ({"Upload-Length": "10", "Upload-Metadata": _metadata(filename="a\nb")}, 400),
        ({"Upload-Length": "10", "Content-Type": "text/plain", "Content-Length": "3"}, 415),
        ({"Upload-Length": str(MAX_BYTES + 1)}, 413),
    ],
)
async def test_creation_refuses_bad_headers(
    client: httpx.AsyncClient,
    platform: Platform,
    staff: dict[str, str],
    headers: dict[str, str],
    status: int,
) -> None:
    content = b"abc" if "Content-Length" in headers else None
    response = await client.post("/storage/uploads", headers={**staff, **headers}, content=content)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert await _used(platform) == 0


async def test_metadata_keys_without_values_are_echoed(
    client: httpx.AsyncClient, staff: dict[str, str]
) -> None:
    metadata = f"{_metadata(filename='Röntgen Thorax.dcm')},is_confidential"
    response = await client.post(
        "/storage/uploads",
        headers={**staff, "Upload-Length": "5", "Upload-Metadata": metadata},
    )
    assert response.status_code == 201
    head = await client.head(response.headers["location"], headers=staff)
    assert head.headers["upload-metadata"] == metadata


async def test_the_quota_is_counted_at_creation_and_released_on_termination(
    client: httpx.AsyncClient, platform: Platform, settings: Settings, staff: dict[str, str]
) -> None:
    first = await _create(client, staff, MAX_BYTES)
    await _create(client, staff, MAX_BYTES)
    beyond = await client.post(
        "/storage/uploads", headers={**staff, "Upload-Length": str(MAX_BYTES)}
    )
    assert beyond.status_code == 507
    assert "quota" in beyond.json()["detail"]
    assert beyond.headers["tus-resumable"] == "1.0.0"
    assert (await _patch(client, staff, first, 0, b"z" * 5000)).status_code == 204
    deleted = await client.delete(first, headers=staff)
    assert deleted.status_code == 204
    assert not _staging(settings, first).exists()
    assert (await client.head(first, headers=staff)).status_code == 404
    assert (await client.delete(first, headers=staff)).status_code == 404
    assert await _used(platform) == MAX_BYTES
    again = await client.post("/storage/uploads", headers={**staff, "Upload-Length": "10"})
    assert again.status_code == 201


async def test_another_organisation_gets_404_and_it_is_audited(
    client: httpx.AsyncClient, platform: Platform, staff: dict[str, str]
) -> None:
    at = await _create(client, staff, 1000)
    upload_id = at.rsplit("/", 1)[1]
    stranger = {**await _token(platform, OTHER), **TUS}
    head = await client.head(at, headers=stranger)
    patched = await _patch(client, stranger, at, 0, b"x" * 10)
    deleted = await client.delete(at, headers=stranger)
    unknown = await client.head("/storage/uploads/" + str(uuid.uuid4()), headers=stranger)
    garbled = await client.delete("/storage/uploads/" + "x" * 500, headers=stranger)
    answers = (head, patched, deleted, unknown, garbled)
    assert [answer.status_code for answer in answers] == [404] * 5
    assert head.headers["tus-resumable"] == "1.0.0"
    assert patched.json()["detail"] == (await client.delete(at, headers=stranger)).json()["detail"]
    assert await _offset(client, staff, at) == 0
    await platform.audit.seal_all()
    async with platform.database.snapshot() as session:
        found = await session.execute(
            text("SELECT outcome FROM audit_entry WHERE target = :target AND actor = :actor"),
            {"target": f"Binary/{upload_id}", "actor": f"user:{OTHER}-physician"},
        )
        outcomes = [row[0] for row in found]
    assert len(outcomes) == 4
    assert all(outcome != "success" for outcome in outcomes)


async def test_who_may_not_create_binaries_gets_403(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    reader = {**await _token(platform, scope="user/Observation.rs"), **TUS}
    response = await client.post("/storage/uploads", headers={**reader, "Upload-Length": "10"})
    assert response.status_code == 403
    patient = await _token(platform, role="patient", kind="user", scope="patient/*.cruds")
    response = await client.post(
        "/storage/uploads", headers={**patient, **TUS, "Upload-Length": "10"}
    )
    assert response.status_code == 403
    assert await _used(platform) == 0


async def test_expired_uploads_are_refused_then_removed(
    client: httpx.AsyncClient,
    platform: Platform,
    settings: Settings,
    staff: dict[str, str],
    clock: MovableClock,
) -> None:
    stale = await _create(client, staff, 5000)
    assert (await _patch(client, staff, stale, 0, b"s" * 2000)).status_code == 204
    done = await _create(client, staff, 10)
    finished = await _patch(client, staff, done, 0, b"d" * 10)
    lifetime = dt.timedelta(hours=settings.storage_upload_hours)
    clock.advance(lifetime - dt.timedelta(minutes=1))
    fresh = await _create(client, staff, 300)
    clock.advance(dt.timedelta(minutes=2))
    assert (await client.head(stale, headers=staff)).status_code == 410
    assert (await _patch(client, staff, stale, 2000, b"s")).status_code == 410
    await platform.storage_work.round()  # the background work's round sweeps them
    assert await platform.storage_uploads.expire_due(clock()) == 0
    assert not _staging(settings, stale).exists()
    assert (await client.head(stale, headers=staff)).status_code == 404
    assert (await client.head(done, headers=staff)).status_code == 404
    assert await _offset(client, staff, fresh) == 0
    assert await _used(platform) == 10 + 300  # the object's bytes and the fresh upload's
    assert await _object_bytes(platform, finished.headers["medicus-object"]) == b"d" * 10


async def test_a_second_request_on_a_busy_upload_is_told_to_wait(
    client: httpx.AsyncClient, platform: Platform, staff: dict[str, str]
) -> None:
    at = await _create(client, staff, 200_000)
    go_on = asyncio.Event()

    async def slow_body() -> AsyncIterator[bytes]:
        yield b"a" * 50_000
        await go_on.wait()
        yield b"b" * 50_000

    first = asyncio.create_task(
        client.patch(at, content=slow_body(), headers={**staff, **STREAM, "Upload-Offset": "0"})
    )
    await asyncio.sleep(0.2)
    second = await _patch(client, staff, at, 0, b"c" * 10)
    assert second.status_code == 423
    assert second.headers["retry-after"] == "1"
    assert (await client.delete(at, headers=staff)).status_code == 423
    go_on.set()
    assert (await first).status_code == 204
    assert await _offset(client, staff, at) == 100_000


async def test_a_damaged_staging_file_is_discarded_with_its_quota(
    client: httpx.AsyncClient, platform: Platform, settings: Settings, staff: dict[str, str]
) -> None:
    data = os.urandom(2 * CHUNK_BYTES + 5)
    at = await _create(client, staff, len(data))
    assert (await _patch(client, staff, at, 0, data[: 2 * CHUNK_BYTES])).status_code == 204
    staging = _staging(settings, at)
    damaged = bytearray(staging.read_bytes())
    damaged[HEADER_BYTES + 100] ^= 1
    staging.write_bytes(bytes(damaged))
    response = await _patch(client, staff, at, 2 * CHUNK_BYTES, data[2 * CHUNK_BYTES :])
    assert response.status_code == 500
    assert "Start a new upload" in response.json()["detail"]
    assert (await client.head(at, headers=staff)).status_code == 404
    assert not staging.exists()
    assert await _used(platform) == 0


async def test_the_type_is_checked_against_the_first_bytes_at_the_end(
    client: httpx.AsyncClient, platform: Platform, settings: Settings, staff: dict[str, str]
) -> None:
    png = b"\x89PNG\r\n\x1a\n" + os.urandom(CHUNK_BYTES + 500)
    as_pdf = await _create(client, staff, len(png))  # declared application/pdf
    assert (await _patch(client, staff, as_pdf, 0, png[:1000])).status_code == 204
    refused = await _patch(client, staff, as_pdf, 1000, png[1000:])
    assert refused.status_code == 415
    assert "image/png" in refused.json()["detail"]
    assert (await client.head(as_pdf, headers=staff)).status_code == 404
    assert not _staging(settings, as_pdf).exists()
    program = b"\x7fELF\x02\x01\x01" + bytes(200)
    elf = await client.post(
        "/storage/uploads",
        content=program,
        headers={**staff, **STREAM, "Upload-Length": str(len(program))},
    )
    assert elf.status_code == 415
    assert await _used(platform) == 0
    unsaid = await client.post(
        "/storage/uploads",
        content=png,
        headers={**staff, **STREAM, "Upload-Length": str(len(png))},
    )
    stored = await platform.storage.describe(unsaid.headers["medicus-object"].rsplit("/", 1)[1])
    assert stored is not None
    assert stored.content_type == "image/png"


# --- a real tus client against a real server ------------------------------------------------


@pytest.fixture
def served(tmp_path: Path, database_factory: DatabaseFactory) -> Iterator[RunningServer]:
    url = database_factory.really_migrated_url() if POSTGRES_ADMIN_URL else None
    with serving(medicus_environment(tmp_path / "var", url)) as server:
        yield server


def test_tuspy_uploads_20_mib_in_2_mib_chunks(served: RunningServer, tmp_path: Path) -> None:
    hub = register_backend_service(served, tmp_path, "Klinikum Tus", "260100031", "system/*.cruds")
    token = hub.access_token()
    source = tmp_path / "serie.dcm"
    source.write_bytes(os.urandom(20 * 1024 * 1024 + 333))
    tus = tus_client.TusClient(
        f"{served.base_url}/storage/uploads", headers={"Authorization": f"Bearer {token}"}
    )
    uploader = tus.uploader(
        str(source),
        chunk_size=2 * 1024 * 1024,
        metadata={"filename": "serie.dcm"},
        upload_checksum=True,
    )
    uploader.upload()
    assert uploader.url is not None
    head = httpx.head(uploader.url, headers={"Authorization": f"Bearer {token}", **TUS})
    assert head.headers["upload-offset"] == str(source.stat().st_size)
    digest = hashlib.sha256()
    with httpx.stream(
        "GET",
        f"{served.base_url}{head.headers['medicus-object']}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    ) as download:
        assert download.status_code == 200
        for piece in download.iter_bytes():
            digest.update(piece)
    assert digest.hexdigest() == hashlib.sha256(source.read_bytes()).hexdigest()
