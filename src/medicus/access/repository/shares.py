"""SQL of what is shared: the persons whose data an organisation may see although others
hold it (derived from consents and treatments), and the disclosures that record when it
gained and lost that view; the conditions of "shared with" inside other queries."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable
from typing import Any, NamedTuple

import orjson
from sqlalchemy import Select, delete, exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from medicus.access.models import (
    DISCLOSURES,
    RECORDS,
    SHARES,
    Share,
)


async def replace_shares(
    session: AsyncSession, person_ids: Collection[str], shares: Iterable[tuple[str, Share]]
) -> None:
    await session.execute(delete(SHARES).where(SHARES.c.person_id.in_(sorted(person_ids))))
    rows = [
        {
            "organisation_id": share.organisation_id,
            "person_id": person_id,
            "valid_from": share.valid_from,
            "valid_until": share.valid_until,
        }
        for person_id, share in shares
    ]
    if rows:
        await session.execute(SHARES.insert(), rows)


class StoredDisclosure(NamedTuple):
    id: int
    holder_organisation_id: str
    patient_id: str
    organisation_id: str
    reasons: dict[str, Any]
    gained_at: dt.datetime
    ended_at: dt.datetime | None


_DISCLOSURE = tuple(DISCLOSURES.c)


def _disclosure(row: Any) -> StoredDisclosure:
    return StoredDisclosure(
        row.id,
        row.holder_organisation_id,
        row.patient_id,
        row.organisation_id,
        orjson.loads(row.reasons),
        row.gained_at,
        row.ended_at,
    )


async def open_disclosures(
    session: AsyncSession, patient_ids: Collection[str]
) -> list[StoredDisclosure]:
    """Whom the data of these records is open to now, and why."""
    if not patient_ids:
        return []
    statement = (
        select(*_DISCLOSURE)
        .where(DISCLOSURES.c.patient_id.in_(sorted(patient_ids)), DISCLOSURES.c.ended_at.is_(None))
        .order_by(DISCLOSURES.c.id)
    )
    return [_disclosure(row) for row in await session.execute(statement)]


async def disclosures_by(
    session: AsyncSession, holder: str, below: int | None, limit: int
) -> list[StoredDisclosure]:
    """The disclosures of the records `holder` holds, newest first, below id `below`."""
    statement = select(*_DISCLOSURE).where(DISCLOSURES.c.holder_organisation_id == holder)
    if below is not None:
        statement = statement.where(DISCLOSURES.c.id < below)
    statement = statement.order_by(DISCLOSURES.c.id.desc()).limit(limit)
    return [_disclosure(row) for row in await session.execute(statement)]


async def add_disclosures(
    session: AsyncSession,
    found: Iterable[tuple[str, str, str, dict[str, Any]]],
    at: dt.datetime,
) -> None:
    """Record that organisations gained sight of records: (holder, record, organisation,
    reasons) each."""
    rows = [
        {
            "holder_organisation_id": holder,
            "patient_id": patient_id,
            "organisation_id": organisation,
            "reasons": orjson.dumps(reasons).decode(),
            "gained_at": at,
            "ended_at": None,
        }
        for holder, patient_id, organisation, reasons in found
    ]
    if rows:
        await session.execute(DISCLOSURES.insert(), rows)


async def end_disclosures(session: AsyncSession, ids: Collection[int], at: dt.datetime) -> None:
    if ids:
        await session.execute(
            update(DISCLOSURES).where(DISCLOSURES.c.id.in_(sorted(ids))).values(ended_at=at)
        )


async def end_disclosures_of(session: AsyncSession, patient_id: str, at: dt.datetime) -> None:
    """End whatever the data of a deleted record was open to."""
    await session.execute(
        update(DISCLOSURES)
        .where(DISCLOSURES.c.patient_id == patient_id, DISCLOSURES.c.ended_at.is_(None))
        .values(ended_at=at)
    )


async def restate_disclosure(session: AsyncSession, id_: int, reasons: dict[str, Any]) -> None:
    """Replace the reasons of an open disclosure (another consent, another treatment)."""
    await session.execute(
        update(DISCLOSURES)
        .where(DISCLOSURES.c.id == id_)
        .values(reasons=orjson.dumps(reasons).decode())
    )


def shared_patients(organisation: Any, now: Any) -> Select[tuple[str]]:
    """The Patient records whose data `organisation` may see although others hold it, at
    `now` (both SQL expressions, bound parameters of the caller's query): the records of the
    persons shared with it."""
    return (
        select(RECORDS.c.patient_id)
        .join(SHARES, SHARES.c.person_id == RECORDS.c.person_id)
        .where(
            SHARES.c.organisation_id == organisation,
            or_(SHARES.c.valid_from.is_(None), SHARES.c.valid_from <= now),
            or_(SHARES.c.valid_until.is_(None), SHARES.c.valid_until > now),
        )
    )


def shared_record(patient: Any, organisation: Any, now: Any) -> Any:
    """Whether the data of Patient record `patient` is shared with `organisation` at `now`,
    checked for one row (a correlated condition: two index lookups per candidate, where
    `shared_patients` lists every such record first)."""
    mine = RECORDS.alias("mine")
    return exists().where(
        mine.c.patient_id == patient,
        SHARES.c.person_id == mine.c.person_id,
        SHARES.c.organisation_id == organisation,
        or_(SHARES.c.valid_from.is_(None), SHARES.c.valid_from <= now),
        or_(SHARES.c.valid_until.is_(None), SHARES.c.valid_until > now),
    )
