"""FHIR resources: the organisation's resources of a type in row-id order, so that a search
without a selective parameter (`GET /fhir/Practitioner`) reads its first page from the index
instead of sorting every resource of that type (the default order is newest first).

Replaces `ix_fhir_resource_organisation` (organisation, type). On PostgreSQL the new index is
built concurrently: writes go on while a large table is indexed.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 02:20:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = ["organisation_id", "resource_type", "rid"]


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            op.create_index(
                "ix_fhir_resource_listing",
                "fhir_resource",
                _COLUMNS,
                postgresql_concurrently=True,
                if_not_exists=True,
            )
            op.drop_index(
                "ix_fhir_resource_organisation",
                table_name="fhir_resource",
                postgresql_concurrently=True,
                if_exists=True,
            )
        return
    op.create_index("ix_fhir_resource_listing", "fhir_resource", _COLUMNS)
    op.drop_index("ix_fhir_resource_organisation", table_name="fhir_resource")


def downgrade() -> None:
    op.create_index(
        "ix_fhir_resource_organisation", "fhir_resource", ["organisation_id", "resource_type"]
    )
    op.drop_index("ix_fhir_resource_listing", table_name="fhir_resource")
