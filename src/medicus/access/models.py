"""Tables of the master patient index: which Patient records of which organisations are one
person. Derived from the Patient records (their KVNR) and from explicit links that an MPI
steward made; a person is recomputed whenever either changes."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import NamedTuple, cast

from sqlalchemy import BigInteger, Index, Integer, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column

from medicus.core.db import Base, UTCDateTime


class PatientRecordRow(Base):
    """A current Patient record and the person it belongs to. `person_id` is the smallest
    record id of the person's records: deterministic, recomputed when records join or part."""

    __tablename__ = "mpi_record"

    patient_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    organisation_id: Mapped[str] = mapped_column(String(64))
    person_id: Mapped[str] = mapped_column(String(64))
    kvnr: Mapped[str | None] = mapped_column(String(10))
    # Matching traits (`matching.Traits`), for the stewards' candidates.
    family: Mapped[str | None] = mapped_column(String(100))
    given: Mapped[str | None] = mapped_column(String(100))
    birth_date: Mapped[str | None] = mapped_column(String(10))
    postal_code: Mapped[str | None] = mapped_column(String(10))
    family_sound: Mapped[str | None] = mapped_column(String(100))

    __table_args__ = (
        Index("ix_mpi_record_person", "person_id", "patient_id"),
        Index("ix_mpi_record_kvnr", "kvnr"),
        Index("ix_mpi_record_birth_date", "birth_date"),
    )


class PatientLinkRow(Base):
    """An explicit link between two Patient records (the smaller id first): the same person,
    whatever their KVNRs say."""

    __tablename__ = "mpi_link"

    patient_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    other_patient_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    linked_by: Mapped[str] = mapped_column(String(200))
    linked_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_mpi_link_other", "other_patient_id"),)


class DistinctPersonsRow(Base):
    """Two Patient records (the smaller id first) that a steward found to be different
    persons: no longer proposed as a match."""

    __tablename__ = "mpi_distinct"

    patient_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    other_patient_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    decided_by: Mapped[str] = mapped_column(String(200))
    decided_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class MergeRow(Base):
    """Record `patient_id` states in its `Patient.link` that it replaces, or is replaced by,
    record `other_patient_id`, which the same organisation holds (a hospital merging its
    own duplicates): the two are one person, as if linked."""

    __tablename__ = "mpi_merge"

    patient_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    other_patient_id: Mapped[str] = mapped_column(String(64), primary_key=True)

    __table_args__ = (Index("ix_mpi_merge_other", "other_patient_id"),)


class FormerRecordRow(Base):
    """A deleted Patient record and the organisation that held it: it still answers for
    who saw the record's data before (its audit trail, a patient's access request)."""

    __tablename__ = "mpi_former_record"

    patient_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    organisation_id: Mapped[str] = mapped_column(String(64))
    deleted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


RECORDS = cast(Table, PatientRecordRow.__table__)
LINKS = cast(Table, PatientLinkRow.__table__)
DISTINCT = cast(Table, DistinctPersonsRow.__table__)
FORMER_RECORDS = cast(Table, FormerRecordRow.__table__)
MERGES = cast(Table, MergeRow.__table__)


class ConsentRow(Base):
    """A current, active sharing consent (FHIR Consent, scope `patient-privacy`) as far as
    sharing needs it: who holds it, whose record it is about, permit or deny (an objection),
    which organisations it covers (`organisations` None: all participants) and when."""

    __tablename__ = "access_consent"

    consent_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    organisation_id: Mapped[str] = mapped_column(String(64))
    patient_id: Mapped[str] = mapped_column(String(64))
    decision: Mapped[str] = mapped_column(String(10))
    organisations: Mapped[str | None] = mapped_column(Text)
    """A JSON list of organisation ids; None: every participant."""
    excluded: Mapped[str] = mapped_column(Text)
    """A JSON list of organisation ids a nested deny provision excludes."""
    valid_from: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    valid_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    vouched_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    """When the consent was first on record while the care provider that recorded it
    treated the person: from then on a permit opens other organisations' data (None: not
    yet, it opens nothing)."""

    __table_args__ = (Index("ix_access_consent_patient", "patient_id"),)


