"""SQL of break-glass: an emergency access that opens a person's record to one actor for a
while, its review by the data protection officer, and the conditions of "opened" inside
other queries."""

from __future__ import annotations

import datetime as dt
from typing import Any, NamedTuple

from sqlalchemy import Select, exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from medicus.access.models import (
    BREAK_GLASS,
    RECORDS,
)


def opened_patients(actor: Any, now: Any) -> Select[tuple[str]]:
    """The Patient records of the persons whose record `actor` opened by break-glass and
    may still see at `now`."""
    opened = RECORDS.alias("opened")
    return (
        select(RECORDS.c.patient_id)
        .join(opened, opened.c.person_id == RECORDS.c.person_id)
        .join(BREAK_GLASS, BREAK_GLASS.c.patient_id == opened.c.patient_id)
        .where(
            BREAK_GLASS.c.actor == actor,
            BREAK_GLASS.c.started_at <= now,
            BREAK_GLASS.c.ends_at > now,
        )
    )


def opened_record(patient: Any, actor: Any, now: Any) -> Any:
    """Whether `actor` has opened the person of Patient record `patient` by break-glass and
    may still read it at `now`, checked for one row."""
    mine, other = RECORDS.alias("mine"), RECORDS.alias("other")
    return exists().where(
        mine.c.patient_id == patient,
        other.c.person_id == mine.c.person_id,
        BREAK_GLASS.c.patient_id == other.c.patient_id,
        BREAK_GLASS.c.actor == actor,
        BREAK_GLASS.c.started_at <= now,
        BREAK_GLASS.c.ends_at > now,
    )


class StoredBreakGlass(NamedTuple):
    id: str
    actor: str
    organisation_id: str
    patient_id: str
    reason: str
    started_at: dt.datetime
    ends_at: dt.datetime
    reviewed_by: str | None
    reviewed_at: dt.datetime | None
    review_note: str | None


async def add_break_glass(session: AsyncSession, opened: StoredBreakGlass) -> None:
    await session.execute(BREAK_GLASS.insert().values(**opened._asdict()))


async def break_glass_of(
    session: AsyncSession, organisation_id: str, unreviewed: bool, limit: int
) -> list[StoredBreakGlass]:
    """The organisation's break-glass accesses, newest first (`unreviewed`: only those
    nobody reviewed yet)."""
    statement = select(*BREAK_GLASS.c).where(BREAK_GLASS.c.organisation_id == organisation_id)
    if unreviewed:
        statement = statement.where(BREAK_GLASS.c.reviewed_at.is_(None))
    statement = statement.order_by(BREAK_GLASS.c.started_at.desc(), BREAK_GLASS.c.id).limit(limit)
    return [StoredBreakGlass(*row) for row in await session.execute(statement)]


async def review_break_glass(
    session: AsyncSession,
    break_glass_id: str,
    organisation_id: str,
    reviewer: str,
    at: dt.datetime,
    note: str,
) -> StoredBreakGlass | None:
    """Mark the organisation's break-glass access reviewed; None if it has no such one."""
    await session.execute(
        update(BREAK_GLASS)
        .where(
            BREAK_GLASS.c.id == break_glass_id,
            BREAK_GLASS.c.organisation_id == organisation_id,
        )
        .values(reviewed_by=reviewer, reviewed_at=at, review_note=note)
    )
    statement = select(*BREAK_GLASS.c).where(
        BREAK_GLASS.c.id == break_glass_id, BREAK_GLASS.c.organisation_id == organisation_id
    )
    row = (await session.execute(statement)).one_or_none()
    return None if row is None else StoredBreakGlass(*row)
