"""String rows by their value and then their resource (`ix_fhir_string_lookup` with `rid`),
so that a name search without `_sort`, which comes in the order of the names and then of the
resources (fhir/search/ordering.py), reads its first page straight from the index: with the
value alone, the resources of one name (a family of 12,500 people) were read in full and
sorted before the first 20 were returned.

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-03 08:40:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0027"
down_revision: str | None = "0026"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _lookup(columns: list[str]) -> None:
    op.drop_index("ix_fhir_string_lookup", table_name="fhir_string")
    op.create_index("ix_fhir_string_lookup", "fhir_string", columns)


def upgrade() -> None:
    _lookup(["resource_type", "param", "value", "rid"])


def downgrade() -> None:
    _lookup(["resource_type", "param", "value"])
