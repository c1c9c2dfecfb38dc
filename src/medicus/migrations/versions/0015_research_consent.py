"""Research consent: `access_research_consent`, the purposes that active research consents (MII
Broad Consent) permit or deny for a record, and when. The Consents stored before it are read
with the rule's own code (`access.research.research_terms`): derived data must agree with
later writes.

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-30 15:00:00.000000
"""

from collections.abc import Sequence

import orjson
import sqlalchemy as sa
from alembic import op

from medicus.access.research import research_terms
from medicus.core.db import UTCDateTime
from medicus.migrations.stored import current_resources

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    table = op.create_table(
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
    assert table is not None
    rows = [
        {
            "consent_id": row.fhir_id,
            "organisation_id": row.organisation_id,
            "patient_id": row.patient_id,
            **term._asdict(),
        }
        for row in current_resources("Consent")
        for term in research_terms(orjson.loads(row.content))
    ]
    if rows:
        op.bulk_insert(table, rows)


def downgrade() -> None:
    op.drop_table("access_research_consent")