class ResearchConsentRow(Base):
    """A purpose that a current, active research consent (MII Broad Consent) permits or
    denies for the data of one record, and when (`research`)."""

    __tablename__ = "access_research_consent"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    consent_id: Mapped[str] = mapped_column(String(64))
    organisation_id: Mapped[str] = mapped_column(String(64))
    patient_id: Mapped[str] = mapped_column(String(64))
    purpose: Mapped[str] = mapped_column(String(64))
    decision: Mapped[str] = mapped_column(String(10))
    valid_from: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    valid_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index("ix_access_research_consent_consent", "consent_id"),
        Index("ix_access_research_consent_patient", "patient_id", "purpose"),
    )


class TreatmentRow(Base):
    """A current treatment relation: an active Encounter or EpisodeOfCare of an organisation
    for one of its own Patient records (the holder treats), or an active referral
    (ServiceRequest) an organisation holds for its record, to the treating organisation."""

    __tablename__ = "access_treatment"

    resource_type: Mapped[str] = mapped_column(String(64), primary_key=True)
    resource_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    organisation_id: Mapped[str] = mapped_column(String(64))
    treating_organisation_id: Mapped[str] = mapped_column(String(64))
    patient_id: Mapped[str] = mapped_column(String(64))

    __table_args__ = (Index("ix_access_treatment_patient", "patient_id"),)


class ShareRow(Base):
    """An organisation may see a person's data held elsewhere between `valid_from` and
    `valid_until` (None: open): derived from consents, treatment relations and the master
    patient index, recomputed for a person whenever one of them changes."""

    __tablename__ = "access_share"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    organisation_id: Mapped[str] = mapped_column(String(64))
    person_id: Mapped[str] = mapped_column(String(64))
    valid_from: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    valid_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index("ix_access_share_organisation", "organisation_id", "person_id"),
        Index("ix_access_share_person", "person_id"),
    )


class DisclosureRow(Base):
    """Organisation `organisation_id` may see the data of Patient record `patient_id`, which
    `holder_organisation_id` holds, since `gained_at` (until `ended_at`), for `reasons` (a
    JSON object: the consents and treatment relations that make it so). Derived from the
    shares whenever they are recomputed: the holder's data protection officer reads it, as
    the list of whom its records are open to and as the news of each new one."""

    __tablename__ = "access_disclosure"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    holder_organisation_id: Mapped[str] = mapped_column(String(64))
    patient_id: Mapped[str] = mapped_column(String(64))
    organisation_id: Mapped[str] = mapped_column(String(64))
    reasons: Mapped[str] = mapped_column(Text)
    gained_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index("ix_access_disclosure_holder", "holder_organisation_id", "id"),
        Index("ix_access_disclosure_patient", "patient_id", "organisation_id"),
    )


class BreakGlassRow(Base):
    """A physician opened a person's record without consent or treatment relation, stating
    a reason: until `ends_at` the physician sees the person's data; the organisation's data
    protection officer reviews it afterwards."""

    __tablename__ = "access_break_glass"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    actor: Mapped[str] = mapped_column(String(200))
    organisation_id: Mapped[str] = mapped_column(String(64))
    patient_id: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    reviewed_by: Mapped[str | None] = mapped_column(String(200))
    reviewed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    review_note: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("ix_access_break_glass_actor", "actor", "ends_at"),
        Index("ix_access_break_glass_organisation", "organisation_id", "started_at"),
    )


CONSENTS = cast(Table, ConsentRow.__table__)
TREATMENTS = cast(Table, TreatmentRow.__table__)
SHARES = cast(Table, ShareRow.__table__)
BREAK_GLASS = cast(Table, BreakGlassRow.__table__)
DISCLOSURES = cast(Table, DisclosureRow.__table__)
RESEARCH_CONSENTS = cast(Table, ResearchConsentRow.__table__)


@dataclass(frozen=True)
class ConsentTerms:
    decision: str
    """`permit` or `deny` (an objection)."""
    organisations: frozenset[str] | None
    """The organisations covered; None: every participant."""
    excluded: frozenset[str]
    valid_from: dt.datetime | None
    valid_until: dt.datetime | None


@dataclass(frozen=True)
class Share:
    organisation_id: str
    valid_from: dt.datetime | None
    valid_until: dt.datetime | None


class ResearchTerm(NamedTuple):
    """One purpose a research consent permits or denies, and when."""

    purpose: str
    decision: str
    valid_from: dt.datetime | None
    valid_until: dt.datetime | None
