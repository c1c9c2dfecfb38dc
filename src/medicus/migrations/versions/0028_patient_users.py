"""Patients as users: a membership (and the invitation that leads to it) in the role `patient`
names the Patient record of the organisation it belongs to (`patient_id`), the record through
which the patient sees their own data in the portal (docs/portal.md, "patients as users").

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-03 14:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0028"
down_revision: str | None = "0027"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for table in ("membership", "invitation"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("patient_id", sa.String(64), nullable=True))


def downgrade() -> None:
    for table in ("membership", "invitation"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("patient_id")
