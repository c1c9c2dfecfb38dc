"""The object storage's use-cases on two local backends: an object is sealed onto both, read
whole and by range, served from the good replica when the other is damaged, kept within the
quota, and deleted by destroying its key."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from medicus.core.errors import ApiError
from medicus.platform import Platform, build_platform
from medicus.storage.config import BackendConfig
from medicus.storage.encryption import CHUNK_BYTES, HEADER_BYTES, TAG_BYTES
from medicus.storage.models import ObjectReplicaRow, StorageUsageRow, StoredObjectRow
from medicus.storage.service import NewObject, object_key
from tests.conftest import make_settings
from tests.support.clock import MovableClock

ORG = "klinikum-a"


def _backend(folder: Path, name: str) -> BackendConfig:
    return BackendConfig(name=name, url=folder.resolve().as_uri())


@pytest.fixture
async def platform(
    tmp_path: Path, fresh_database_url: str, clock: MovableClock
) -> AsyncIterator[Platform]:
    settings = make_settings(
        tmp_path,
        fresh_database_url,
        storage_backends=[_backend(tmp_path / "one", "one"), _backend(tmp_path / "two", "two")],
        storage_quota_gb=0.01,
    )
    built = build_platform(settings, clock)
    yield built
    await built.close()


async def _body(data: bytes, piece: int = 100_000) -> AsyncIterator[bytes]:
    for start in range(0, len(data), piece):
        yield data[start : start + piece]


async def _read(
    platform: Platform, object_id: str, start: int = 0, end: int | None = None
) -> bytes:
    return b"".join([part async for part in platform.storage.stream(object_id, start, end)])


def _sealed_file(tmp_path: Path, backend: str, object_id: str) -> Path:
    return tmp_path / backend / object_key(object_id)


async def _put(platform: Platform, data: bytes, organisation: str = ORG) -> str:
    new = NewObject(organisation, len(data), "application/pdf", "befund.pdf")
    stored = await platform.storage.put(new, _body(data))
    return stored.id


async def test_an_object_is_sealed_onto_both_backends_and_reads_back(
    platform: Platform, tmp_path: Path
) -> None:
    data = os.urandom(3 * CHUNK_BYTES + 12_345)
    object_id = await _put(platform, data)
    described = await platform.storage.describe(object_id)
    assert described is not None
    assert described.sha256 == hashlib.sha256(data).hexdigest()
    assert described.etag == f'"{described.sha256}"'
    for backend in ("one", "two"):
        sealed = _sealed_file(tmp_path, backend, object_id).read_bytes()
        assert len(sealed) == HEADER_BYTES + len(data) + 4 * TAG_BYTES
        assert data[:64] not in sealed
    assert await _read(platform, object_id) == data


@pytest.mark.parametrize(
    ("start", "end"),
    [(0, 1), (CHUNK_BYTES - 5, CHUNK_BYTES + 5), (2 * CHUNK_BYTES, 3 * CHUNK_BYTES), (0, 0)],
)
async def test_a_range_reads_only_its_bytes(platform: Platform, start: int, end: int) -> None:
    data = os.urandom(3 * CHUNK_BYTES + 7)
    object_id = await _put(platform, data)
    assert await platform.storage.read_range(object_id, start, end) == data[start:end]
    assert await _read(platform, object_id, start, end) == data[start:end]


async def test_a_damaged_replica_is_passed_over_and_marked(
    platform: Platform, tmp_path: Path
) -> None:
    data = os.urandom(2 * CHUNK_BYTES + 99)
    object_id = await _put(platform, data)
    damaged = _sealed_file(tmp_path, "one", object_id)
    sealed = bytearray(damaged.read_bytes())
    sealed[HEADER_BYTES + CHUNK_BYTES + TAG_BYTES + 10] ^= 0x01
    damaged.write_bytes(bytes(sealed))
    assert await _read(platform, object_id) == data
    async with platform.database.snapshot() as session:
        states = {
            row.backend: row.state
            for row in await session.scalars(
                select(ObjectReplicaRow).where(ObjectReplicaRow.object_id == object_id)
            )
        }
    assert states == {"one": "corrupt", "two": "present"}


async def test_a_missing_replica_is_passed_over(platform: Platform, tmp_path: Path) -> None:
    data = os.urandom(1000)
    object_id = await _put(platform, data)
    _sealed_file(tmp_path, "one", object_id).unlink()
    assert await platform.storage.read_range(object_id, 10, 20) == data[10:20]


async def test_deleting_destroys_the_key_the_bytes_and_the_usage(
    platform: Platform, tmp_path: Path
) -> None:
    object_id = await _put(platform, os.urandom(5000))
    assert await platform.storage.delete(object_id) is True
    assert await platform.storage.describe(object_id) is None
    assert not _sealed_file(tmp_path, "one", object_id).exists()
    async with platform.database.snapshot() as session:
        row = await session.get(StoredObjectRow, object_id)
        usage = await session.get(StorageUsageRow, ORG)
    assert row is not None
    assert row.wrapped_key is None
    assert row.kek_id is None
    assert usage is not None
    assert usage.used_bytes == 0
    with pytest.raises(ApiError) as refused:
        await platform.storage.read_range(object_id, 0, 1)
    assert refused.value.status == 404
    assert await platform.storage.delete(object_id) is False


async def test_the_quota_refuses_with_507_and_keeps_nothing(platform: Platform) -> None:
    quota = int(0.01 * 1024**3)
    await _put(platform, os.urandom(1000))
    with pytest.raises(ApiError) as refused:
        await platform.storage.reserve(ORG, quota)
    assert refused.value.status == 507
    assert "quota" in refused.value.detail
    await platform.storage.reserve("another-hospital", quota)


async def test_a_body_shorter_or_longer_than_announced_keeps_nothing(
    platform: Platform,
) -> None:
    for announced, data in ((10, b"12345"), (3, b"12345")):
        with pytest.raises(ApiError) as refused:
            await platform.storage.put(NewObject(ORG, announced), _body(data, 2))
        assert refused.value.status == 400
    async with platform.database.snapshot() as session:
        assert (await session.scalars(select(StoredObjectRow))).all() == []
        usage = await session.get(StorageUsageRow, ORG)
    assert usage is not None
    assert usage.used_bytes == 0


async def test_a_backend_that_fails_leaves_its_replica_pending(
    platform: Platform, tmp_path: Path
) -> None:
    folder = tmp_path / "two"
    folder.rename(tmp_path / "two-away")
    folder.write_text("not a folder: the backend cannot write")
    data = os.urandom(2000)
    object_id = await _put(platform, data)
    async with platform.database.snapshot() as session:
        states = dict(
            (row.backend, row.state)
            for row in await session.scalars(
                select(ObjectReplicaRow).where(ObjectReplicaRow.object_id == object_id)
            )
        )
    assert states == {"one": "present", "two": "pending"}
    assert await _read(platform, object_id) == data


async def test_a_replica_cut_short_is_passed_over_and_marked(
    platform: Platform, tmp_path: Path
) -> None:
    data = os.urandom(3 * CHUNK_BYTES)
    object_id = await _put(platform, data)
    cut = _sealed_file(tmp_path, "one", object_id)
    cut.write_bytes(cut.read_bytes()[: CHUNK_BYTES // 2])
    start = 2 * CHUNK_BYTES + 5
    assert (
        await platform.storage.read_range(object_id, start, start + 10) == data[start : start + 10]
    )
    async with platform.database.snapshot() as session:
        replica = await session.get(ObjectReplicaRow, (object_id, "one"))
    assert replica is not None
    assert replica.state == "corrupt"
