"""The replicas' work, kept in the database (`object_replica`) so that any medicus process can
do it: copy a replica that is `pending` (its backend failed during the upload, or a repair or
migration asked for it) or `corrupt` from a good replica on another backend, and remove the
bytes of a `deleting` one.

`ReplicaWork` is the loop every server process runs; `Replicator` does one piece of work and
is what the operator's commands (`maintenance`) use too. A piece of work is claimed first
(`work_repository.claim`: its next attempt moves past the time the work may take), so two
processes do not copy the same replica at once; finishing it is conditional on the claim
still standing, so that what happened meanwhile (the object deleted, a read finding the new
copy damaged, another process taking over an expired claim) is never overwritten.

A copy streams the sealed bytes as they are, a few MiB at a time, from one backend to the
other: no key is needed to move them. The copy is checked before the target's write is
finished, so that a damaged source never becomes a `present` replica: its length must be
the sealed size of the object, its header the object's, and its first and last chunks must
open (cheap: two chunks; `medicus storage verify --deep` opens all of them).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from medicus.core.clock import Clock
from medicus.core.db import utc_now
from medicus.core.errors import ApiError
from medicus.core.logging import get_logger
from medicus.core.loops import ServerLoop
from medicus.storage import repository, work_repository
from medicus.storage.backends import Backend, BackendError, ObjectMissing
from medicus.storage.encryption import (
    HEADER_BYTES,
    Header,
    SealBroken,
    SealedRange,
    locate,
    open_range,
    sealed_size,
)
from medicus.storage.keyring import UnwrapFailed
from medicus.storage.models import ObjectReplicaRow, StoredObjectRow
from medicus.storage.repository import DELETING, PRESENT
from medicus.storage.service import ObjectStore, object_key

log = get_logger("medicus.storage.work")

PIECE_BYTES = 4 * 1024 * 1024
"""Bytes read from the source and written to the target at a time (memory per copy)."""
LEASE = dt.timedelta(minutes=5)
LEASE_BYTES_PER_SECOND = 10 * 1024 * 1024
"""A claim lasts `LEASE` plus the object's size at this rate: longer than any copy takes."""
DOWN = dt.timedelta(seconds=30)
"""How long a backend that failed is passed over before it is asked again."""
BATCH = 16
PARALLEL = 4

COPIED = "copied"
DELETED = "deleted"
KEPT = "kept"
"""A `deleting` replica of a live object kept instead, because it was its last good copy."""
FAILED = "failed"
SUPERSEDED = "superseded"
"""The claim no longer stood when the work was done: something else changed the replica."""

T = TypeVar("T")


@dataclass(frozen=True)
class Job:
    """A replica claimed for one attempt: the claim stands while its next attempt is `until`."""

    object_id: str
    backend: str
    state: str
    until: dt.datetime


@dataclass(frozen=True)
class Done:
    job: Job
    outcome: str
    error: str | None = None


Outcome = tuple[Done, str | None]
"""A job's outcome and the state its replica is to be in (None: its row dropped)."""


def _failed(job: Job, error: str) -> Outcome:
    return Done(job, FAILED, error), job.state


class SourceUnusable(Exception):
    """The replica copied from is missing or damaged."""


class SourceFailed(Exception):
    """The backend copied from failed (down, refusing)."""


class Interrupted(Exception):
    """The process is stopping: the copy was given up, the target's write aborted."""


class _Window:
    """The bytes of a stream that fall in [offset, offset + length), collected as it passes."""

    def __init__(self, offset: int, length: int) -> None:
        self.offset = offset
        self.end = offset + length
        self.data = bytearray()

    def feed(self, position: int, piece: bytes) -> None:
        start, end = max(self.offset, position), min(self.end, position + len(piece))
        if start < end:
            self.data += piece[start - position : end - position]


