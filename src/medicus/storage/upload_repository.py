"""SQL of the resumable uploads (`storage_upload`). Each function runs inside the caller's
transaction; the ones that move an upload on are conditional on the state the caller read,
so that two processes can never both move the same upload from the same state."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from medicus.storage.models import StorageUploadRow


async def add(session: AsyncSession, row: StorageUploadRow) -> None:
    session.add(row)
    await session.flush()


async def get(session: AsyncSession, upload_id: str) -> StorageUploadRow | None:
    return await session.get(StorageUploadRow, upload_id)


async def advance(
    session: AsyncSession,
    upload_id: str,
    received_before: int,
    received: int,
    tail: bytes,
    expires_at: dt.datetime,
) -> bool:
    """Record that the upload now holds `received` bytes, the last of which (`tail`, sealed)
    do not fill a chunk; False if it no longer holds `received_before` (another request
    moved it on, or it was finished, terminated or expired meanwhile)."""
    statement = (
        update(StorageUploadRow)
        .where(
            StorageUploadRow.id == upload_id,
            StorageUploadRow.received == received_before,
            StorageUploadRow.object_id.is_(None),
        )
        .values(received=received, tail=tail, expires_at=expires_at)
    )
    result: Any = await session.execute(statement)
    return bool(result.rowcount == 1)


async def finish(session: AsyncSession, upload_id: str, object_id: str) -> bool:
    """Record the object that the complete upload became (its tail is no longer needed)."""
    statement = (
        update(StorageUploadRow)
        .where(StorageUploadRow.id == upload_id, StorageUploadRow.object_id.is_(None))
        .values(object_id=object_id, tail=b"")
    )
    result: Any = await session.execute(statement)
    return bool(result.rowcount == 1)


async def remove(session: AsyncSession, upload_id: str) -> StorageUploadRow | None:
    """Delete the upload's row; the row as it was, None if there was none."""
    row = await session.get(StorageUploadRow, upload_id, with_for_update=True)
    if row is None:
        return None
    await session.delete(row)
    return row


async def due(session: AsyncSession, now: dt.datetime, limit: int) -> Sequence[str]:
    """The ids of uploads whose time ran out (finished or not), the oldest first."""
    statement = (
        select(StorageUploadRow.id)
        .where(StorageUploadRow.expires_at <= now)
        .order_by(StorageUploadRow.expires_at)
        .limit(limit)
    )
    return (await session.scalars(statement)).all()
