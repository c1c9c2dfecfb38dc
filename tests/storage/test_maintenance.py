"""The operator's use-cases (`storage.maintenance`) on real backends: status, verify and
repair of damaged and missing replicas, replicas added for a new backend, a migration off a
backend while uploads and reads go on (and one interrupted and run again), key rotation."""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from sqlalchemy import select

from medicus.core.db import utc_now
from medicus.core.errors import ApiError
from medicus.platform import Platform
from medicus.storage import upload_repository
from medicus.storage.keyring import WrappedKey
from medicus.storage.maintenance import StorageMaintenance
from medicus.storage.models import StorageUploadRow, StoredObjectRow
from medicus.storage.reports import DAMAGED as DAMAGED_PROBLEM
from medicus.storage.reports import (
    MARKED_CORRUPT,
    MISSING,
    TOO_FEW,
    UNREACHABLE,
    WRONG_SIZE,
    MaintenanceError,
)
from medicus.storage.service import NewObject
from tests.conftest import register_organisation
from tests.support.clock import MovableClock
from tests.support.database import rows
from tests.support.storage_objects import (
    ORG,
    MiB,
    body,
    file_of,
    flip_byte,
    folder,
    local,
    put,
    read,
    sealed,
    states,
    storage_platform,
    with_backend_broken,
)
from tests.support.storage_servers import RunningBackend

OTHER = "praxis-b"


def problems(report: object) -> set[tuple[str, str, str]]:
    return {(p.object_id, p.backend, p.problem) for p in report.problems}  # type: ignore[attr-defined]


def files(place: Path) -> list[Path]:
    return [path for path in place.rglob("*") if path.is_file()]


@pytest.fixture
async def platform(
    tmp_path: Path, fresh_database_url: str, clock: MovableClock
) -> AsyncIterator[Platform]:
    backends = [local(tmp_path, "one"), local(tmp_path, "two")]
    built = storage_platform(tmp_path, fresh_database_url, clock, backends)
    yield built
    await built.close()


@pytest.fixture
async def single(
    tmp_path: Path, fresh_database_url: str, clock: MovableClock
) -> AsyncIterator[Platform]:
    """Two local backends, `one` and `two`, and one replica each: every object on `one`."""
    backends = [local(tmp_path, "one"), local(tmp_path, "two")]
    built = storage_platform(tmp_path, fresh_database_url, clock, backends, replicas=1)
    yield built
    await built.close()


async def test_status_counts_each_backends_objects_and_work_and_the_usage(
    platform: Platform,
) -> None:
    maintenance = StorageMaintenance(platform.storage, platform.audit)
    sizes = [1000, 2 * MiB]
    for size in sizes:
        await put(platform, os.urandom(size))
    await with_backend_broken(platform, "two", [os.urandom(500)])
    await put(platform, os.urandom(10), OTHER)
    await register_organisation(platform, ORG)
    await maintenance.set_quota(ORG, 5 * 1024**3)

    status = await maintenance.status()
    assert (status.objects, status.replicas) == (4, 2)
    one, two = status.backends
    assert (one.name, one.objects, one.bytes, one.pending) == ("one", 4, sum(sizes) + 510, 0)
    assert (two.name, two.objects, two.pending, two.corrupt) == ("two", 3, 1, 0)
    assert one.reachable
    assert two.reachable
    assert one.configured
    assert not one.draining
    usage = {row.organisation_id: row for row in status.organisations}
    assert usage[ORG].used_bytes == sum(sizes) + 500
    assert (usage[ORG].quota_bytes, usage[ORG].default_quota) == (5 * 1024**3, False)
    assert usage[OTHER].quota_bytes == platform.storage.default_quota
    assert usage[OTHER].default_quota


