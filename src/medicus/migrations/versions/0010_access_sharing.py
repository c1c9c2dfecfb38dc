"""Sharing across organisations: `access_consent` (active sharing consents), `access_treatment`
(active Encounters and EpisodesOfCare) and `access_share` (which organisation may see which
person's data held elsewhere, and when), derived from them and the master patient index. The
resources stored before it are read as a write of each would read them, with the rules' own
code (`access.sharing`): the tables are derived data and must agree with later writes. The
shares themselves are computed by the last migration that changed the rules (0020,
`migrations.shares`).

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 12:30:00.000000
"""

from collections.abc import Sequence
from typing import Any

import orjson
import sqlalchemy as sa
from alembic import op

from medicus.access.repository import consent_values
from medicus.access.sharing import consent_terms, is_treatment
from medicus.core.db import UTCDateTime
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
    op.create_table(
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
    _derive_stored(consents, treatments)


def _derive_stored(consents: sa.Table, treatments: sa.Table) -> None:
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


def _insert(table: sa.Table, rows: list[dict[str, Any]]) -> None:
    for start in range(0, len(rows), _BATCH):
        op.bulk_insert(table, rows[start : start + _BATCH])


def downgrade() -> None:
    op.drop_table("access_share")
    op.drop_table("access_treatment")
    op.drop_table("access_consent")
