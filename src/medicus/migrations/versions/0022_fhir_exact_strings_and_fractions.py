"""FHIR search: `fhir_string.exact`, each string as written, for `:exact` (which compares
case and accents); and a date's fractions of a second as its precision (a stored
`01:54:34.036778Z` is that microsecond, not the second after it). The index rows of the
resources stored before are rebuilt by the background update `fhir.search_index`, as a
write of each would make them today; until it reaches a resource, `:exact` does not find
its strings and its dates keep their former ranges.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-02 13:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from medicus.migrations.scheduling import schedule

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("fhir_string", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "exact",
                sa.String(255).with_variant(sa.String(255, collation="C"), "postgresql"),
                nullable=True,
            )
        )
    schedule("fhir.search_index")


def downgrade() -> None:
    """The date rows stay as rebuilt: earlier versions read them the same way."""
    with op.batch_alter_table("fhir_string", schema=None) as batch_op:
        batch_op.drop_column("exact")
