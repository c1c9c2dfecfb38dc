"""SQL of duplicate detection in the master patient index: the candidate pairs of records of
different persons that share a block (see `access.matching` for how a pair is scored)."""

from __future__ import annotations

from typing import NamedTuple

from sqlalchemy import and_, exists, literal, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from medicus.access.matching import Traits
from medicus.access.models import (
    DISTINCT,
    RECORDS,
)


class MatchTraits(NamedTuple):
    patient_id: str
    organisation_id: str
    traits: Traits


_TRAIT_COLUMNS = ("family", "given", "birth_date", "postal_code", "family_sound")
_MATCHED = 2 + len(_TRAIT_COLUMNS)
"""Columns per record of a pair: its id, its organisation, its traits."""


async def match_blocks(
    session: AsyncSession, after: tuple[str, str] | None, patient_id: str | None, limit: int
) -> list[tuple[MatchTraits, MatchTraits]]:
    """Pairs of records of different persons in one block (the same birth date, and the same
    family name, given name, either swapped, postal code, or family names sounding alike),
    not ruled out by different
    KVNRs or by a steward, in (birth date, id, id) order after the pair `after`; only pairs
    with record `patient_id` if given."""
    one, other = RECORDS.alias("one"), RECORDS.alias("other")
    a, b = one.c, other.c
    shared_trait = or_(
        a.family == b.family,
        a.given == b.given,
        a.family == b.given,
        a.given == b.family,
        a.postal_code == b.postal_code,
        a.family_sound == b.family_sound,
    )
    ruled_out = select(DISTINCT.c.patient_id).where(
        DISTINCT.c.patient_id == a.patient_id, DISTINCT.c.other_patient_id == b.patient_id
    )
    statement = (
        select(
            *(a[name] for name in ("patient_id", "organisation_id", *_TRAIT_COLUMNS)),
            *(b[name] for name in ("patient_id", "organisation_id", *_TRAIT_COLUMNS)),
        )
        .join(other, and_(b.birth_date == a.birth_date, b.patient_id > a.patient_id))
        .where(
            a.birth_date.is_not(None),
            a.person_id != b.person_id,
            shared_trait,
            or_(a.kvnr.is_(None), b.kvnr.is_(None), a.kvnr == b.kvnr),
            ~exists(ruled_out),
        )
    )
    if patient_id is not None:
        birth_date = select(RECORDS.c.birth_date).where(RECORDS.c.patient_id == patient_id)
        statement = statement.where(
            a.birth_date == birth_date.scalar_subquery(),
            or_(a.patient_id == patient_id, b.patient_id == patient_id),
        )
    if after is not None:
        born = select(RECORDS.c.birth_date).where(RECORDS.c.patient_id == after[0])
        statement = statement.where(
            tuple_(a.birth_date, a.patient_id, b.patient_id)
            > tuple_(born.scalar_subquery(), literal(after[0]), literal(after[1]))
        )
    statement = statement.order_by(a.birth_date, a.patient_id, b.patient_id).limit(limit)
    return [
        (
            MatchTraits(row[0], row[1], Traits(*row[2:_MATCHED])),
            MatchTraits(row[_MATCHED], row[_MATCHED + 1], Traits(*row[_MATCHED + 2 :])),
        )
        for row in await session.execute(statement)
    ]
