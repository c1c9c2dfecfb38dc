"""SQL of the audit trail. Each function is one step of a named transaction in `service`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import BigInteger, RowMapping, Table, any_, bindparam, delete, func, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from medicus.audit.models import AuditEntryRow, AuditHeadRow, AuditPatientRow, AuditPendingRow
from medicus.core.bulk import insert_tables

if TYPE_CHECKING:
    from medicus.audit.search import AuditQuery

HEAD_ID = 1
GENESIS_HASH = "0" * 64

PENDING = cast(Table, AuditPendingRow.__table__)
_entries = cast(Table, AuditEntryRow.__table__)
_concerned = cast(Table, AuditPatientRow.__table__)


async def add_pending(session: AsyncSession, entries: Sequence[dict[str, Any]]) -> None:
    """Entries to seal, in the caller's transaction (every write has one or more)."""
    await insert_tables(session, [(PENDING, entries)])


ANY_PENDING = select(PENDING.c.id).limit(1)


async def count_pending(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(PENDING)) or 0)


async def _create_head_if_missing(session: AsyncSession) -> None:
    insert = postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    statement = insert(AuditHeadRow).values(id=HEAD_ID, seq=0, hash=GENESIS_HASH)
    await session.execute(statement.on_conflict_do_nothing(index_elements=["id"]))


async def lock_head(session: AsyncSession) -> tuple[int, str]:
    """Lock the chain's head for this transaction and return its sequence number and hash.
    A (no-op) UPDATE takes the lock on both PostgreSQL and SQLite before anything is read."""
    statement = (
        update(AuditHeadRow)
        .where(AuditHeadRow.id == HEAD_ID)
        .values(seq=AuditHeadRow.seq)
        .returning(AuditHeadRow.seq, AuditHeadRow.hash)
    )
    row = (await session.execute(statement)).one_or_none()
    if row is None:
        await _create_head_if_missing(session)
        row = (await session.execute(statement)).one()
    return row.seq, row.hash


async def oldest_pending(session: AsyncSession, limit: int) -> Sequence[RowMapping]:
    statement = select(PENDING).order_by(PENDING.c.id).limit(limit)
    return (await session.execute(statement)).mappings().all()


async def seal(
    session: AsyncSession,
    entries: Sequence[dict[str, Any]],
    concerned: Sequence[dict[str, Any]],
    pending_ids: Sequence[int],
) -> None:
    """Move pending entries into the chain, index them by the Patient records they concern
    (`concerned`), and advance the head to the last of them."""
    await insert_tables(session, [(_entries, entries), (_concerned, concerned)])
    await session.execute(delete(PENDING).where(_any_of(session, PENDING.c.id, pending_ids)))
    last = entries[-1]
    await session.execute(
        update(AuditHeadRow)
        .where(AuditHeadRow.id == HEAD_ID)
        .values(seq=last["seq"], hash=last["hash"])
    )


def _any_of(session: AsyncSession, column: Any, values: Sequence[int]) -> Any:
    """`column IN values`; on PostgreSQL one array parameter (`= ANY($1)`) rather than one
    parameter per value, which SQLAlchemy renders and asyncpg sends one by one."""
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam("values", list(values), type_=ARRAY(BigInteger)))
    return column.in_(values)


async def head(session: AsyncSession) -> tuple[int, str] | None:
    """The sequence number and hash of the chain's last entry, or None before the first."""
    statement = select(AuditHeadRow.seq, AuditHeadRow.hash).where(AuditHeadRow.id == HEAD_ID)
    row = (await session.execute(statement)).one_or_none()
    return None if row is None else (row.seq, row.hash)


async def entries_after(
    session: AsyncSession, after_seq: int, up_to_seq: int, limit: int
) -> Sequence[RowMapping]:
    """Up to `limit` sealed entries after `after_seq`, in chain order, as plain rows."""
    statement = (
        select(_entries)
        .where(_entries.c.seq > after_seq, _entries.c.seq <= up_to_seq)
        .order_by(_entries.c.seq)
        .limit(limit)
    )
    return (await session.execute(statement)).mappings().all()


async def matching(session: AsyncSession, query: AuditQuery) -> Sequence[RowMapping]:
    """Up to `query.limit` + 1 sealed entries that meet the query, newest first (the one
    more tells whether a page follows)."""
    entry = _entries.c
    conditions: list[Any] = []
    if query.patients is not None:
        concerned = _concerned.c
        conditions.append(
            entry.seq.in_(
                select(concerned.seq).where(concerned.patient_id.in_(sorted(query.patients)))
            )
        )
    if query.organisation is not None:
        conditions.append(entry.organisation == query.organisation)
    for column, values in (
        (entry.actor, query.actors),
        (entry.outcome, query.outcomes),
        (entry.action, query.actions),
        (entry.target, query.targets),
    ):
        if values is not None:
            conditions.append(column.in_(sorted(values)))
    if query.since is not None:
        conditions.append(entry.occurred_at >= query.since)
    if query.until is not None:
        conditions.append(entry.occurred_at < query.until)
    if query.below is not None:
        conditions.append(entry.seq < query.below)
    statement = select(_entries).where(*conditions).order_by(entry.seq.desc())
    return (await session.execute(statement.limit(query.limit + 1))).mappings().all()


async def entry(session: AsyncSession, seq: int) -> RowMapping | None:
    return (await session.execute(select(_entries).where(_entries.c.seq == seq))).mappings().first()
