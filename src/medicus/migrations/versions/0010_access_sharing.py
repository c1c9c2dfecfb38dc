"""Sharing across organisations: `access_consent` (active sharing consents), `access_treatment`
(active Encounters and EpisodesOfCare) and `access_share` (which organisation may see which
person's data held elsewhere, and when), derived from them and the master patient index. The
resources stored before it are read by the background update `access.sharing_facts` as a
write of each would read them today (the tables are derived data and must agree with later
writes), and then every person's shares computed by `access.shares`.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 12:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from medicus.core.db import UTCDateTime
from medicus.migrations.scheduling import schedule

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
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
    op.create_table(
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
    schedule("access.sharing_facts")
    schedule("access.shares", depends_on=("access.mpi_records", "access.sharing_facts"))


def downgrade() -> None:
    op.drop_table("access_share")
    op.drop_table("access_treatment")
    op.drop_table("access_consent")
