"""Moving every object off a backend while the platform stays online (`medicus storage
migrate --from A --to B`).

The source is marked draining first, so that new objects go elsewhere (`placement`); then,
a page of its objects at a time, those the target lacks are copied there (the replicas'
ordinary work, `work`), and those the target holds are removed from the source. Each step is
recorded replica by replica, so an interrupted migration, run again, goes on where it stopped.
Passes repeat while they move something, for uploads that began before the source was
draining and ended on it afterwards."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Sequence

from medicus.core.clock import Clock
from medicus.core.db import Database
from medicus.storage import repository, work_repository
from medicus.storage.models import ObjectReplicaRow, StoredObjectRow
from medicus.storage.reports import FAILED, MaintenanceError, MigrateReport, Problem, Progress
from medicus.storage.repository import DELETING, PENDING, PRESENT
from medicus.storage.service import ObjectStore
from medicus.storage.work import COPIED, DELETED, Job, Replicator

PAGE = 200
"""Objects read at a time when walking all of them."""

Page = tuple[Sequence[StoredObjectRow], dict[str, list[ObjectReplicaRow]]]
"""Objects and their replicas."""


async def object_pages(database: Database, backend: str | None = None) -> AsyncIterator[Page]:
    """Every live object (with `backend`: those with a replica there), a page at a time,
    with their replicas."""
    after = ""
    while True:
        async with database.snapshot() as session:
            page = await repository.objects_after(session, after, PAGE, backend)
            if not page:
                return
            ids = [row.id for row in page]
            replicas = await work_repository.replicas_of_many(session, ids)
        yield page, replicas
        after = page[-1].id


class Migration:
    def __init__(
        self, store: ObjectStore, replicator: Replicator, clock: Clock, halt: threading.Event
    ) -> None:
        self.store = store
        self.database = store.database
        self.replicator = replicator
        self.clock = clock
        self.halt = halt

    async def migrate(self, source: str, target: str, progress: Progress) -> MigrateReport:
        """Move every object off `source` onto `target` while the platform runs: `source`
        takes no new objects from now on (it is draining), each of its objects is copied to
        `target` unless there already, then removed from `source`. Run again after an
        interruption, it goes on where it stopped."""
        self._check_names(source, target)
        report = MigrateReport(source, target)
        async with self.database.transaction() as session:
            report.target_was_draining = target in await repository.draining_backends(session)
            await repository.set_draining(session, source, True, self.clock())
            await repository.set_draining(session, target, False, self.clock())
        done = 0
        while True:
            async with self.database.snapshot() as session:
                total = done + await repository.count_objects(session, source)
            before = report.moved + report.already_there
            report.failed.clear()  # a pass after the first tries them again
            async for page, _ in object_pages(self.database, source):
                await self._move_page([row.id for row in page], source, target, report)
                done += len(page)
                progress(done, max(total, done))
            async with self.database.snapshot() as session:
                report.remaining = await repository.count_objects(session, source)
            if report.remaining == 0 or report.moved + report.already_there == before:
                return report

    def _check_names(self, source: str, target: str) -> None:
        for name in (source, target):
            if name not in self.store.backends:
                known = ", ".join(self.store.backends)
                raise MaintenanceError(
                    f"there is no storage backend '{name}' in the configuration "
                    f"(configured: {known})"
                )
        if source == target:
            raise MaintenanceError("the source and the target are the same backend")

    async def _move_page(
        self, ids: list[str], source: str, target: str, report: MigrateReport
    ) -> None:
        """Move a page of objects: copy those the target lacks, then remove from the source
        those the target holds."""
        copied = set()
        for done in await self.replicator.run_all(await self._copies(ids, target), self.halt):
            if done.outcome == COPIED:
                copied.add(done.job.object_id)
            else:
                detail = done.error or done.outcome
                report.failed.append(Problem(done.job.object_id, target, FAILED, detail))
        for done in await self.replicator.run_all(
            await self._removals(ids, source, target), self.halt
        ):
            object_id = done.job.object_id
            if done.outcome != DELETED:
                detail = done.error or done.outcome
                report.failed.append(Problem(object_id, source, FAILED, detail))
            elif object_id in copied:
                report.moved += 1
            else:
                report.already_there += 1

    async def _copies(self, ids: list[str], target: str) -> list[Job]:
        """Claim the copies to `target` of those of the objects it does not hold (making
        their replicas there `pending` where they have none)."""
        now = self.clock()
        async with self.database.transaction() as session:
            live = await work_repository.live_objects(session, ids)
            until = now + self.replicator.lease(sum(row.size for row in live.values()))
            replicas = await work_repository.replicas_of_many(session, list(live))
            jobs = []
            for object_id, found in replicas.items():
                replica = _on(found, target)
                if replica is None:
                    work_repository.add_replica(session, object_id, target, PENDING, until)
                elif replica.state == PRESENT or not await work_repository.claim(
                    session, object_id, target, replica.next_attempt_at, until, PENDING
                ):
                    continue
                jobs.append(Job(object_id, target, PENDING, until))
            return jobs

    async def _removals(self, ids: list[str], source: str, target: str) -> list[Job]:
        """Claim the removal from `source` of those of the objects `target` holds."""
        now = self.clock()
        async with self.database.transaction() as session:
            until = now + self.replicator.lease(0)
            jobs = []
            for object_id, found in (await work_repository.replicas_of_many(session, ids)).items():
                kept, replica = _on(found, target), _on(found, source)
                if replica is None or kept is None or kept.state != PRESENT:
                    continue
                if await work_repository.claim(
                    session, object_id, source, replica.next_attempt_at, until, DELETING
                ):
                    jobs.append(Job(object_id, source, DELETING, until))
            return jobs


def _on(replicas: list[ObjectReplicaRow], backend: str) -> ObjectReplicaRow | None:
    return next((replica for replica in replicas if replica.backend == backend), None)
