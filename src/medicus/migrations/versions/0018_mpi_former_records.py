"""Deleted Patient records keep who held them (`mpi_former_record`), so that the hospital's
data protection officer still reads their audit trail. Filled in here for the records
deleted before (their tombstones in `fhir_resource` name the organisation and the time).

Revision ID: 0018
Revises: 0017
Create Date: 2026-11-30 17:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from medicus.core.db import UTCDateTime

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "mpi_former_record",
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("organisation_id", sa.String(length=64), nullable=False),
        sa.Column("deleted_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("patient_id", name=op.f("pk_mpi_former_record")),
    )
    op.execute(
        "INSERT INTO mpi_former_record (patient_id, organisation_id, deleted_at)"
        " SELECT fhir_id, organisation_id, last_updated FROM fhir_resource"
        " WHERE resource_type = 'Patient' AND deleted"
    )


def downgrade() -> None:
    op.drop_table("mpi_former_record")
