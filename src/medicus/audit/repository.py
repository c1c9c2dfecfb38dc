"""SQL of the audit trail. Each method is one step of a named transaction in `service`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import RowMapping, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from medicus.audit.models import AuditEntryRow, AuditHeadRow

HEAD_ID = 1
GENESIS_HASH = "0" * 64


async def _create_head_if_missing(session: AsyncSession) -> None:
    insert = postgresql_insert if session.bind.dialect.name == "postgresql" else sqlite_insert
    statement = insert(AuditHeadRow).values(id=HEAD_ID, seq=0, hash=GENESIS_HASH)
    await session.execute(statement.on_conflict_do_nothing(index_elements=["id"]))


async def reserve(session: AsyncSession, count: int) -> tuple[int, str]:
    """Take the next `count` places in the chain; returns the sequence number and hash of the
    entry before them. The UPDATE comes first so that it takes the lock before anything is read."""
    statement = (
        update(AuditHeadRow)
        .where(AuditHeadRow.id == HEAD_ID)
        .values(seq=AuditHeadRow.seq + count)
        .returning(AuditHeadRow.seq, AuditHeadRow.hash)
    )
    row = (await session.execute(statement)).one_or_none()
    if row is None:
        await _create_head_if_missing(session)
        row = (await session.execute(statement)).one()
    return row.seq - count, row.hash


async def append(session: AsyncSession, entries: Sequence[dict[str, Any]], last_hash: str) -> None:
    await session.execute(AuditEntryRow.__table__.insert(), list(entries))
    await session.execute(
        update(AuditHeadRow).where(AuditHeadRow.id == HEAD_ID).values(hash=last_hash)
    )


async def head(session: AsyncSession) -> tuple[int, str] | None:
    """The sequence number and hash of the chain's last entry, or None before the first."""
    statement = select(AuditHeadRow.seq, AuditHeadRow.hash).where(AuditHeadRow.id == HEAD_ID)
    row = (await session.execute(statement)).one_or_none()
    return None if row is None else (row.seq, row.hash)


async def entries_after(
    session: AsyncSession, after_seq: int, up_to_seq: int, limit: int
) -> Sequence[RowMapping]:
    """Up to `limit` entries after `after_seq`, in chain order, as plain rows."""
    table = AuditEntryRow.__table__
    statement = (
        select(table)
        .where(table.c.seq > after_seq, table.c.seq <= up_to_seq)
        .order_by(table.c.seq)
        .limit(limit)
    )
    return (await session.execute(statement)).mappings().all()