class SealedCheck:
    """What a copy checks of the sealed bytes passing through it, before the copy is kept."""

    def __init__(self, row: StoredObjectRow, data_key: bytes) -> None:
        self.header = Header.decode(row.header)
        self.expected = sealed_size(row.size, self.header.chunk_bytes)
        self._raw_header = row.header
        self._data_key = data_key
        self._parts: list[SealedRange] = [
            locate(self.header, row.size, 0, min(row.size, 1)),
            locate(self.header, row.size, max(0, row.size - 1), row.size),
        ]
        self._windows = [_Window(0, HEADER_BYTES)]
        self._windows += [_Window(part.offset, part.length) for part in self._parts]
        self.position = 0

    def feed(self, piece: bytes) -> None:
        for window in self._windows:
            window.feed(self.position, piece)
        self.position += len(piece)

    def verify(self) -> None:
        """SourceUnusable unless the bytes seen are a sealed copy of the object."""
        if self.position != self.expected:
            raise SourceUnusable(f"it has {self.position} bytes instead of {self.expected}")
        if bytes(self._windows[0].data) != self._raw_header:
            raise SourceUnusable("its header is not the object's")
        try:
            for part, window in zip(self._parts, self._windows[1:], strict=True):
                open_range(self._data_key, part, bytes(window.data))
        except SealBroken as error:
            raise SourceUnusable(str(error)) from None


def _source_pieces(source: Backend, key: str) -> Iterator[bytes]:
    try:
        yield from source.read(key, PIECE_BYTES)
    except ObjectMissing:
        raise SourceUnusable("it is missing") from None
    except BackendError as error:
        raise SourceFailed(str(error)) from None


def copy_replica(
    source: Backend, target: Backend, key: str, check: SealedCheck, halt: threading.Event
) -> None:
    """Copy the sealed object `key` from `source` to `target`, checking it on the way
    (blocking). SourceUnusable or SourceFailed for the source's faults, BackendError for the
    target's, Interrupted when `halt` is set; the target keeps nothing then."""
    try:
        size = source.size(key)
    except BackendError as error:
        raise SourceFailed(str(error)) from None
    if size is None:
        raise SourceUnusable("it is missing")
    if size != check.expected:
        raise SourceUnusable(f"it has {size} bytes instead of {check.expected}")
    writer = target.writer(key)
    try:
        for piece in _source_pieces(source, key):
            if halt.is_set():
                raise Interrupted
            check.feed(piece)
            writer.write(piece)
        check.verify()
        writer.close()
    except BaseException:
        writer.abort()
        raise
    written = target.size(key)
    if written != check.expected:
        raise BackendError(f"storage backend '{target.name}' kept {written} bytes of a copy")


async def threaded(halt: threading.Event, function: Callable[..., T], *arguments: Any) -> T:
    """`function(*arguments)` in a worker thread; if the caller is cancelled meanwhile (Ctrl-C
    of a command), `halt` tells the copy under way to give up instead of running on."""
    try:
        return await asyncio.to_thread(function, *arguments)
    except asyncio.CancelledError:
        halt.set()
        raise


