"""SQL of the master patient index. Each function is one step of a transaction in `patients`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable, Sequence
from dataclasses import asdict
from typing import Any, NamedTuple

import orjson
from sqlalchemy import Select, Table, and_, delete, exists, literal, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from medicus.access.matching import Traits
from medicus.access.models import (
    BREAK_GLASS,
    CONSENTS,
    DISCLOSURES,
    DISTINCT,
    FORMER_RECORDS,
    LINKS,
    MERGES,
    RECORDS,
    RESEARCH_CONSENTS,
    SHARES,
    TREATMENTS,
    ConsentTerms,
    ResearchTerm,
    Share,
)
from medicus.iam.models import OrganisationRow


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


class StoredConsent(NamedTuple):
    consent_id: str
    organisation_id: str
    patient_id: str
    decision: str
    organisations: frozenset[str] | None
    excluded: frozenset[str]
    valid_from: dt.datetime | None
    valid_until: dt.datetime | None
    vouched: bool = False
    """Whether it was on record while its recorder treated the person (`vouched_at`)."""


class TreatmentFact(NamedTuple):
    """A treatment relation: `holder` holds `resource` (`Encounter/…`, `EpisodeOfCare/…` or a
    referral `ServiceRequest/…`) about its record `patient_id`, making `treating` a treating
    organisation."""

    holder: str
    treating: str
    patient_id: str
    resource: str = ""


async def has_facts(session: AsyncSession, patient_id: str) -> bool:
    """Whether a consent or a treatment relation is about Patient record `patient_id`."""
    for table in (CONSENTS, TREATMENTS):
        statement = select(table.c.patient_id).where(table.c.patient_id == patient_id).limit(1)
        if (await session.execute(statement)).first() is not None:
            return True
    return False


async def persons_of(session: AsyncSession, patient_ids: Collection[str]) -> set[str]:
    if not patient_ids:
        return set()
    statement = select(RECORDS.c.person_id).where(RECORDS.c.patient_id.in_(sorted(patient_ids)))
    return set((await session.scalars(statement)).all())


async def fact_patient(session: AsyncSession, resource_type: str, fhir_id: str) -> str | None:
    """The Patient record a stored consent or treatment fact is about (None: no fact)."""
    if resource_type == "Consent":
        statement = select(CONSENTS.c.patient_id).where(CONSENTS.c.consent_id == fhir_id)
    else:
        statement = select(TREATMENTS.c.patient_id).where(
            TREATMENTS.c.resource_type == resource_type, TREATMENTS.c.resource_id == fhir_id
        )
    return (await session.execute(statement)).scalar_one_or_none()


def consent_values(
    consent_id: str, organisation_id: str, patient_id: str, terms: ConsentTerms
) -> dict[str, Any]:
    """The `access_consent` row of what a consent says."""
    organisations = None if terms.organisations is None else sorted(terms.organisations)
    return {
        "consent_id": consent_id,
        "organisation_id": organisation_id,
        "patient_id": patient_id,
        "decision": terms.decision,
        "organisations": None if organisations is None else orjson.dumps(organisations).decode(),
        "excluded": orjson.dumps(sorted(terms.excluded)).decode(),
        "valid_from": terms.valid_from,
        "valid_until": terms.valid_until,
    }


def stored_consent(row: Any) -> StoredConsent:
    """A consent as `consent_values` stored it."""
    organisations = None if row.organisations is None else orjson.loads(row.organisations)
    return StoredConsent(
        row.consent_id,
        row.organisation_id,
        row.patient_id,
        row.decision,
        None if organisations is None else frozenset(organisations),
        frozenset(orjson.loads(row.excluded)),
        row.valid_from,
        row.valid_until,
        row.vouched_at is not None,
    )


async def put_consent(
    session: AsyncSession,
    consent_id: str,
    organisation_id: str,
    patient_id: str | None,
    terms: ConsentTerms | None,
    replacing: bool = True,
) -> None:
    """Store what a consent says (None, or no patient: it says nothing, forget it), in place
    of what an earlier version said (`replacing`). A new version about the same record
    stays vouched for if the earlier one was."""
    vouched_at = None
    if replacing:
        vouched_at = await session.scalar(
            select(CONSENTS.c.vouched_at).where(
                CONSENTS.c.consent_id == consent_id, CONSENTS.c.patient_id == patient_id
            )
        )
        await session.execute(delete(CONSENTS).where(CONSENTS.c.consent_id == consent_id))
    if terms is not None and patient_id is not None:
        values = consent_values(consent_id, organisation_id, patient_id, terms)
        await session.execute(CONSENTS.insert().values(**values, vouched_at=vouched_at))


async def vouch_for(session: AsyncSession, consent_ids: Collection[str], at: dt.datetime) -> None:
    """Mark consents as on record while their recorder treated the person."""
    if consent_ids:
        await session.execute(
            update(CONSENTS)
            .where(CONSENTS.c.consent_id.in_(sorted(consent_ids)))
            .values(vouched_at=at)
        )


async def of_types(
    session: AsyncSession, organisation_ids: Collection[str], types: Collection[str]
) -> set[str]:
    """Those of `organisation_ids` that are organisations of one of `types` (unknown ones
    are of none)."""
    if not organisation_ids:
        return set()
    statement = select(OrganisationRow.id).where(
        OrganisationRow.id.in_(sorted(organisation_ids)), OrganisationRow.type.in_(sorted(types))
    )
    return set((await session.scalars(statement)).all())


async def put_research_terms(
    session: AsyncSession,
    consent_id: str,
    organisation_id: str,
    patient_id: str | None,
    terms: Sequence[ResearchTerm],
    replacing: bool = True,
) -> None:
    """Store what a research consent permits and denies (nothing, or no patient: forget
    it), in place of what an earlier version said (`replacing`)."""
    if replacing:
        await session.execute(
            delete(RESEARCH_CONSENTS).where(RESEARCH_CONSENTS.c.consent_id == consent_id)
        )
    if terms and patient_id is not None:
        await session.execute(
            RESEARCH_CONSENTS.insert(),
            [
                {
                    "consent_id": consent_id,
                    "organisation_id": organisation_id,
                    "patient_id": patient_id,
                    **term._asdict(),
                }
                for term in terms
            ],
        )


def research_permitted(patient: Any, purpose: Any, now: Any) -> Any:
    """Whether a research consent that the holder of record `patient` recorded about it
    permits `purpose` at `now`, and none denies it then (SQL expressions)."""

    def stated(decision: str) -> Any:
        term = RESEARCH_CONSENTS.alias(decision)
        holder = RECORDS.alias(f"{decision}_holder")
        return exists().where(
            term.c.patient_id == patient,
            term.c.purpose == purpose,
            term.c.decision == decision,
            or_(term.c.valid_from.is_(None), term.c.valid_from <= now),
            or_(term.c.valid_until.is_(None), term.c.valid_until > now),
            holder.c.patient_id == term.c.patient_id,
            holder.c.organisation_id == term.c.organisation_id,
        )

    return and_(stated("permit"), ~stated("deny"))


async def put_treatment(
    session: AsyncSession,
    resource_type: str,
    resource_id: str,
    organisation_id: str,
    treating_organisation_id: str | None,
    patient_id: str | None,
    replacing: bool = True,
) -> None:
    """Store a treatment relation that `organisation_id` holds, making
    `treating_organisation_id` a treating one (None: the resource is none, forget it), in
    place of what an earlier version was (`replacing`)."""
    if replacing:
        await session.execute(
            delete(TREATMENTS).where(
                TREATMENTS.c.resource_type == resource_type,
                TREATMENTS.c.resource_id == resource_id,
            )
        )
    if patient_id is not None and treating_organisation_id is not None:
        await session.execute(
            TREATMENTS.insert().values(
                resource_type=resource_type,
                resource_id=resource_id,
                organisation_id=organisation_id,
                treating_organisation_id=treating_organisation_id,
                patient_id=patient_id,
            )
        )


async def consents_about(
    session: AsyncSession, patient_ids: Collection[str]
) -> list[StoredConsent]:
    if not patient_ids:
        return []
    statement = select(*CONSENTS.c).where(CONSENTS.c.patient_id.in_(sorted(patient_ids)))
    return [stored_consent(row) for row in await session.execute(statement)]


async def treatments_of(session: AsyncSession, patient_ids: Collection[str]) -> list[TreatmentFact]:
    """The treatment relations with these records."""
    if not patient_ids:
        return []
    statement = select(
        TREATMENTS.c.organisation_id,
        TREATMENTS.c.treating_organisation_id,
        TREATMENTS.c.patient_id,
        TREATMENTS.c.resource_type,
        TREATMENTS.c.resource_id,
    ).where(TREATMENTS.c.patient_id.in_(sorted(patient_ids)))
    return [
        TreatmentFact(holder, treating, patient, f"{kind}/{fhir_id}")
        for holder, treating, patient, kind, fhir_id in await session.execute(statement)
    ]


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


def same_person(patient: Any) -> Select[tuple[str]]:
    """The Patient records of the person record `patient` (an SQL expression) belongs to."""
    mine = RECORDS.alias("mine")
    return (
        select(RECORDS.c.patient_id)
        .join(mine, mine.c.person_id == RECORDS.c.person_id)
        .where(mine.c.patient_id == patient)
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


async def add_distinct(
    session: AsyncSession, pair: tuple[str, str], actor: str, at: dt.datetime
) -> bool:
    """Record that the two records are different persons; False if it was recorded."""
    return await _add_pair(session, DISTINCT, pair, decided_by=actor, decided_at=at)
