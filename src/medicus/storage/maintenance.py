"""The operator's use-cases of the object storage (`medicus storage ...`): where the objects
stand (`status`), whether their replicas are whole (`verify`), catching up and repairing now
(`repair`), moving everything off a backend while the platform stays online (`migrate`),
re-keying an organisation (`rotate_key`) and its quota (`set_quota`).

Every one of them can be stopped at any moment and run again: what is done is recorded
replica by replica, in the same rows the background work (`work`) uses. They do not wait
for a replica's backoff, and a claim of a server's background work does not hold them up
(at worst both copy the same bytes to the same place, and one of them records it)."""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from medicus.audit.actors import OPERATOR
from medicus.audit.service import AuditRecord, AuditTrail
from medicus.core.clock import Clock
from medicus.core.db import utc_now
from medicus.core.errors import ApiError
from medicus.storage import repository, work, work_repository
from medicus.storage.backends import Backend, BackendError, ObjectMissing
from medicus.storage.encryption import Header, Opener, SealBroken, sealed_size
from medicus.storage.keyring import UnwrapFailed, WrappedKey, rewrap
from medicus.storage.migration import Migration, object_pages
from medicus.storage.models import ObjectReplicaRow, StoredObjectRow
from medicus.storage.reports import (
    DAMAGED,
    FAILED,
    MARKED_CORRUPT,
    MISSING,
    NOT_COPIED,
    TOO_FEW,
    UNCONFIGURED,
    UNREACHABLE,
    WRONG_SIZE,
    BackendStatus,
    MaintenanceError,
    MigrateReport,
    OrganisationUsage,
    Problem,
    Progress,
    RepairReport,
    RotateReport,
    StorageStatus,
    VerifyReport,
    no_progress,
)
from medicus.storage.repository import CORRUPT, DELETING, PENDING, PRESENT
from medicus.storage.service import ObjectStore, object_key
from medicus.storage.work import (
    BATCH,
    COPIED,
    DELETED,
    KEPT,
    PARALLEL,
    PIECE_BYTES,
    Done,
    Interrupted,
    Replicator,
    threaded,
)

PROBE_KEY = "medicus-probe"
PROBE_SECONDS = 15.0


def inspect_replica(
    backend: Backend, key: str, expected: int, deep: DeepCheck | None
) -> tuple[str, str] | None:
    """What is wrong with a replica (problem, detail), None if nothing (blocking);
    BackendError if the backend fails."""
    size = backend.size(key)
    if size is None:
        return MISSING, "the backend does not hold it"
    if size != expected:
        return WRONG_SIZE, f"{size} bytes instead of {expected}"
    return None if deep is None else deep.read(backend, key)


@dataclass(frozen=True)
class DeepCheck:
    """Reading a replica whole: every chunk must open and the plaintext hash to the object's
    SHA-256."""

    data_key: bytes
    size: int
    sha256: str
    halt: threading.Event

    def read(self, backend: Backend, key: str) -> tuple[str, str] | None:
        opener = Opener(self.data_key)
        digest = hashlib.sha256()
        received = 0
        try:
            for piece in backend.read(key, PIECE_BYTES):
                if self.halt.is_set():
                    raise Interrupted
                for plain in opener.push(piece):
                    digest.update(plain)
                    received += len(plain)
            last = opener.finish()
        except SealBroken as error:
            return DAMAGED, str(error)
        except ObjectMissing:
            return MISSING, "the backend does not hold it"
        digest.update(last)
        received += len(last)
        if received != self.size:
            return DAMAGED, f"it opens to {received} bytes instead of {self.size}"
        if digest.hexdigest() != self.sha256:
            return DAMAGED, "its plaintext's SHA-256 is not the object's"
        return None


