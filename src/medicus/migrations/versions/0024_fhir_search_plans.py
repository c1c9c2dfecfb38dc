"""FHIR search plans that hold: the type's resources by row id (`ix_fhir_resource_type`, which
broad searches walk newest first), dates by their end (`ix_fhir_date_high`, the range of
`ge`/`gt`), and on PostgreSQL extended statistics on the index tables' columns that depend
on each other (a parameter's name and its values), so that the estimate of one code or one
reference is that of the code, not the product of independent columns.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-03 05:30:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATISTICS = {
    "st_fhir_token_value": ("fhir_token", "resource_type, param, code, system"),
    "st_fhir_reference_value": ("fhir_reference", "resource_type, param, target_type"),
    "st_fhir_string_param": ("fhir_string", "resource_type, param"),
    "st_fhir_date_param": ("fhir_date", "resource_type, param"),
}


def upgrade() -> None:
    op.create_index("ix_fhir_resource_type", "fhir_resource", ["resource_type", "rid"])
    op.create_index("ix_fhir_date_high", "fhir_date", ["resource_type", "param", "high"])
    if op.get_bind().dialect.name == "postgresql":
        for name, (table, columns) in STATISTICS.items():
            op.execute(f"CREATE STATISTICS {name} (dependencies, mcv) ON {columns} FROM {table}")
            op.execute(f"ANALYZE {table}")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name in STATISTICS:
            op.execute(f"DROP STATISTICS IF EXISTS {name}")
    op.drop_index("ix_fhir_date_high", table_name="fhir_date")
    op.drop_index("ix_fhir_resource_type", table_name="fhir_resource")