async def test_verify_finds_missing_cut_and_damaged_replicas_and_repair_copies_them(
    platform: Platform,
) -> None:
    missing, cut, damaged = [await put(platform, os.urandom(3 * MiB + 7)) for _ in range(3)]
    file_of(platform, "two", missing).unlink()
    path = file_of(platform, "one", cut)
    path.write_bytes(path.read_bytes()[:-100])
    flip_byte(file_of(platform, "one", damaged), 2 * MiB)
    maintenance = StorageMaintenance(platform.storage, platform.audit)
    seen: list[tuple[int, int]] = []

    shallow = await maintenance.verify(progress=lambda done, total: seen.append((done, total)))
    assert problems(shallow) == {(missing, "two", MISSING), (cut, "one", WRONG_SIZE)}
    assert (shallow.objects, shallow.replicas_checked, shallow.ok) == (3, 6, 4)
    assert seen[-1] == (3, 3)
    deep = await maintenance.verify(deep=True)
    assert problems(deep) == {
        (missing, "two", MARKED_CORRUPT),
        (cut, "one", MARKED_CORRUPT),
        (damaged, "one", DAMAGED_PROBLEM),
    }
    assert deep.counts() == {MARKED_CORRUPT: 2, DAMAGED_PROBLEM: 1}

    repaired = await maintenance.repair()
    assert (repaired.copied, repaired.failed) == (3, [])
    for object_id in (missing, cut, damaged):
        assert sealed(platform, "one", object_id) == sealed(platform, "two", object_id)
        assert await states(platform, object_id) == {"one": "present", "two": "present"}
    again = await maintenance.verify(deep=True)
    assert (again.problems, again.ok) == ([], 6)


async def test_a_replica_corrupted_on_disk_is_read_around_reported_and_repaired(
    local_and_s3: Platform,
) -> None:
    platform = local_and_s3
    data = os.urandom(4 * MiB + 3)
    object_id = await put(platform, data)
    good = sealed(platform, "s3", object_id)
    flip_byte(file_of(platform, "local", object_id), MiB + 1000)
    maintenance = StorageMaintenance(platform.storage, platform.audit)

    report = await maintenance.verify(deep=True)
    assert problems(report) == {(object_id, "local", DAMAGED_PROBLEM)}
    assert await read(platform, object_id) == data
    repaired = await maintenance.repair()
    assert repaired.copied == 1
    assert file_of(platform, "local", object_id).read_bytes() == good
    assert (await maintenance.verify(deep=True)).problems == []


async def test_status_and_verify_say_when_a_backend_does_not_answer(
    local_and_s3: Platform, two_backends: tuple[RunningBackend, RunningBackend]
) -> None:
    platform, (_, s3) = local_and_s3, two_backends
    object_id = await put(platform, os.urandom(1000))
    await asyncio.to_thread(s3.stop)
    maintenance = StorageMaintenance(platform.storage, platform.audit)

    status = await maintenance.status()
    assert [(b.name, b.reachable) for b in status.backends] == [("local", True), ("s3", False)]
    report = await maintenance.verify()
    assert problems(report) == {(object_id, "s3", UNREACHABLE)}
    assert await states(platform, object_id) == {"local": "present", "s3": "present"}


async def test_repair_adds_replicas_on_a_backend_added_later(
    tmp_path: Path, fresh_database_url: str, clock: MovableClock
) -> None:
    before = storage_platform(
        tmp_path, fresh_database_url, clock, [local(tmp_path, "one")], replicas=1
    )
    try:
        ids = [await put(before, os.urandom(70_000)) for _ in range(3)]
    finally:
        await before.close()
    backends = [local(tmp_path, "one"), local(tmp_path, "two")]
    after = storage_platform(tmp_path, fresh_database_url, clock, backends, replicas=2)
    try:
        maintenance = StorageMaintenance(after.storage, after.audit)
        report = await maintenance.verify()
        assert problems(report) == {(object_id, "-", TOO_FEW) for object_id in ids}
        repaired = await maintenance.repair()
        assert (repaired.added, repaired.copied, repaired.failed) == (3, 3, [])
        assert (await maintenance.verify(deep=True)).problems == []
        for object_id in ids:
            assert sealed(after, "two", object_id) == sealed(after, "one", object_id)
    finally:
        await after.close()


@pytest.fixture
async def local_to_s3(
    tmp_path: Path,
    fresh_database_url: str,
    clock: MovableClock,
    two_backends: tuple[RunningBackend, RunningBackend],
) -> AsyncIterator[Platform]:
    """A local backend and an S3 one, one replica each: every object on `local` first."""
    backends = [running.config for running in two_backends]
    built = storage_platform(tmp_path, fresh_database_url, clock, backends, replicas=1)
    yield built
    await built.close()