class Replicator:
    """Claims replicas' work and does it, a batch at a time (`run_all`)."""

    def __init__(self, store: ObjectStore, clock: Clock = utc_now) -> None:
        self.store = store
        self.database = store.database
        self.backends = store.backends
        self.clock = clock
        self._down: dict[str, dt.datetime] = {}

    @property
    def postgres(self) -> bool:
        return self.database.dialect_name == "postgresql"

    def lease(self, size: int) -> dt.timedelta:
        return LEASE + dt.timedelta(seconds=size / LEASE_BYTES_PER_SECOND)

    # --- claiming -------------------------------------------------------------------------

    async def claim_due(self, limit: int) -> list[Job]:
        """Claim up to `limit` replicas whose work is due (not backing off, not claimed)."""
        now = self.clock()
        async with self.database.transaction() as session:
            rows = await repository.due_work(session, now, limit, self.postgres)
            return await self.claim_rows(session, rows, now)

    async def claim_rows(
        self, session: AsyncSession, rows: Sequence[ObjectReplicaRow], now: dt.datetime
    ) -> list[Job]:
        """Claim `rows` in `session`, due or not (the operator's commands do not wait for a
        backoff); those that changed since they were read are passed over. The claims last
        until all of their copies could be done."""
        stored = await work_repository.live_objects(session, list({r.object_id for r in rows}))
        until = now + self.lease(sum(row.size for row in stored.values()))
        jobs = []
        for row in rows:
            if await work_repository.claim(
                session, row.object_id, row.backend, row.next_attempt_at, until
            ):
                jobs.append(Job(row.object_id, row.backend, row.state, until))
        return jobs

    # --- doing ----------------------------------------------------------------------------

    async def run(self, job: Job, halt: threading.Event) -> Done:
        """Do one claimed job; its outcome (a failure is recorded, with a backoff)."""
        [done] = await self.run_all([job], halt)
        return done

    async def run_all(
        self, jobs: Sequence[Job], halt: threading.Event, parallel: int = PARALLEL
    ) -> list[Done]:
        """Do the claimed `jobs`, `parallel` at a time, and record their outcomes together
        (a failure with a backoff)."""
        if not jobs:
            return []
        ids = list({job.object_id for job in jobs})
        async with self.database.snapshot() as session:
            stored = await work_repository.live_objects(session, ids)
            replicas = await work_repository.replicas_of_many(session, ids)
        slots = asyncio.Semaphore(parallel)

        async def one(job: Job) -> Outcome:
            async with slots:
                row = stored.get(job.object_id)
                return await self._attempt(job, row, replicas[job.object_id], halt)

        return await self._finish(await asyncio.gather(*(one(job) for job in jobs)))

    async def _attempt(
        self,
        job: Job,
        row: StoredObjectRow | None,
        replicas: Sequence[ObjectReplicaRow],
        halt: threading.Event,
    ) -> Outcome:
        try:
            if row is None or job.state == DELETING:
                return await self._delete(job, row, replicas)
            return await self._copy(job, row, replicas, halt)
        except (DBAPIError, OSError):
            raise
        except Exception as error:  # a fault of this code must not stop the other work
            log.exception("storage replica work failed", object_id=job.object_id)
            return _failed(job, type(error).__name__)

    async def _delete(
        self, job: Job, row: StoredObjectRow | None, replicas: Sequence[ObjectReplicaRow]
    ) -> Outcome:
        if row is not None and not any(
            replica.state == PRESENT and replica.backend != job.backend for replica in replicas
        ):
            return Done(job, KEPT), PRESENT
        backend = self._usable(job.backend)
        if isinstance(backend, str):
            return _failed(job, backend)
        try:
            await asyncio.to_thread(backend.delete, object_key(job.object_id))
        except BackendError as error:
            self._went_down(backend.name)
            return _failed(job, str(error))
        return Done(job, DELETED), None

    async def _copy(
        self,
        job: Job,
        row: StoredObjectRow,
        replicas: Sequence[ObjectReplicaRow],
        halt: threading.Event,
    ) -> Outcome:
        target = self._usable(job.backend)
        if isinstance(target, str):
            return _failed(job, target)
        sources = [
            self.backends[replica.backend]
            for replica in replicas
            if replica.state == PRESENT
            and replica.backend != job.backend
            and isinstance(self._usable(replica.backend), Backend)
        ]
        if not sources:
            return _failed(job, "no good replica to copy from")
        try:
            data_key = await asyncio.to_thread(self.store.data_key, row)
        except (UnwrapFailed, ApiError):
            return _failed(job, "its data key does not unwrap")
        error = ""
        for source in sources:
            check = SealedCheck(row, data_key)
            key = object_key(row.id)
            try:
                await threaded(halt, copy_replica, source, target, key, check, halt)
            except SourceUnusable as problem:
                error = f"the replica on '{source.name}' is unusable: {problem}"
                await self.mark_corrupt(row.id, source.name, str(problem))
                continue
            except SourceFailed as problem:
                error = str(problem)
                self._went_down(source.name)
                continue
            except Interrupted:
                return _failed(job, "interrupted")
            except BackendError as problem:
                self._went_down(target.name)
                return _failed(job, str(problem))
            return Done(job, COPIED), PRESENT
        return _failed(job, error)

    def _usable(self, name: str) -> Backend | str:
        """The backend, or why it cannot be asked now."""
        backend = self.backends.get(name)
        if backend is None:
            return f"storage backend '{name}' is not configured in this process"
        if self._down.get(name, dt.datetime.min.replace(tzinfo=dt.UTC)) > self.clock():
            return f"storage backend '{name}' failed a moment ago"
        return backend

    def _went_down(self, name: str) -> None:
        self._down[name] = self.clock() + DOWN

    async def _finish(self, outcomes: Sequence[Outcome]) -> list[Done]:
        """Record each job's outcome if its claim still stands: its replica in the state
        given (None: its row dropped), with the error (a backoff) if it failed."""
        now = self.clock()
        finished = []
        async with self.database.transaction() as session:
            copied = [done.job.object_id for done, state in outcomes if state == PRESENT]
            live = await work_repository.live_objects(session, copied)
            for done, state in outcomes:
                recorded = await self._record(session, done, state, now, done.job.object_id in live)
                finished.append(done if recorded else Done(done.job, SUPERSEDED))
        for done in finished:
            if done.outcome == FAILED:
                log.warning(
                    "storage replica work failed; retried later",
                    object_id=done.job.object_id,
                    backend=done.job.backend,
                    error=done.error,
                )
        return finished

    async def _record(
        self, session: AsyncSession, done: Done, state: str | None, now: dt.datetime, live: bool
    ) -> bool:
        job = done.job
        if state is None:
            return await work_repository.drop_claimed(
                session, job.object_id, job.backend, job.until
            )
        if state == PRESENT and done.error is None and live:
            return await work_repository.settle_present(
                session, job.object_id, job.backend, job.until, now
            )
        if not await work_repository.claim(session, job.object_id, job.backend, job.until, now):
            return False
        if state == PRESENT:
            state = DELETING  # the object was deleted during the copy: the new bytes go too
        await repository.set_replica(session, job.object_id, job.backend, state, now, done.error)
        return True

    async def mark_corrupt(self, object_id: str, backend: str, reason: str) -> bool:
        """Mark a replica found damaged or missing for repair, if it is still `present` (not
        meanwhile deleted, moved or repaired); whether it did."""
        async with self.database.transaction() as session:
            for replica in await repository.replicas_of(session, object_id):
                if replica.backend == backend and replica.state == PRESENT:
                    await repository.set_replica(
                        session, object_id, backend, repository.CORRUPT, self.clock(), reason
                    )
                    return True
        return False


