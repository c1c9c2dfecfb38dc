"""The records of a person straight from the index: `ix_mpi_record_person` becomes
(person_id, patient_id), so that listing the records of the persons shared with an
organisation (every broad search does) reads the index alone, not a table row per record.

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-30 17:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_mpi_record_person", table_name="mpi_record")
    op.create_index("ix_mpi_record_person", "mpi_record", ["person_id", "patient_id"])


def downgrade() -> None:
    op.drop_index("ix_mpi_record_person", table_name="mpi_record")
    op.create_index("ix_mpi_record_person", "mpi_record", ["person_id"])
