"""Break-glass: `access_break_glass`, the emergency openings of a person's record by a
physician, with their reason, their end and their review.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30 13:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from medicus.core.db import UTCDateTime

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "access_break_glass",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("organisation_id", sa.String(length=64), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("ends_at", UTCDateTime(), nullable=False),
        sa.Column("reviewed_by", sa.String(length=200), nullable=True),
        sa.Column("reviewed_at", UTCDateTime(), nullable=True),
        sa.Column("review_note", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_break_glass")),
    )
    op.create_index("ix_access_break_glass_actor", "access_break_glass", ["actor", "ends_at"])
    op.create_index(
        "ix_access_break_glass_organisation",
        "access_break_glass",
        ["organisation_id", "started_at"],
    )


def downgrade() -> None:
    op.drop_table("access_break_glass")
