"""Matching candidates: `mpi_record` keeps each record's matching traits (normalised family
and given name, birth date, postal code), filled in for stored Patients by the background
update `access.mpi_records` as the index makes them today; `mpi_distinct` keeps the pairs
stewards found to be different persons.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30 15:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from medicus.core.db import UTCDateTime
from medicus.migrations.scheduling import schedule

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TRAITS = ("family", "given", "birth_date", "postal_code")


def upgrade() -> None:
    op.add_column("mpi_record", sa.Column("family", sa.String(length=100), nullable=True))
    op.add_column("mpi_record", sa.Column("given", sa.String(length=100), nullable=True))
    op.add_column("mpi_record", sa.Column("birth_date", sa.String(length=10), nullable=True))
    op.add_column("mpi_record", sa.Column("postal_code", sa.String(length=10), nullable=True))
    op.create_index("ix_mpi_record_birth_date", "mpi_record", ["birth_date"])
    op.create_table(
        "mpi_distinct",
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("other_patient_id", sa.String(length=64), nullable=False),
        sa.Column("decided_by", sa.String(length=200), nullable=False),
        sa.Column("decided_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("patient_id", "other_patient_id", name=op.f("pk_mpi_distinct")),
    )
    schedule("access.mpi_records")


def downgrade() -> None:
    op.drop_table("mpi_distinct")
    op.drop_index("ix_mpi_record_birth_date", table_name="mpi_record")
    for name in reversed(_TRAITS):
        op.drop_column("mpi_record", name)
