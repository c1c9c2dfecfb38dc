"""FHIR search: Observation's `combo-*` parameters are answered from the rows of their members
(`combo-code` from `code` and `component-code`…) and no longer have rows of their own; remove
the ones written before (about a third of a lab value's index rows). Derived data only: the
searches no longer read them.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 03:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_UNION_ROWS = (
    "combo-code",
    "combo-code:text",
    "combo-code-value-concept$0",
    "combo-code-value-concept$1",
    "combo-code-value-quantity$0",
    "combo-code-value-quantity$1",
    "combo-data-absent-reason",
    "combo-data-absent-reason:text",
    "combo-value-concept",
    "combo-value-concept:text",
    "combo-value-quantity",
)


def upgrade() -> None:
    for table in ("fhir_token", "fhir_string", "fhir_quantity"):
        rows = sa.table(table, sa.column("resource_type"), sa.column("param"))
        op.execute(
            rows.delete().where(
                rows.c.resource_type == "Observation", rows.c.param.in_(_UNION_ROWS)
            )
        )


def downgrade() -> None:
    """Nothing to restore: the rows were derived data, which earlier versions' searches
    would miss only for Observations written since (rebuild their index to get them)."""
