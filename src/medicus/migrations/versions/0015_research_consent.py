"""Research consent: `access_research_consent`, the purposes that active research consents (MII
Broad Consent) permit or deny for a record, and when. The Consents stored before it are read
by the background update `access.sharing_facts` as their writes would read them today:
derived data must agree with later writes. Until it is done a research purpose is permitted
for fewer records, never for more.

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-30 15:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from medicus.core.db import UTCDateTime
from medicus.migrations.scheduling import schedule

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "access_research_consent",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("consent_id", sa.String(length=64), nullable=False),
        sa.Column("organisation_id", sa.String(length=64), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("purpose", sa.String(length=64), nullable=False),
        sa.Column("decision", sa.String(length=10), nullable=False),
        sa.Column("valid_from", UTCDateTime(), nullable=True),
        sa.Column("valid_until", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_research_consent")),
    )
    op.create_index("ix_access_research_consent_consent", "access_research_consent", ["consent_id"])
    op.create_index(
        "ix_access_research_consent_patient", "access_research_consent", ["patient_id", "purpose"]
    )
    schedule("access.sharing_facts")


def downgrade() -> None:
    op.drop_table("access_research_consent")
