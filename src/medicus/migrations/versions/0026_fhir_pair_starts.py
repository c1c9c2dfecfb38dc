"""Pair rows by the start of their date (`ix_fhir_token_date_start`), so that a code or status
searched with an `lt`, `le`, `eq` or `sa` date is one index range too, as `ge`/`gt` are by the
date's end (search/pairs.py). Before, such a search started from the date's own rows, whose
statistics mix every date parameter of every type, and walked the type's newest resources
(15,938 rows read for a page of 20 on 20,000 Observations).

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-03 06:10:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0026"
down_revision: str | None = "0025"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_fhir_token_date_start", "fhir_token_date", ["resource_type", "pair", "code", "low"]
    )


def downgrade() -> None:
    op.drop_index("ix_fhir_token_date_start", table_name="fhir_token_date")
