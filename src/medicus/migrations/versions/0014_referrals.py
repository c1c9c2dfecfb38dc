"""Referrals as treatment relations: `access_treatment` says which organisation a fact makes a
treating one (`treating_organisation_id`: an encounter's holder, or the organisation an
active ServiceRequest refers the patient to). The referrals stored before it are read by
the background update `access.sharing_facts` as their writes would read them today (derived
data must agree with later writes), and the shares recomputed by `access.shares`.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-30 14:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from medicus.migrations.scheduling import schedule

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "access_treatment", sa.Column("treating_organisation_id", sa.String(64), nullable=True)
    )
    op.execute("UPDATE access_treatment SET treating_organisation_id = organisation_id")
    with op.batch_alter_table("access_treatment") as batch_op:
        batch_op.alter_column(
            "treating_organisation_id", existing_type=sa.String(64), nullable=False
        )
    schedule("access.sharing_facts")
    schedule("access.shares", depends_on=("access.mpi_records", "access.sharing_facts"))


def downgrade() -> None:
    op.execute("DELETE FROM access_treatment WHERE resource_type = 'ServiceRequest'")
    with op.batch_alter_table("access_treatment") as batch_op:
        batch_op.drop_column("treating_organisation_id")
