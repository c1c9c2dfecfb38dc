"""FHIR: the current version's content is stored once, in `fhir_resource`; its
`fhir_version` row holds none until a newer version replaces it (and takes a copy then).
Rows written before keep a second copy until the background update `fhir.content_once`
reaches them; reads are the same in both states (a current version's content is always
read from its resource). The space comes back to the file with VACUUM (SQLite) or to
PostgreSQL's free space for new rows as vacuum runs.

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-03 05:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from medicus.migrations.scheduling import schedule

revision: str = "0025"
down_revision: str | None = "0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    schedule("fhir.content_once")


def downgrade() -> None:
    """Earlier versions read a current version's content from its version row: copy it
    back, in one statement."""
    op.execute(
        sa.text(
            "UPDATE fhir_version SET content = (SELECT r.content FROM fhir_resource r"
            " WHERE r.rid = fhir_version.rid)"
            " WHERE content IS NULL AND version ="
            " (SELECT r.version FROM fhir_resource r WHERE r.rid = fhir_version.rid)"
        )
    )
    op.execute(sa.text("DELETE FROM background_update WHERE name = 'fhir.content_once'"))
