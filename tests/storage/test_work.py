"""The replicas' background work (`storage.work`) on real backends: a replica left behind
while its backend was down is caught up when it is back, a deleted object's bytes go from a
backend that was down at the time, a damaged source is never copied, and claims keep two
processes from doing the same work at once."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from medicus.platform import Platform
from medicus.storage.encryption import HEADER_BYTES
from medicus.storage.service import NewObject
from medicus.storage.work import COPIED, DELETED, FAILED, LEASE, SUPERSEDED, ReplicaWork
from tests.support.clock import MovableClock
from tests.support.storage_objects import (
    HOUR,
    ORG,
    MiB,
    file_of,
    flip_byte,
    local,
    put,
    read,
    replicas,
    sealed,
    states,
    storage_platform,
    with_backend_broken,
)
from tests.support.storage_servers import RunningBackend


@pytest.fixture
async def platform(
    tmp_path: Path, fresh_database_url: str, clock: MovableClock
) -> AsyncIterator[Platform]:
    """Two local backends, `one` and `two`; every object on both."""
    backends = [local(tmp_path, "one"), local(tmp_path, "two")]
    built = storage_platform(tmp_path, fresh_database_url, clock, backends)
    yield built
    await built.close()


async def test_a_backend_stopped_during_an_upload_is_caught_up_once_it_is_back(
    local_and_s3: Platform,
    two_backends: tuple[RunningBackend, RunningBackend],
    clock: MovableClock,
) -> None:
    platform, (_, s3) = local_and_s3, two_backends
    data = os.urandom(12 * MiB + 5)

    async def stopping_on_the_way() -> AsyncIterator[bytes]:
        for index, start in enumerate(range(0, len(data), MiB)):
            if index == 3:
                await asyncio.to_thread(s3.stop)
            yield data[start : start + MiB]

    stored = await platform.storage.put(NewObject(ORG, len(data)), stopping_on_the_way())
    assert await states(platform, stored.id) == {"local": "present", "s3": "pending"}
    assert await read(platform, stored.id) == data
    work = ReplicaWork(platform.storage, clock)

    [attempt] = await work.round()
    assert attempt.outcome == FAILED
    pending = (await replicas(platform, stored.id))["s3"]
    assert (pending.state, pending.attempts) == ("pending", 1)
    assert "'s3'" in (pending.last_error or "")
    assert await work.round() == []  # backing off

    await asyncio.to_thread(s3.start)
    clock.advance(HOUR)
    [done] = await work.round()
    assert done.outcome == COPIED
    assert await states(platform, stored.id) == {"local": "present", "s3": "present"}
    assert sealed(platform, "s3", stored.id) == sealed(platform, "local", stored.id)
    file_of(platform, "local", stored.id).unlink()
    assert await read(platform, stored.id) == data


async def test_a_deleted_objects_bytes_go_from_a_backend_that_was_down(
    local_and_s3: Platform, two_backends: tuple[RunningBackend, RunningBackend]
) -> None:
    platform, (_, s3) = local_and_s3, two_backends
    object_id = await put(platform, os.urandom(300_000))
    await asyncio.to_thread(s3.stop)
    assert await platform.storage.delete(object_id) is True
    assert sealed(platform, "local", object_id) is None
    assert await states(platform, object_id) == {"s3": "deleting"}

    await asyncio.to_thread(s3.start)
    [done] = await ReplicaWork(platform.storage).round()
    assert done.outcome == DELETED
    assert await states(platform, object_id) == {}
    assert sealed(platform, "s3", object_id) is None


async def test_a_damaged_source_is_not_copied_but_marked(
    platform: Platform, clock: MovableClock
) -> None:
    data = os.urandom(3 * MiB + 100)
    object_id = await put(platform, data)
    flip_byte(file_of(platform, "one", object_id), -5)  # in the last chunk
    file_of(platform, "two", object_id).unlink()
    await platform.storage.mark_damaged(object_id, "two", "ObjectMissing")
    clock.advance(HOUR)

    [done] = await ReplicaWork(platform.storage, clock).round()
    assert done.outcome == FAILED
    assert "unusable" in (done.error or "")
    assert await states(platform, object_id) == {"one": "corrupt", "two": "corrupt"}
    assert sealed(platform, "two", object_id) is None


async def test_a_copy_of_an_object_deleted_meanwhile_leaves_no_bytes(
    platform: Platform, clock: MovableClock
) -> None:
    [object_id] = await with_backend_broken(platform, "two", [os.urandom(5000)])
    work = ReplicaWork(platform.storage, clock)
    [job] = await work.replicator.claim_due(10)
    assert await platform.storage.delete(object_id) is True  # `two` has no bytes yet

    done = await work.replicator.run(job, threading.Event())
    assert done.outcome == SUPERSEDED
    assert sealed(platform, "two", object_id) is None
    assert await states(platform, object_id) == {}


async def test_a_claim_keeps_another_process_off_until_its_lease_runs_out(
    platform: Platform, tmp_path: Path, fresh_database_url: str, clock: MovableClock
) -> None:
    [object_id] = await with_backend_broken(platform, "two", [os.urandom(5000)])
    backends = platform.settings.storage_backends
    other = storage_platform(tmp_path, fresh_database_url, clock, backends)
    try:
        first = ReplicaWork(platform.storage, clock)
        second = ReplicaWork(other.storage, clock)
        [job] = await first.replicator.claim_due(10)
        assert await second.round() == []
        clock.advance(LEASE + dt.timedelta(seconds=1))  # as if the first process died
        [taken] = await second.round()
        assert taken.outcome == COPIED
        late = await first.replicator.run(job, threading.Event())
        assert late.outcome == SUPERSEDED
    finally:
        await other.close()
    assert await states(platform, object_id) == {"one": "present", "two": "present"}


async def test_two_processes_share_the_work_and_never_copy_a_replica_twice(
    platform: Platform, tmp_path: Path, fresh_database_url: str, clock: MovableClock
) -> None:
    """Two processes' loops on one database (the point of it on PostgreSQL, where they run
    truly at once: `SKIP LOCKED` and the claim keep them apart)."""
    ids = await with_backend_broken(platform, "two", [os.urandom(40_000) for _ in range(24)])
    backends = platform.settings.storage_backends
    other = storage_platform(tmp_path, fresh_database_url, clock, backends)

    async def drain(work: ReplicaWork) -> list[tuple[str, str]]:
        done = []
        while batch := await work.round():
            done += [(d.job.object_id, d.outcome) for d in batch]
            await asyncio.sleep(0)
        return done

    try:
        first, second = await asyncio.gather(
            drain(ReplicaWork(platform.storage, clock, batch=3, parallel=2)),
            drain(ReplicaWork(other.storage, clock, batch=3, parallel=2)),
        )
    finally:
        await other.close()
    assert first  # both took part
    assert second
    assert {outcome for _, outcome in first + second} == {COPIED}
    assert not {i for i, _ in first} & {i for i, _ in second}
    assert sorted(i for i, _ in first + second) == sorted(ids)
    for object_id in ids:
        assert sealed(platform, "two", object_id) == sealed(platform, "one", object_id)


async def test_a_server_process_runs_the_work_in_the_background(platform: Platform) -> None:
    [object_id] = await with_backend_broken(platform, "two", [os.urandom(5000)])
    await platform.start_background_work()
    try:
        for _ in range(100):
            if (await states(platform, object_id))["two"] == "present":
                break
            await asyncio.sleep(0.1)
    finally:
        await platform.stop_background_work()
    assert await states(platform, object_id) == {"one": "present", "two": "present"}
    assert sealed(platform, "two", object_id) == sealed(platform, "one", object_id)


async def test_a_source_with_another_header_is_not_copied(
    platform: Platform, clock: MovableClock
) -> None:
    """The chunks are opened with the header the database keeps, so a changed header on a
    backend is caught by comparing it."""
    object_id = await put(platform, os.urandom(2 * MiB))
    flip_byte(file_of(platform, "one", object_id), HEADER_BYTES - 3)
    file_of(platform, "two", object_id).unlink()
    await platform.storage.mark_damaged(object_id, "two", "ObjectMissing")
    clock.advance(HOUR)

    [done] = await ReplicaWork(platform.storage, clock).round()
    assert done.outcome == FAILED
    assert "header" in (done.error or "")
    assert sealed(platform, "two", object_id) is None
