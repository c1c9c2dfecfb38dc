"""Master patient index: `mpi_record` (each current Patient record, its KVNR and its person)
and `mpi_link` (explicit links made by MPI stewards). The Patients stored before it are
indexed by the background update `access.mpi_records`, as a write of each would index them
today: the index is derived data, and it must agree with what the code derives for later
writes.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 12:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from medicus.core.db import UTCDateTime
from medicus.migrations.scheduling import schedule

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "mpi_record",
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("organisation_id", sa.String(length=64), nullable=False),
        sa.Column("person_id", sa.String(length=64), nullable=False),
        sa.Column("kvnr", sa.String(length=10), nullable=True),
        sa.PrimaryKeyConstraint("patient_id", name=op.f("pk_mpi_record")),
    )
    op.create_index("ix_mpi_record_person", "mpi_record", ["person_id"])
    op.create_index("ix_mpi_record_kvnr", "mpi_record", ["kvnr"])
    op.create_table(
        "mpi_link",
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("other_patient_id", sa.String(length=64), nullable=False),
        sa.Column("linked_by", sa.String(length=200), nullable=False),
        sa.Column("linked_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("patient_id", "other_patient_id", name=op.f("pk_mpi_link")),
    )
    op.create_index("ix_mpi_link_other", "mpi_link", ["other_patient_id"])
    schedule("access.mpi_records")


def downgrade() -> None:
    op.drop_table("mpi_link")
    op.drop_table("mpi_record")
