"""FHIR search: `fhir_string.exact`, each string as written, for `:exact` (which compares
case and accents); and a date's fractions of a second as its precision (a stored
`01:54:34.036778Z` is that microsecond, not the second after it). The string and date rows
of the resources stored before are rebuilt with the index's own code
(`search/extract.py`), as a write of each would make them.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-02 13:00:00.000000
"""

from collections.abc import Sequence
from typing import Any

import orjson
import sqlalchemy as sa
from alembic import op

from medicus.fhir.models import DateIndexRow, StringIndexRow
from medicus.fhir.repository import index_values
from medicus.fhir.search.extract import extract
from medicus.migrations.stored import every_current_resource

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_REBUILT = (StringIndexRow, DateIndexRow)


def upgrade() -> None:
    with op.batch_alter_table("fhir_string", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "exact",
                sa.String(255).with_variant(sa.String(255, collation="C"), "postgresql"),
                nullable=True,
            )
        )
    for batch in every_current_resource():
        _rebuild(batch)


def _rebuild(batch: Sequence[Any]) -> None:
    """The string and date rows of a batch of resources, replaced by those a write makes."""
    connection = op.get_bind()
    rows: dict[type[Any], list[dict[str, Any]]] = {table: [] for table in _REBUILT}
    for rid, resource_type, content in batch:
        extracted = extract(resource_type, orjson.loads(content))
        for table, values in index_values(rid, resource_type, extracted).items():
            if table in rows:
                rows[table] += values
    rids = [row.rid for row in batch]
    for table, values in rows.items():
        index = table.__table__
        connection.execute(index.delete().where(index.c.rid.in_(rids)))
        if values:
            connection.execute(index.insert(), values)


def downgrade() -> None:
    """The date rows stay as rebuilt: earlier versions read them the same way."""
    with op.batch_alter_table("fhir_string", schema=None) as batch_op:
        batch_op.drop_column("exact")