async def test_migrate_while_uploads_and_reads_go_on_loses_nothing(
    local_to_s3: Platform, two_backends: tuple[RunningBackend, RunningBackend]
) -> None:
    platform, (source, _) = local_to_s3, two_backends
    kept: dict[str, str] = {}
    for _ in range(12):
        data = os.urandom(random.randint(1, 2 * MiB))
        kept[await put(platform, data)] = hashlib.sha256(data).hexdigest()
    stop = asyncio.Event()
    during: list[str] = []

    async def uploading() -> None:
        while not stop.is_set():
            data = os.urandom(random.randint(1, 600_000))
            object_id = await put(platform, data)
            kept[object_id] = hashlib.sha256(data).hexdigest()
            during.append(object_id)

    async def reading() -> int:
        reads = 0
        while not stop.is_set():
            object_id = random.choice(list(kept))
            assert hashlib.sha256(await read(platform, object_id)).hexdigest() == kept[object_id]
            reads += 1
        return reads

    workers = (asyncio.create_task(uploading()), asyncio.create_task(reading()))
    await asyncio.sleep(0.2)
    report = await StorageMaintenance(platform.storage, platform.audit).migrate("local", "s3")
    stop.set()
    await workers[0]
    reads = await workers[1]

    assert (report.failed, report.remaining) == ([], 0)
    assert report.moved >= 12
    assert reads > 0
    assert during
    for object_id, digest in kept.items():
        assert hashlib.sha256(await read(platform, object_id)).hexdigest() == digest
        assert set(await states(platform, object_id)) == {"s3"}
    assert files(folder(source.config)) == []
    status = await StorageMaintenance(platform.storage, platform.audit).status()
    assert [(b.name, b.draining, b.objects) for b in status.backends] == [
        ("local", True, 0),
        ("s3", False, len(kept)),
    ]
    again = await StorageMaintenance(platform.storage, platform.audit).migrate("local", "s3")
    assert (again.moved, again.already_there, again.remaining) == (0, 0, 0)


async def test_an_interrupted_migration_goes_on_where_it_stopped(single: Platform) -> None:
    platform = single
    ids = [await put(platform, os.urandom(1000)) for _ in range(230)]
    maintenance = StorageMaintenance(platform.storage, platform.audit)

    def interrupt(done: int, total: int) -> None:
        migrating.cancel()  # as Ctrl-C does, after the first page

    migrating = asyncio.create_task(maintenance.migrate("one", "two", interrupt))
    with pytest.raises(asyncio.CancelledError):
        await migrating
    placed = [await states(platform, object_id) for object_id in ids]
    assert 0 < sum(state == {"two": "present"} for state in placed) < len(ids)

    report = await StorageMaintenance(platform.storage, platform.audit).migrate("one", "two")
    assert (report.failed, report.remaining) == ([], 0)
    assert report.moved + report.already_there < len(ids)
    for object_id in ids:
        assert await states(platform, object_id) == {"two": "present"}
    assert files(file_of(platform, "one", ids[0]).parents[2]) == []


async def test_migrate_refuses_unknown_backends_and_a_move_onto_itself(
    platform: Platform,
) -> None:
    maintenance = StorageMaintenance(platform.storage, platform.audit)
    with pytest.raises(MaintenanceError, match="no storage backend 'elsewhere'"):
        await maintenance.migrate("one", "elsewhere")
    with pytest.raises(MaintenanceError, match="the same backend"):
        await maintenance.migrate("one", "one")
    assert [b.draining for b in (await maintenance.status()).backends] == [False, False]


async def _upload_row(platform: Platform, organisation: str) -> tuple[str, bytes]:
    """An upload under way of the organisation (as the tus service makes one); its id and
    data key."""
    seal = await platform.storage.new_seal(organisation)
    now = utc_now()
    row = StorageUploadRow(
        id=str(os.urandom(8).hex()),
        organisation_id=organisation,
        length=10,
        received=0,
        content_type="text/plain",
        header=seal.header.encode(),
        kek_id=seal.wrapped.kek_id,
        wrapped_key=seal.wrapped.blob,
        created_at=now,
        expires_at=now,
    )
    async with platform.database.transaction() as session:
        await upload_repository.add(session, row)
    return row.id, seal.data_key


