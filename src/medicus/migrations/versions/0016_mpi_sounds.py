"""Matching by sound: `mpi_record.family_sound` keeps the Kölner Phonetik code of each record's
family name (a block of its own for the stewards' candidates), computed for the stored
records by the background update `access.mpi_records` as the index does today.

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-30 16:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from medicus.migrations.scheduling import schedule

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("mpi_record", sa.Column("family_sound", sa.String(length=100), nullable=True))
    schedule("access.mpi_records")


def downgrade() -> None:
    op.drop_column("mpi_record", "family_sound")
