"""Audit entries name the Patient records they concern (`patients`, covered by the hash of
entries that have it), indexed by patient in `audit_patient`, and by organisation.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30 14:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("audit_pending", sa.Column("patients", sa.Text(), nullable=True))
    op.add_column("audit_entry", sa.Column("patients", sa.Text(), nullable=True))
    op.create_index("ix_audit_entry_organisation", "audit_entry", ["organisation", "seq"])
    op.create_table(
        "audit_patient",
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.PrimaryKeyConstraint("patient_id", "seq", name=op.f("pk_audit_patient")),
    )


def downgrade() -> None:
    op.drop_table("audit_patient")
    op.drop_index("ix_audit_entry_organisation", table_name="audit_entry")
    # Plain ALTER TABLE (SQLite 3.35+ too): copying the table would drop its triggers.
    op.drop_column("audit_entry", "patients")
    op.drop_column("audit_pending", "patients")
