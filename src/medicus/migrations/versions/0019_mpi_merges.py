"""A hospital's merges of its own records: `mpi_merge` keeps what each Patient record states
in its `Patient.link` (`replaced-by`, `replaces`) about another record its organisation
holds. Filled in for the stored Patients by the background update `access.mpi_records`,
which joins the merged records' persons as their writes would today; their shares are then
recomputed by `access.shares`.

Revision ID: 0019
Revises: 0018
Create Date: 2026-11-30 18:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from medicus.migrations.scheduling import schedule

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "mpi_merge",
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("other_patient_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("patient_id", "other_patient_id", name=op.f("pk_mpi_merge")),
    )
    op.create_index("ix_mpi_merge_other", "mpi_merge", ["other_patient_id"])
    schedule("access.mpi_records")
    schedule("access.shares", depends_on=("access.mpi_records", "access.sharing_facts"))


def downgrade() -> None:
    op.drop_index("ix_mpi_merge_other", table_name="mpi_merge")
    op.drop_table("mpi_merge")