class StorageMaintenance:
    def __init__(
        self, store: ObjectStore, audit: AuditTrail, clock: Clock = utc_now, actor: str = OPERATOR
    ) -> None:
        self.store = store
        self.audit = audit
        self.actor = actor
        self.database = store.database
        self.clock = clock
        self.replicator = Replicator(store, clock)
        self.halt = threading.Event()

    # --- status ---------------------------------------------------------------------------

    async def status(self) -> StorageStatus:
        """Each backend's objects and work, whether it answers, and each organisation's
        usage against its quota."""
        async with self.database.snapshot() as session:
            counts = await repository.replica_counts(session)
            draining = await repository.draining_backends(session)
            objects = await repository.count_objects(session)
            usage = await repository.usage_of(session)
        configured = list(self.store.backends)
        known = {backend for backend, _ in counts} | draining
        names = configured + sorted(known - set(configured))
        answers = await asyncio.gather(*(self._probe(name) for name in configured))
        reachable = dict(zip(configured, answers, strict=True))
        default = self.store.default_quota
        return StorageStatus(
            self.store.replicas,
            objects,
            [self._backend_status(name, counts, draining, reachable) for name in names],
            [
                OrganisationUsage(
                    row.organisation_id,
                    row.used_bytes,
                    default if row.quota_bytes is None else row.quota_bytes,
                    row.quota_bytes is None,
                )
                for row in usage
            ],
        )

    def _backend_status(
        self,
        name: str,
        counts: dict[tuple[str, str], tuple[int, int]],
        draining: set[str],
        reachable: dict[str, bool],
    ) -> BackendStatus:
        present, present_bytes = counts.get((name, PRESENT), (0, 0))
        return BackendStatus(
            name,
            name in self.store.backends,
            reachable.get(name),
            name in draining,
            present,
            present_bytes,
            counts.get((name, PENDING), (0, 0))[0],
            counts.get((name, CORRUPT), (0, 0))[0],
            counts.get((name, DELETING), (0, 0))[0],
        )

    async def _probe(self, name: str) -> bool:
        """Whether the backend answers a cheap question (the size of an object it lacks)."""
        backend = self.store.backends[name]
        try:
            await asyncio.wait_for(asyncio.to_thread(backend.size, PROBE_KEY), PROBE_SECONDS)
        except (BackendError, TimeoutError):
            return False
        return True

    # --- verify ---------------------------------------------------------------------------

    async def verify(self, deep: bool = False, progress: Progress = no_progress) -> VerifyReport:
        """Check every replica of every object: there and of the right size, and with `deep`
        whole (every chunk opens, the plaintext's SHA-256 is the object's). A missing or
        damaged replica is marked for repair."""
        report = VerifyReport(deep)
        async with self.database.snapshot() as session:
            total = await repository.count_objects(session)
            draining = await repository.draining_backends(session)
        usable = [name for name in self.store.backends if name not in draining]
        wanted = min(self.store.replicas, len(usable))
        async for page, replicas in object_pages(self.database):
            checks: list[tuple[StoredObjectRow, ObjectReplicaRow]] = []
            for row in page:
                checks += self._account(row, replicas[row.id], usable, wanted, report)
            found = await _gathered(
                [self._check(row, replica, deep) for row, replica in checks], PARALLEL
            )
            report.replicas_checked += len(checks)
            report.ok += found.count(None)
            report.problems += [problem for problem in found if problem is not None]
            report.objects += len(page)
            progress(report.objects, max(total, report.objects))
        await self._note(
            "storage.verify", deep=deep, objects=report.objects, problems=len(report.problems)
        )
        return report

    def _account(
        self,
        row: StoredObjectRow,
        replicas: list[ObjectReplicaRow],
        usable: list[str],
        wanted: int,
        report: VerifyReport,
    ) -> list[tuple[StoredObjectRow, ObjectReplicaRow]]:
        """Note the problems the rows show; the replicas to look at on their backends."""
        kept = [r for r in replicas if r.state != DELETING and r.backend in usable]
        if len(kept) < wanted:
            detail = f"{len(kept)} of {wanted}; `medicus storage repair` adds the others"
            report.problems.append(Problem(row.id, "-", TOO_FEW, detail))
        checks = []
        for replica in replicas:
            if replica.state == PENDING:
                report.problems.append(Problem(row.id, replica.backend, NOT_COPIED))
            elif replica.state == CORRUPT:
                detail = replica.last_error or ""
                report.problems.append(Problem(row.id, replica.backend, MARKED_CORRUPT, detail))
            elif replica.state == PRESENT and replica.backend not in self.store.backends:
                report.problems.append(Problem(row.id, replica.backend, UNCONFIGURED))
            elif replica.state == PRESENT:
                checks.append((row, replica))
        return checks

    async def _check(
        self, row: StoredObjectRow, replica: ObjectReplicaRow, deep: bool
    ) -> Problem | None:
        backend = self.store.backends[replica.backend]
        header = Header.decode(row.header)
        expected = sealed_size(row.size, header.chunk_bytes)
        deep_check = None
        if deep:
            try:
                data_key = await asyncio.to_thread(self.store.data_key, row)
            except (UnwrapFailed, ApiError):
                return Problem(row.id, replica.backend, DAMAGED, "its data key does not unwrap")
            deep_check = DeepCheck(data_key, row.size, row.sha256, self.halt)
        key = object_key(row.id)
        try:
            found = await threaded(self.halt, inspect_replica, backend, key, expected, deep_check)
        except BackendError as error:
            return Problem(row.id, replica.backend, UNREACHABLE, str(error))
        if found is None:
            return None
        problem, detail = found
        if not await self.replicator.mark_corrupt(row.id, replica.backend, problem):
            return None  # moved, deleted or repaired meanwhile
        return Problem(row.id, replica.backend, problem, detail)

    # --- repair ---------------------------------------------------------------------------

    async def repair(self, progress: Progress = no_progress) -> RepairReport:
        """Add the replicas objects lack (a backend was added, or `storage_replicas` raised),
        then do all the replicas' work now, backoffs or not: copy the pending and corrupt
        ones, remove the bytes of the deleted ones."""
        report = RepairReport(added=await self._top_up())
        async with self.database.snapshot() as session:
            counts = await repository.replica_counts(session)
        total = sum(n for (_, state), (n, _) in counts.items() if state != PRESENT)
        cursor, seen = ("", ""), 0
        while True:
            now = self.clock()
            async with self.database.transaction() as session:
                rows = await work_repository.work_after(session, cursor, BATCH)
                if not rows:
                    break
                jobs = await self.replicator.claim_rows(session, rows, now)
            cursor = (rows[-1].object_id, rows[-1].backend)
            for done in await self.replicator.run_all(jobs, self.halt):
                _tally(report, done)
            seen += len(rows)
            progress(seen, max(total, seen))
        await self._note(
            "storage.repair",
            added=report.added,
            copied=report.copied,
            deleted=report.deleted,
            failed=len(report.failed),
        )
        return report

    async def _top_up(self) -> int:
        """Add `pending` replicas to objects with fewer than `replicas` on backends that take
        objects (not draining), on the first of those they are not on yet."""
        async with self.database.snapshot() as session:
            draining = await repository.draining_backends(session)
        usable = [name for name in self.store.backends if name not in draining]
        wanted = min(self.store.replicas, len(usable))
        added = 0
        async for page, replicas in object_pages(self.database):
            async with self.database.transaction() as session:
                for row in page:
                    added += self._add_replicas(session, row.id, replicas[row.id], usable, wanted)
        return added

    def _add_replicas(
        self,
        session: AsyncSession,
        object_id: str,
        replicas: list[ObjectReplicaRow],
        usable: list[str],
        wanted: int,
    ) -> int:
        kept = [r for r in replicas if r.state != DELETING and r.backend in usable]
        held = {replica.backend for replica in replicas}
        new = [name for name in usable if name not in held][: max(0, wanted - len(kept))]
        for name in new:
            work_repository.add_replica(session, object_id, name, PENDING, self.clock())
        return len(new)

    # --- migrate and keys ------------------------------------------------------------------

    async def migrate(
        self, source: str, target: str, progress: Progress = no_progress
    ) -> MigrateReport:
        """Move every object off `source` onto `target` while the platform runs (`migration`);
        run again after an interruption, it goes on where it stopped."""
        migration = Migration(self.store, self.replicator, self.clock, self.halt)
        report = await migration.migrate(source, target, progress)
        await self._note(
            "storage.migrate",
            source=source,
            target=target,
            moved=report.moved + report.already_there,
            remaining=report.remaining,
        )
        return report

    async def rotate_key(self, organisation_id: str) -> RotateReport:
        """Give the organisation a new key-encryption key and re-wrap every data key under
        it (uploads under way first, then objects), a batch per transaction; no object's
        bytes are touched. Run again after an interruption, it re-wraps what is left."""
        keyring = self.store.keyring
        if keyring.current(organisation_id) is None:
            raise MaintenanceError(
                f"organisation '{organisation_id}' has no storage key: it never kept an object"
            )
        kek_id = await asyncio.to_thread(keyring.rotate, organisation_id)
        uploads, failed_uploads = await self._rewrap_all(
            organisation_id,
            kek_id,
            work_repository.uploads_with_old_key,
            work_repository.rewrap_upload,
        )
        objects, failed_objects = await self._rewrap_all(
            organisation_id, kek_id, repository.with_old_key, work_repository.rewrap_object
        )
        failed = failed_uploads + failed_objects
        await self._note(
            "storage.rotate-key",
            organisation_id,
            kek_id=kek_id,
            objects=objects,
            uploads=uploads,
            failed=failed,
        )
        return RotateReport(organisation_id, kek_id, objects, uploads, failed)

    async def _rewrap_all(
        self,
        organisation_id: str,
        kek_id: str,
        find: Callable[[AsyncSession, str, str, int], Awaitable[Sequence[Any]]],
        put: Callable[[AsyncSession, str, str, str, bytes], Awaitable[bool]],
    ) -> tuple[int, int]:
        """Re-wrap the data keys `find` finds under another key than `kek_id`, with `put`:
        how many were, and how many did not unwrap."""
        done = 0
        passed: set[str] = set()
        failed = 0
        while True:
            async with self.database.transaction() as session:
                rows = await find(session, organisation_id, kek_id, BATCH * 8 + len(passed))
                rows = [row for row in rows if row.id not in passed]
                if not rows:
                    return done, failed
                wrapped = await asyncio.to_thread(self._rewrapped, organisation_id, rows)
                for row, new in zip(rows, wrapped, strict=True):
                    if new is None or new.kek_id == row.kek_id:
                        passed.add(row.id)
                        failed += new is None
                    elif await put(session, row.id, row.kek_id, new.kek_id, new.blob):
                        done += 1

    def _rewrapped(self, organisation_id: str, rows: Sequence[Any]) -> list[WrappedKey | None]:
        keyring = self.store.keyring
        found: list[WrappedKey | None] = []
        for row in rows:
            try:
                found.append(
                    rewrap(keyring, organisation_id, WrappedKey(row.kek_id, row.wrapped_key))
                )
            except UnwrapFailed:
                found.append(None)
        return found

    async def set_quota(self, organisation_id: str, quota_bytes: int | None) -> None:
        """The organisation's quota (None: the platform's default)."""
        if quota_bytes is not None and quota_bytes < 0:
            raise MaintenanceError("a quota cannot be negative")
        async with self.database.transaction() as session:
            if not await repository.organisation_known(session, organisation_id):
                raise MaintenanceError(f"there is no organisation '{organisation_id}'")
            await repository.set_quota(session, organisation_id, quota_bytes)
        await self._note("storage.quota", organisation_id, quota_bytes=quota_bytes)

    async def _note(self, action: str, organisation_id: str | None = None, **detail: Any) -> None:
        """The operator's command in the audit trail: what was done to the storage, by
        whom, with its outcome's numbers (never an object's content)."""
        target = f"Organization/{organisation_id}" if organisation_id else "storage"
        await self.audit.record(
            AuditRecord(
                action, self.actor, organisation=organisation_id, target=target, detail=detail
            )
        )


async def _gathered(calls: Sequence[Awaitable[Any]], parallel: int) -> list[Any]:
    slots = asyncio.Semaphore(parallel)

    async def one(call: Awaitable[Any]) -> Any:
        async with slots:
            return await call

    return list(await asyncio.gather(*(one(call) for call in calls)))


def _tally(report: RepairReport, done: Done) -> None:
    job = done.job
    if done.outcome == COPIED:
        report.copied += 1
    elif done.outcome == DELETED:
        report.deleted += 1
    elif done.outcome == KEPT:
        report.kept += 1
    elif done.outcome == work.FAILED:
        report.failed.append(Problem(job.object_id, job.backend, FAILED, done.error or ""))
