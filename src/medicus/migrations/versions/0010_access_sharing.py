"""Sharing across organisations: `access_consent` (active sharing consents), `access_treatment`
(active Encounters and EpisodesOfCare) and `access_share` (which organisation may see which
person's data held elsewhere, and when), derived from them and the master patient index. The
resources stored before it are read as a write of each would read them, with the rules' own
code (`access.sharing`): the tables are derived data and must agree with later writes.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 12:30:00.000000
"""

from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import orjson
import sqlalchemy as sa
from alembic import op

from medicus.access.repository import (
    StoredConsent,
    StoredRecord,
    consent_values,
    stored_consent,
)
from medicus.access.sharing import consent_terms, is_treatment, shares
from medicus.core.db import UTCDateTime, utc_now
from medicus.migrations.stored import current_resources

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BATCH = 1000


def upgrade() -> None:
    consents = op.create_table(
        "access_consent",
        sa.Column("consent_id", sa.String(length=64), nullable=False),
        sa.Column("organisation_id", sa.String(length=64), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("decision", sa.String(length=10), nullable=False),
        sa.Column("organisations", sa.Text(), nullable=True),
        sa.Column("excluded", sa.Text(), nullable=False),
        sa.Column("valid_from", UTCDateTime(), nullable=True),
        sa.Column("valid_until", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("consent_id", name=op.f("pk_access_consent")),
    )
    op.create_index("ix_access_consent_patient", "access_consent", ["patient_id"])
    treatments = op.create_table(
        "access_treatment",
        sa.Column("resource_type", sa.String(length=64), nullable=False),
        sa.Column("resource_id", sa.String(length=64), nullable=False),
        sa.Column("organisation_id", sa.String(length=64), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("resource_type", "resource_id", name=op.f("pk_access_treatment")),
    )
    op.create_index("ix_access_treatment_patient", "access_treatment", ["patient_id"])
    shares_table = op.create_table(
        "access_share",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("organisation_id", sa.String(length=64), nullable=False),
        sa.Column("person_id", sa.String(length=64), nullable=False),
        sa.Column("valid_from", UTCDateTime(), nullable=True),
        sa.Column("valid_until", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_share")),
    )
    op.create_index(
        "ix_access_share_organisation", "access_share", ["organisation_id", "person_id"]
    )
    op.create_index("ix_access_share_person", "access_share", ["person_id"])
    assert consents is not None
    assert treatments is not None
    assert shares_table is not None
    _derive_stored(consents, treatments, shares_table)


def _derive_stored(consents: sa.Table, treatments: sa.Table, shares_table: sa.Table) -> None:
    consent_rows = []
    for row in current_resources("Consent"):
        terms = consent_terms(orjson.loads(row.content))
        if terms is not None:
            consent_rows.append(
                consent_values(row.fhir_id, row.organisation_id, row.patient_id, terms)
            )
    treatment_rows = [
        {
            "resource_type": resource_type,
            "resource_id": row.fhir_id,
            "organisation_id": row.organisation_id,
            "patient_id": row.patient_id,
        }
        for resource_type in ("Encounter", "EpisodeOfCare")
        for row in current_resources(resource_type)
        if is_treatment(resource_type, orjson.loads(row.content))
    ]
    _insert(consents, consent_rows)
    _insert(treatments, treatment_rows)
    _insert(shares_table, _shares(consent_rows, treatment_rows))


def _shares(
    consent_rows: list[dict[str, Any]], treatment_rows: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The shares of every person, from the facts about their records."""
    consents_of: dict[str, list[StoredConsent]] = {}
    for values in consent_rows:
        consent = stored_consent(SimpleNamespace(**values))
        consents_of.setdefault(consent.patient_id, []).append(consent)
    treating: dict[str, list[tuple[str, str, str]]] = {}
    for values in treatment_rows:
        # (holder, treating organisation, record): an encounter's holder treats.
        organisation = values["organisation_id"]
        fact = (organisation, organisation, values["patient_id"])
        treating.setdefault(values["patient_id"], []).append(fact)
    records = sa.table(
        "mpi_record",
        sa.column("patient_id", sa.String()),
        sa.column("organisation_id", sa.String()),
        sa.column("person_id", sa.String()),
        sa.column("kvnr", sa.String()),
    )
    by_person: dict[str, list[StoredRecord]] = {}
    for row in op.get_bind().execute(sa.select(*records.c)):
        by_person.setdefault(row.person_id, []).append(StoredRecord(*row))
    now = utc_now()
    found: list[dict[str, Any]] = []
    for person_id, members in by_person.items():
        ids = [member.patient_id for member in members]
        person_consents = [c for patient in ids for c in consents_of.get(patient, [])]
        person_treating = [t for patient in ids for t in treating.get(patient, [])]
        found.extend(
            {
                "organisation_id": share.organisation_id,
                "person_id": person_id,
                "valid_from": share.valid_from,
                "valid_until": share.valid_until,
            }
            for share in shares(members, person_consents, person_treating, now)
        )
    return found


def _insert(table: sa.Table, rows: list[dict[str, Any]]) -> None:
    for start in range(0, len(rows), _BATCH):
        op.bulk_insert(table, rows[start : start + _BATCH])


def downgrade() -> None:
    op.drop_table("access_share")
    op.drop_table("access_treatment")
    op.drop_table("access_consent")
