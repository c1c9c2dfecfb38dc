"""Objects for the storage tests: platforms on given backends, objects put and read back,
replicas looked at and damaged on disk."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy import select

from medicus.platform import Platform, build_platform
from medicus.storage.config import BackendConfig
from medicus.storage.models import ObjectReplicaRow
from medicus.storage.service import NewObject, object_key
from tests.conftest import make_settings
from tests.support.clock import MovableClock

ORG = "klinikum-a"
MiB = 1024 * 1024
HOUR = dt.timedelta(hours=1)


def local(tmp_path: Path, name: str) -> BackendConfig:
    return BackendConfig(name=name, url=(tmp_path / name).resolve().as_uri())


def storage_platform(
    tmp_path: Path,
    database_url: str,
    clock: MovableClock,
    backends: list[BackendConfig],
    replicas: int = 2,
) -> Platform:
    settings = make_settings(
        tmp_path, database_url, storage_backends=backends, storage_replicas=replicas
    )
    return build_platform(settings, clock)


async def body(data: bytes, piece: int = 256 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), piece):
        yield data[start : start + piece]


async def put(platform: Platform, data: bytes, organisation: str = ORG) -> str:
    stored = await platform.storage.put(NewObject(organisation, len(data)), body(data))
    return stored.id


async def read(platform: Platform, object_id: str) -> bytes:
    return b"".join([part async for part in platform.storage.stream(object_id)])


async def replicas(platform: Platform, object_id: str) -> dict[str, ObjectReplicaRow]:
    async with platform.database.snapshot() as session:
        statement = select(ObjectReplicaRow).where(ObjectReplicaRow.object_id == object_id)
        return {row.backend: row for row in await session.scalars(statement)}


async def states(platform: Platform, object_id: str) -> dict[str, str]:
    return {name: row.state for name, row in (await replicas(platform, object_id)).items()}


def sealed(platform: Platform, backend: str, object_id: str) -> bytes | None:
    """The sealed bytes a backend holds of the object, None if it holds none."""
    store = platform.storage.backends[backend]
    if store.size(object_key(object_id)) is None:
        return None
    return b"".join(store.read(object_key(object_id)))


def folder(config: BackendConfig) -> Path:
    return Path(urlsplit(config.url).path)


def file_of(platform: Platform, backend: str, object_id: str) -> Path:
    """The file of a replica on a local backend."""
    for config in platform.settings.effective_storage_backends():
        if config.name == backend:
            return folder(config) / object_key(object_id)
    raise AssertionError(f"no local backend {backend}")


def flip_byte(path: Path, position: int) -> None:
    damaged = bytearray(path.read_bytes())
    damaged[position] ^= 0x01
    path.write_bytes(bytes(damaged))


async def with_backend_broken(platform: Platform, backend: str, data: list[bytes]) -> list[str]:
    """Put objects while a local backend cannot be written to (its folder is a file for the
    time being): their replicas there are left pending."""
    place = folder(next(c for c in platform.settings.storage_backends if c.name == backend))
    away = place.with_name(place.name + "-away")
    place.mkdir(parents=True, exist_ok=True)
    place.rename(away)
    place.write_text("not a folder: the backend cannot write")
    try:
        return [await put(platform, item) for item in data]
    finally:
        place.unlink()
        away.rename(place)
