"""SQL of the master patient index: the Patient records of the hospitals, the person each
belongs to, links and merges between records, and pairs ruled out as different persons. Each
function is one step of a transaction in `patients`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable
from dataclasses import asdict
from typing import Any, NamedTuple

from sqlalchemy import Select, Table, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from medicus.access.matching import Traits
from medicus.access.models import (
    DISTINCT,
    FORMER_RECORDS,
    LINKS,
    MERGES,
    RECORDS,
)


class StoredRecord(NamedTuple):
    patient_id: str
    organisation_id: str
    person_id: str
    kvnr: str | None


_RECORD = (RECORDS.c.patient_id, RECORDS.c.organisation_id, RECORDS.c.person_id, RECORDS.c.kvnr)


async def record(session: AsyncSession, patient_id: str) -> StoredRecord | None:
    statement = select(*_RECORD).where(RECORDS.c.patient_id == patient_id)
    row = (await session.execute(statement)).one_or_none()
    return None if row is None else StoredRecord(*row)


async def records(session: AsyncSession, patient_ids: Collection[str]) -> list[StoredRecord]:
    if not patient_ids:
        return []
    statement = select(*_RECORD).where(RECORDS.c.patient_id.in_(sorted(patient_ids)))
    return [StoredRecord(*row) for row in await session.execute(statement)]


async def held_by(
    session: AsyncSession, patient_ids: Collection[str], organisation_id: str
) -> set[str]:
    """Those of the records `patient_ids` that `organisation_id` holds, or held until it
    deleted them."""
    if not patient_ids:
        return set()
    ids = sorted(patient_ids)
    former = select(FORMER_RECORDS.c.patient_id).where(
        FORMER_RECORDS.c.patient_id.in_(ids), FORMER_RECORDS.c.organisation_id == organisation_id
    )
    return set((await session.scalars(_held_now(ids, organisation_id).union(former))).all())


async def held_now(
    session: AsyncSession, patient_ids: Collection[str], organisation_id: str
) -> set[str]:
    """Those of the records `patient_ids` that `organisation_id` holds."""
    if not patient_ids:
        return set()
    return set((await session.scalars(_held_now(sorted(patient_ids), organisation_id))).all())


def _held_now(ids: list[str], organisation_id: str) -> Select[Any]:
    return select(RECORDS.c.patient_id).where(
        RECORDS.c.patient_id.in_(ids), RECORDS.c.organisation_id == organisation_id
    )


async def put_record(
    session: AsyncSession,
    patient_id: str,
    organisation_id: str,
    kvnr: str | None,
    traits: Traits,
    created: bool = False,
) -> str | None:
    """Store the record with its KVNR and matching traits (a new one is its own person
    until regrouped); the person it belonged to before (None: it is new, `created` says so
    without looking)."""
    existing = None if created else await record(session, patient_id)
    values = {"kvnr": kvnr, **asdict(traits)}
    if existing is None:
        await session.execute(
            RECORDS.insert().values(
                patient_id=patient_id,
                organisation_id=organisation_id,
                person_id=patient_id,
                **values,
            )
        )
        return None
    await session.execute(
        update(RECORDS).where(RECORDS.c.patient_id == patient_id).values(**values)
    )
    return existing.person_id


async def delete_record(session: AsyncSession, patient_id: str, at: dt.datetime) -> str | None:
    """Remove the record and its links, keeping who held it (`FORMER_RECORDS`); the person
    it belonged to (None: it had none)."""
    existing = await record(session, patient_id)
    if existing is None:
        return None
    await session.execute(delete(RECORDS).where(RECORDS.c.patient_id == patient_id))
    await session.execute(delete(FORMER_RECORDS).where(FORMER_RECORDS.c.patient_id == patient_id))
    await session.execute(
        FORMER_RECORDS.insert().values(
            patient_id=patient_id, organisation_id=existing.organisation_id, deleted_at=at
        )
    )
    for table in (LINKS, MERGES):
        await session.execute(
            delete(table).where(
                or_(table.c.patient_id == patient_id, table.c.other_patient_id == patient_id)
            )
        )
    return existing.person_id


async def records_of_persons(
    session: AsyncSession, person_ids: Collection[str]
) -> list[StoredRecord]:
    if not person_ids:
        return []
    statement = (
        select(*_RECORD)
        .where(RECORDS.c.person_id.in_(sorted(person_ids)))
        .order_by(RECORDS.c.patient_id)
    )
    return [StoredRecord(*row) for row in await session.execute(statement)]


async def persons_with_kvnrs(session: AsyncSession, kvnrs: Collection[str]) -> set[str]:
    if not kvnrs:
        return set()
    statement = select(RECORDS.c.person_id).where(RECORDS.c.kvnr.in_(sorted(kvnrs)))
    return set((await session.scalars(statement)).all())


async def links_among(session: AsyncSession, patient_ids: Collection[str]) -> list[tuple[str, str]]:
    """The explicit links (a steward's, or a hospital's merge of its own records) whose ends
    are both among `patient_ids`."""
    if not patient_ids:
        return []
    ids = sorted(patient_ids)
    linked, merged = (
        select(table.c.patient_id, table.c.other_patient_id).where(
            table.c.patient_id.in_(ids), table.c.other_patient_id.in_(ids)
        )
        for table in (LINKS, MERGES)
    )
    return [(a, b) for a, b in (await session.execute(linked.union(merged))).all()]


async def merges_of(session: AsyncSession, patient_id: str) -> set[str]:
    """The records that record `patient_id` states it merges with."""
    statement = select(MERGES.c.other_patient_id).where(MERGES.c.patient_id == patient_id)
    return set((await session.scalars(statement)).all())


async def replace_merges(session: AsyncSession, patient_id: str, others: set[str]) -> None:
    """Make `others` the records that record `patient_id` states it merges with."""
    await session.execute(delete(MERGES).where(MERGES.c.patient_id == patient_id))
    if others:
        await session.execute(
            MERGES.insert(), [{"patient_id": patient_id, "other_patient_id": o} for o in others]
        )


async def move_to_person(session: AsyncSession, patient_ids: Iterable[str], person_id: str) -> None:
    ids = sorted(patient_ids)
    await session.execute(
        update(RECORDS)
        .where(RECORDS.c.patient_id.in_(ids), RECORDS.c.person_id != person_id)
        .values(person_id=person_id)
    )


async def add_link(
    session: AsyncSession, pair: tuple[str, str], actor: str, at: dt.datetime
) -> bool:
    """Store the link; False if it was there already."""
    return await _add_pair(session, LINKS, pair, linked_by=actor, linked_at=at)


async def _add_pair(
    session: AsyncSession, table: Table, pair: tuple[str, str], **values: Any
) -> bool:
    """Store a pair of records (the smaller id first) in `table`; False if it is there."""
    existing = select(table.c.patient_id).where(
        table.c.patient_id == pair[0], table.c.other_patient_id == pair[1]
    )
    if (await session.execute(existing)).first() is not None:
        return False
    await session.execute(
        table.insert().values(patient_id=pair[0], other_patient_id=pair[1], **values)
    )
    return True


async def remove_link(session: AsyncSession, pair: tuple[str, str]) -> bool:
    """Remove the link; False if there was none."""
    statement = delete(LINKS).where(
        LINKS.c.patient_id == pair[0], LINKS.c.other_patient_id == pair[1]
    )
    result = await session.execute(statement)
    return bool(getattr(result, "rowcount", 0))


async def persons_of(session: AsyncSession, patient_ids: Collection[str]) -> set[str]:
    if not patient_ids:
        return set()
    statement = select(RECORDS.c.person_id).where(RECORDS.c.patient_id.in_(sorted(patient_ids)))
    return set((await session.scalars(statement)).all())


def same_person(patient: Any) -> Select[tuple[str]]:
    """The Patient records of the person record `patient` (an SQL expression) belongs to."""
    mine = RECORDS.alias("mine")
    return (
        select(RECORDS.c.patient_id)
        .join(mine, mine.c.person_id == RECORDS.c.person_id)
        .where(mine.c.patient_id == patient)
    )


async def add_distinct(
    session: AsyncSession, pair: tuple[str, str], actor: str, at: dt.datetime
) -> bool:
    """Record that the two records are different persons; False if it was recorded."""
    return await _add_pair(session, DISTINCT, pair, decided_by=actor, decided_at=at)
