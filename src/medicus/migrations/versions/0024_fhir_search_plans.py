"""FHIR search plans that hold: the type's resources by row id (`ix_fhir_resource_type`, which broad
searches walk newest first), dates by their end (`ix_fhir_date_high`, the range of `ge`/`gt`),
and on PostgreSQL extended statistics on the index tables' columns that depend on each other (a
parameter's name and its values), so that the estimate of one code or one reference is that of
the code, not the product of independent columns. And the rows of the common pairs of a token and
a date searched together (`fhir_token_date`, search/pairs.py), which the background update
`fhir.search_index` fills for the resources stored before; until it has finished, such searches
use the parameters' own rows (search_repository.PairRows). The index tables lose their surrogate
key `id` (a column and an index no statement uses: rows are found by the search indexes, or by
`rid` to be replaced). The same rebuild removes the rows that parameters now answered from
others' rows wrote before (Patient `phonetic`, Observation `code-value-*` components, see
search/parameters.py); until it reaches a resource they are only unused.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-03 05:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from medicus.core.db import UTCDateTime
from medicus.migrations.scheduling import schedule

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX_TABLES = (
    "fhir_token",
    "fhir_string",
    "fhir_reference",
    "fhir_date",
    "fhir_number",
    "fhir_quantity",
    "fhir_uri",
    "fhir_position",
)

STATISTICS = {
    "st_fhir_token_value": ("fhir_token", "resource_type, param, code, system"),
    "st_fhir_reference_value": ("fhir_reference", "resource_type, param, target_type"),
    "st_fhir_string_param": ("fhir_string", "resource_type, param"),
    "st_fhir_date_param": ("fhir_date", "resource_type, param"),
    "st_fhir_token_date_value": ("fhir_token_date", "resource_type, pair, code"),
}


def upgrade() -> None:
    op.create_table(
        "fhir_token_date",
        sa.Column("rid", sa.BigInteger(), nullable=False),
        sa.Column("resource_type", sa.String(length=64), nullable=False),
        sa.Column("pair", sa.String(length=100), nullable=False),
        sa.Column("system", sa.String(length=255), nullable=False),
        sa.Column("code", sa.String(length=255), nullable=False),
        sa.Column("low", UTCDateTime(), nullable=False),
        sa.Column("high", UTCDateTime(), nullable=False),
    )
    op.create_index(
        "ix_fhir_token_date_lookup", "fhir_token_date", ["resource_type", "pair", "code", "high"]
    )
    op.create_index("ix_fhir_token_date_rid", "fhir_token_date", ["rid"])
    op.create_index("ix_fhir_resource_type", "fhir_resource", ["resource_type", "rid"])
    op.create_index("ix_fhir_date_high", "fhir_date", ["resource_type", "param", "high"])
    if op.get_bind().dialect.name == "postgresql":
        for name, (table, columns) in STATISTICS.items():
            op.execute(f"CREATE STATISTICS {name} (dependencies, mcv) ON {columns} FROM {table}")
            op.execute(f"ANALYZE {table}")
    for table in INDEX_TABLES:
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_column("id")
    schedule("fhir.search_index")


def downgrade() -> None:
    for table in INDEX_TABLES:
        if op.get_bind().dialect.name == "postgresql":
            op.execute(f"ALTER TABLE {table} ADD COLUMN id BIGSERIAL PRIMARY KEY")
            continue
        with op.batch_alter_table(table, recreate="always") as batch_op:
            batch_op.add_column(sa.Column("id", sa.Integer(), primary_key=True))
    if op.get_bind().dialect.name == "postgresql":
        for name in STATISTICS:
            op.execute(f"DROP STATISTICS IF EXISTS {name}")
    op.drop_table("fhir_token_date")
    op.drop_index("ix_fhir_date_high", table_name="fhir_date")
    op.drop_index("ix_fhir_resource_type", table_name="fhir_resource")
