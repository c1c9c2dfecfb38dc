"""Matching by sound: `mpi_record.family_sound` keeps the Kölner Phonetik code of each record's
family name (a block of its own for the stewards' candidates), computed here for the stored
records from their folded family names with the code the index uses
(`access.matching.sound`).

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-30 16:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from medicus.access.matching import sound

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BATCH = 1000
_RECORDS = sa.table(
    "mpi_record",
    sa.column("patient_id", sa.String()),
    sa.column("family", sa.String()),
    sa.column("family_sound", sa.String()),
)


def upgrade() -> None:
    op.add_column("mpi_record", sa.Column("family_sound", sa.String(length=100), nullable=True))
    records = _RECORDS.c
    update = (
        sa.update(_RECORDS)
        .where(records.patient_id == sa.bindparam("record"))
        .values(family_sound=sa.bindparam("code"))
    )
    after = ""
    while True:
        batch = (
            op.get_bind()
            .execute(
                sa.select(records.patient_id, records.family)
                .where(records.family.is_not(None), records.patient_id > after)
                .order_by(records.patient_id)
                .limit(_BATCH)
            )
            .all()
        )
        if not batch:
            return
        op.get_bind().execute(
            update, [{"record": row.patient_id, "code": sound(row.family)} for row in batch]
        )
        after = batch[-1].patient_id


def downgrade() -> None:
    op.drop_column("mpi_record", "family_sound")
