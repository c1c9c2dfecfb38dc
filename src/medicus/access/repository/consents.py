"""SQL of the facts access decisions rest on: consents (FHIR Consent, MII Broad Consent's
research terms) and treatment relations, with the records they are about."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from typing import Any, NamedTuple

import orjson
from sqlalchemy import and_, bindparam, delete, exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from medicus.access.models import (
    CONSENTS,
    RECORDS,
    RESEARCH_CONSENTS,
    TREATMENTS,
    ConsentTerms,
    ResearchTerm,
)
from medicus.iam.models import OrganisationRow


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


_HAS_FACTS = select(
    or_(
        *(
            exists().where(table.c.patient_id == bindparam("patient_id"))
            for table in (CONSENTS, TREATMENTS)
        )
    )
)


async def has_facts(session: AsyncSession, patient_id: str) -> bool:
    """Whether a consent or a treatment relation is about Patient record `patient_id` (one
    statement: every new Patient record asks)."""
    return bool(await session.scalar(_HAS_FACTS, {"patient_id": patient_id}))


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
