"""SQL of the replicas' background work and of the operator's commands (`medicus storage
...`): walking the work and the replicas of a page of objects, claiming a replica and
finishing it only while the claim stands, and re-wrapping data keys under a new
key-encryption key. Each function runs inside the caller's transaction."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from medicus.storage.models import ObjectReplicaRow, StorageUploadRow, StoredObjectRow
from medicus.storage.repository import CORRUPT, DELETING, PENDING, PRESENT

WORK_STATES = (PENDING, CORRUPT, DELETING)


async def work_after(
    session: AsyncSession, after: tuple[str, str], limit: int
) -> Sequence[ObjectReplicaRow]:
    """Replicas to copy, repair or delete, due or not, in (object, backend) order after
    `after`: a page of a walk over all the work there is."""
    statement = (
        select(ObjectReplicaRow)
        .where(
            ObjectReplicaRow.state.in_(WORK_STATES),
            tuple_(ObjectReplicaRow.object_id, ObjectReplicaRow.backend) > tuple_(*after),
        )
        .order_by(ObjectReplicaRow.object_id, ObjectReplicaRow.backend)
        .limit(limit)
    )
    return (await session.scalars(statement)).all()


async def replicas_of_many(
    session: AsyncSession, object_ids: Sequence[str]
) -> dict[str, list[ObjectReplicaRow]]:
    """The replicas of each of the objects (a page of a walk), by object."""
    found: dict[str, list[ObjectReplicaRow]] = {object_id: [] for object_id in object_ids}
    statement = select(ObjectReplicaRow).where(ObjectReplicaRow.object_id.in_(object_ids))
    for row in await session.scalars(statement):
        found[row.object_id].append(row)
    return found


async def uploads_with_old_key(
    session: AsyncSession, organisation_id: str, current_kek: str, limit: int
) -> Sequence[StorageUploadRow]:
    """Resumable uploads of the organisation whose data key another key than the current
    wraps."""
    statement = (
        select(StorageUploadRow)
        .where(
            StorageUploadRow.organisation_id == organisation_id,
            StorageUploadRow.kek_id != current_kek,
        )
        .order_by(StorageUploadRow.id)
        .limit(limit)
    )
    return (await session.scalars(statement)).all()


async def rewrap_object(
    session: AsyncSession, object_id: str, old_kek: str, new_kek: str, blob: bytes
) -> bool:
    """Put the object's data key under `new_kek`, unless it is no longer under `old_kek`
    (deleted meanwhile: a destroyed key must stay destroyed)."""
    statement = (
        update(StoredObjectRow)
        .where(
            StoredObjectRow.id == object_id,
            StoredObjectRow.kek_id == old_kek,
            StoredObjectRow.deleted_at.is_(None),
        )
        .values(kek_id=new_kek, wrapped_key=blob)
        .execution_options(synchronize_session=False)
    )
    result: Any = await session.execute(statement)
    return bool(result.rowcount == 1)


async def rewrap_upload(
    session: AsyncSession, upload_id: str, old_kek: str, new_kek: str, blob: bytes
) -> bool:
    """Put the upload's data key under `new_kek`, unless it is no longer under `old_kek`."""
    statement = (
        update(StorageUploadRow)
        .where(StorageUploadRow.id == upload_id, StorageUploadRow.kek_id == old_kek)
        .values(kek_id=new_kek, wrapped_key=blob)
        .execution_options(synchronize_session=False)
    )
    result: Any = await session.execute(statement)
    return bool(result.rowcount == 1)


async def live_objects(
    session: AsyncSession, object_ids: Sequence[str]
) -> dict[str, StoredObjectRow]:
    """Those of the objects that were not deleted, by id."""
    statement = select(StoredObjectRow).where(
        StoredObjectRow.id.in_(object_ids), StoredObjectRow.deleted_at.is_(None)
    )
    return {row.id: row for row in await session.scalars(statement)}


def _claimed(object_id: str, backend: str, at: dt.datetime) -> Any:
    return (
        (ObjectReplicaRow.object_id == object_id)
        & (ObjectReplicaRow.backend == backend)
        & (ObjectReplicaRow.next_attempt_at == at)
    )


async def claim(
    session: AsyncSession,
    object_id: str,
    backend: str,
    at: dt.datetime,
    until: dt.datetime,
    state: str | None = None,
) -> bool:
    """Take a replica for one attempt if its next attempt is still `at` (as read): it moves
    to `until`, so that no other process takes it meanwhile (and into `state`, if given).
    False if it changed. (No row loaded in the session is updated to match: that would walk
    all of them on every claim, too slow for a page of claims.)"""
    values: dict[str, Any] = {"next_attempt_at": until}
    if state is not None:
        values["state"] = state
    statement = (
        update(ObjectReplicaRow)
        .where(_claimed(object_id, backend, at))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    result: Any = await session.execute(statement)
    return bool(result.rowcount == 1)


def add_replica(
    session: AsyncSession, object_id: str, backend: str, state: str, next_attempt: dt.datetime
) -> None:
    """A new replica of an object whose replicas the caller read (it has none there), its
    work due at `next_attempt` (a claim's end, for one claimed at once)."""
    session.add(
        ObjectReplicaRow(
            object_id=object_id,
            backend=backend,
            state=state,
            attempts=0,
            next_attempt_at=next_attempt,
        )
    )


async def settle_present(
    session: AsyncSession, object_id: str, backend: str, until: dt.datetime, now: dt.datetime
) -> bool:
    """Record a claimed replica as written and checked, if the claim (`until`) still
    stands."""
    statement = (
        update(ObjectReplicaRow)
        .where(_claimed(object_id, backend, until))
        .values(state=PRESENT, attempts=0, last_error=None, next_attempt_at=now, verified_at=now)
        .execution_options(synchronize_session=False)
    )
    result: Any = await session.execute(statement)
    return bool(result.rowcount == 1)


async def drop_claimed(
    session: AsyncSession, object_id: str, backend: str, until: dt.datetime
) -> bool:
    """Drop a claimed replica's row (its bytes are gone), if the claim still stands."""
    statement = (
        delete(ObjectReplicaRow)
        .where(_claimed(object_id, backend, until))
        .execution_options(synchronize_session=False)
    )
    result: Any = await session.execute(statement)
    return bool(result.rowcount == 1)