async def test_rotate_key_rewraps_every_data_key_and_leaves_the_bytes_alone(
    platform: Platform,
) -> None:
    data = [os.urandom(300_000) for _ in range(3)]
    ids = [await put(platform, item) for item in data]
    gone = await put(platform, os.urandom(10))
    other = await put(platform, os.urandom(10), OTHER)
    await platform.storage.delete(gone)
    upload_id, upload_key = await _upload_row(platform, ORG)
    on_disk = {
        object_id: hashlib.sha256(file_of(platform, "one", object_id).read_bytes()).digest()
        for object_id in ids
    }
    old_kek = platform.storage.keyring.current(ORG)
    other_kek = platform.storage.keyring.current(OTHER)

    report = await StorageMaintenance(platform.storage, platform.audit).rotate_key(ORG)
    assert (report.objects, report.uploads, report.failed) == (3, 1, 0)
    assert report.kek_id != old_kek
    async with platform.database.snapshot() as session:
        rows = {row.id: row for row in await session.scalars(select(StoredObjectRow))}
        upload = await session.get(StorageUploadRow, upload_id)
    assert {rows[object_id].kek_id for object_id in ids} == {report.kek_id}
    assert (rows[gone].kek_id, rows[gone].wrapped_key) == (None, None)
    assert rows[other].kek_id == other_kek
    assert upload is not None
    assert upload.kek_id == report.kek_id
    keyring = platform.storage.keyring
    assert keyring.unwrap(ORG, WrappedKey(upload.kek_id, upload.wrapped_key)) == upload_key
    for object_id, item in zip(ids, data, strict=True):
        assert await read(platform, object_id) == item
        digest = hashlib.sha256(file_of(platform, "one", object_id).read_bytes()).digest()
        assert digest == on_disk[object_id]
    again = await StorageMaintenance(platform.storage, platform.audit).rotate_key(ORG)
    assert (again.objects, again.uploads) == (3, 1)


async def test_a_quota_set_and_reset(platform: Platform) -> None:
    maintenance = StorageMaintenance(platform.storage, platform.audit)
    with pytest.raises(MaintenanceError) as unknown:
        await maintenance.set_quota(ORG, 1000)
    assert str(unknown.value) == f"there is no organisation '{ORG}'"
    await register_organisation(platform, ORG)
    await maintenance.set_quota(ORG, 1000)
    with pytest.raises(ApiError) as refused:
        await platform.storage.put(NewObject(ORG, 2000), body(os.urandom(2000)))
    assert refused.value.status == 507
    await maintenance.set_quota(ORG, None)
    await put(platform, os.urandom(2000))
    with pytest.raises(MaintenanceError):
        await maintenance.set_quota(ORG, -1)


async def test_the_operators_commands_land_in_the_audit_trail(platform: Platform) -> None:
    maintenance = StorageMaintenance(platform.storage, platform.audit)
    await register_organisation(platform, ORG)
    await put(platform, os.urandom(1000))
    await maintenance.verify(deep=True)
    await maintenance.repair()
    await maintenance.rotate_key(ORG)
    await maintenance.set_quota(ORG, 1000)
    await platform.audit.seal_all()
    found = await rows(
        platform,
        "SELECT action, actor, target, detail FROM audit_entry WHERE action LIKE 'storage.%'",
    )
    actions = {
        action: (actor, target, orjson.loads(detail)) for action, actor, target, detail in found
    }
    assert set(actions) == {
        "storage.verify",
        "storage.repair",
        "storage.rotate-key",
        "storage.quota",
    }
    assert {actor for actor, _target, _detail in actions.values()} == {"system:cli"}
    assert actions["storage.verify"][2] == {"deep": True, "objects": 1, "problems": 0}
    assert actions["storage.rotate-key"][1] == f"Organization/{ORG}"
    assert actions["storage.quota"][2] == {"quota_bytes": 1000}
