"""SQL of the object storage: objects and their replicas, the backends' standing, usage and
quotas. Each function runs inside the caller's transaction."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from medicus.iam.models import OrganisationRow
from medicus.storage.models import (
    ObjectReplicaRow,
    StorageBackendRow,
    StorageUsageRow,
    StoredObjectRow,
)

PRESENT = "present"
PENDING = "pending"
CORRUPT = "corrupt"
DELETING = "deleting"


async def add_object(
    session: AsyncSession,
    row: StoredObjectRow,
    replicas: Iterable[tuple[str, str]],
    now: dt.datetime,
) -> None:
    """A new object and its replicas (backend, state)."""
    session.add(row)
    await session.flush()
    session.add_all(
        ObjectReplicaRow(object_id=row.id, backend=backend, state=state, next_attempt_at=now)
        for backend, state in replicas
    )


async def live_object(session: AsyncSession, object_id: str) -> StoredObjectRow | None:
    """The object, unless it was deleted."""
    return await session.scalar(
        select(StoredObjectRow).where(
            StoredObjectRow.id == object_id, StoredObjectRow.deleted_at.is_(None)
        )
    )


async def adopt(
    session: AsyncSession, object_id: str, organisation_id: str, created_by: str, owner: str
) -> StoredObjectRow | None:
    """Give the live object `object_id` its `owner`, if it has none yet and was created in
    `organisation_id` by `created_by` (an upload finished by them, now becoming the bytes of
    a resource); None, and nothing changed, otherwise."""
    statement = (
        update(StoredObjectRow)
        .where(
            StoredObjectRow.id == object_id,
            StoredObjectRow.organisation_id == organisation_id,
            StoredObjectRow.created_by == created_by,
            StoredObjectRow.owner.is_(None),
            StoredObjectRow.deleted_at.is_(None),
        )
        .values(owner=owner)
        .execution_options(synchronize_session=False)
    )
    result: Any = await session.execute(statement)
    if result.rowcount != 1:
        return None
    found = select(StoredObjectRow).where(StoredObjectRow.id == object_id)
    return await session.scalar(found.execution_options(populate_existing=True))


async def replicas_of(session: AsyncSession, object_id: str) -> Sequence[ObjectReplicaRow]:
    statement = select(ObjectReplicaRow).where(ObjectReplicaRow.object_id == object_id)
    return (await session.scalars(statement)).all()


async def set_replica(
    session: AsyncSession,
    object_id: str,
    backend: str,
    state: str,
    now: dt.datetime,
    error: str | None = None,
) -> None:
    """Put a replica into `state` (creating its row if needed); a failure (`error`) pushes
    its next attempt back, more the more often it failed (up to an hour)."""
    row = await session.get(ObjectReplicaRow, (object_id, backend))
    if row is None:
        row = ObjectReplicaRow(object_id=object_id, backend=backend, attempts=0)
        session.add(row)
    row.state = state
    row.last_error = error
    if error is None:
        row.attempts = 0
        row.next_attempt_at = now
        if state == PRESENT:
            row.verified_at = now
        return
    row.attempts = (row.attempts or 0) + 1
    row.next_attempt_at = now + dt.timedelta(seconds=min(3600, 2 ** min(row.attempts, 12)))


async def drop_replica(session: AsyncSession, object_id: str, backend: str) -> None:
    row = await session.get(ObjectReplicaRow, (object_id, backend))
    if row is not None:
        await session.delete(row)


async def due_work(
    session: AsyncSession, now: dt.datetime, limit: int, postgres: bool
) -> Sequence[ObjectReplicaRow]:
    """Replicas to catch up, repair or delete whose time has come; on PostgreSQL rows another
    process is working on are skipped."""
    statement = (
        select(ObjectReplicaRow)
        .where(
            ObjectReplicaRow.state.in_((PENDING, CORRUPT, DELETING)),
            ObjectReplicaRow.next_attempt_at <= now,
        )
        .order_by(ObjectReplicaRow.next_attempt_at)
        .limit(limit)
    )
    if postgres:
        statement = statement.with_for_update(skip_locked=True)
    return (await session.scalars(statement)).all()


async def objects_after(
    session: AsyncSession, after: str, limit: int, backend: str | None = None
) -> Sequence[StoredObjectRow]:
    """Live objects in id order after `after` (a page of a walk over all of them); with
    `backend`, only those with a replica there."""
    statement = select(StoredObjectRow).where(
        StoredObjectRow.id > after, StoredObjectRow.deleted_at.is_(None)
    )
    if backend is not None:
        statement = statement.where(
            StoredObjectRow.id.in_(
                select(ObjectReplicaRow.object_id).where(ObjectReplicaRow.backend == backend)
            )
        )
    return (await session.scalars(statement.order_by(StoredObjectRow.id).limit(limit))).all()


async def count_objects(session: AsyncSession, backend: str | None = None) -> int:
    statement = select(func.count()).select_from(StoredObjectRow)
    statement = statement.where(StoredObjectRow.deleted_at.is_(None))
    if backend is not None:
        statement = statement.where(
            StoredObjectRow.id.in_(
                select(ObjectReplicaRow.object_id).where(ObjectReplicaRow.backend == backend)
            )
        )
    return int(await session.scalar(statement) or 0)


async def replica_counts(session: AsyncSession) -> dict[tuple[str, str], tuple[int, int]]:
    """Per (backend, state): how many replicas and how many bytes of plaintext they hold."""
    statement = (
        select(
            ObjectReplicaRow.backend,
            ObjectReplicaRow.state,
            func.count(),
            func.coalesce(func.sum(StoredObjectRow.size), 0),
        )
        .join(StoredObjectRow, StoredObjectRow.id == ObjectReplicaRow.object_id)
        .group_by(ObjectReplicaRow.backend, ObjectReplicaRow.state)
    )
    return {
        (backend, state): (int(count), int(size))
        for backend, state, count, size in (await session.execute(statement)).all()
    }


async def with_old_key(
    session: AsyncSession, organisation_id: str, current_kek: str, limit: int
) -> Sequence[StoredObjectRow]:
    """Live objects of the organisation whose data key another key than the current wraps."""
    statement = (
        select(StoredObjectRow)
        .where(
            StoredObjectRow.organisation_id == organisation_id,
            StoredObjectRow.kek_id.is_not(None),
            StoredObjectRow.kek_id != current_kek,
        )
        .order_by(StoredObjectRow.id)
        .limit(limit)
    )
    return (await session.scalars(statement)).all()


async def draining_backends(session: AsyncSession) -> set[str]:
    statement = select(StorageBackendRow.name).where(StorageBackendRow.draining.is_(True))
    return set((await session.scalars(statement)).all())


async def set_draining(
    session: AsyncSession, backend: str, draining: bool, now: dt.datetime
) -> None:
    row = await session.get(StorageBackendRow, backend)
    if row is None:
        session.add(StorageBackendRow(name=backend, draining=draining, changed_at=now))
        return
    row.draining = draining
    row.changed_at = now


async def _usage_row(session: AsyncSession, organisation_id: str) -> StorageUsageRow:
    """The organisation's usage row, locked until the transaction ends. Created if missing
    with ON CONFLICT DO NOTHING: the first uploads of an organisation arrive together, and
    the second creator must wait for the first instead of failing on its key."""
    row = await session.get(StorageUsageRow, organisation_id, with_for_update=True)
    if row is not None:
        return row
    insert = postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    await session.execute(
        insert(StorageUsageRow)
        .values(organisation_id=organisation_id, used_bytes=0, quota_bytes=None)
        .on_conflict_do_nothing(index_elements=["organisation_id"])
    )
    created = await session.get(
        StorageUsageRow, organisation_id, with_for_update=True, populate_existing=True
    )
    assert created is not None
    return created


async def reserve(
    session: AsyncSession, organisation_id: str, size: int, default_quota: int | None
) -> tuple[bool, int, int | None]:
    """Count `size` more bytes against the organisation, unless that would exceed its quota:
    (whether it did, the bytes used before, the quota in force)."""
    row = await _usage_row(session, organisation_id)
    quota = row.quota_bytes if row.quota_bytes is not None else default_quota
    used = row.used_bytes
    if quota is not None and used + size > quota:
        return False, used, quota
    row.used_bytes = used + size
    return True, used, quota


async def release(session: AsyncSession, organisation_id: str, size: int) -> None:
    """Count `size` bytes less against the organisation (an object deleted, an upload
    given up)."""
    row = await _usage_row(session, organisation_id)
    row.used_bytes = max(0, row.used_bytes - size)


async def usage_of(
    session: AsyncSession, organisation_ids: Iterable[str] | None = None
) -> Sequence[StorageUsageRow]:
    statement = select(StorageUsageRow).order_by(StorageUsageRow.organisation_id)
    if organisation_ids is not None:
        statement = statement.where(StorageUsageRow.organisation_id.in_(list(organisation_ids)))
    return (await session.scalars(statement)).all()


async def organisation_known(session: AsyncSession, organisation_id: str) -> bool:
    statement = select(OrganisationRow.id).where(OrganisationRow.id == organisation_id)
    return await session.scalar(statement) is not None


async def set_quota(session: AsyncSession, organisation_id: str, quota: int | None) -> None:
    row = await _usage_row(session, organisation_id)
    row.quota_bytes = quota