Sweep = Callable[[dt.datetime], Awaitable[int]]
"""Housekeeping the loop does each round, given the time (`UploadService.expire_due`)."""


class ReplicaWork(ServerLoop):
    """The loop of every server process that does the replicas' work when it is due: a batch
    at a time, a few replicas at once, resting when there is nothing to do."""

    name = "storage-replica-work"

    def __init__(
        self,
        store: ObjectStore,
        clock: Clock = utc_now,
        *,
        interval_seconds: float = 5.0,
        batch: int = BATCH,
        parallel: int = PARALLEL,
        sweeps: Sequence[Sweep] = (),
    ) -> None:
        super().__init__()
        self.replicator = Replicator(store, clock)
        self._clock = clock
        self._sweeps = sweeps
        self._interval = interval_seconds
        self._batch = batch
        self._parallel = parallel
        self._halt = threading.Event()

    def start(self) -> None:
        self._halt.clear()
        super().start()

    async def stop(self) -> None:
        """Stop, giving up copies under way (they are claimed; another round redoes them)."""
        self._halt.set()
        await super().stop()

    async def round(self) -> list[Done]:
        """Claim the work that is due (a batch) and do it; then the sweeps (expired uploads)."""
        jobs = await self.replicator.claim_due(self._batch)
        done = await self.replicator.run_all(jobs, self._halt, self._parallel)
        for sweep in self._sweeps:
            await sweep(self._clock())
        return done

    async def _run(self) -> None:
        while not self.stopping:
            try:
                done = await self.round()
            except (DBAPIError, OSError) as error:
                log.warning(
                    "storage replica work failed; retrying", error_type=type(error).__name__
                )
                done = []
            if len(done) < self._batch:
                await self.rest(self._interval)
