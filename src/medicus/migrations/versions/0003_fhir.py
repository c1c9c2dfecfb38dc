"""FHIR resources: the current version of each, every version written, and the derived
search index (tokens, strings, references, dates).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 21:02:43.316017
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "fhir_date",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("rid", sa.BigInteger(), nullable=False),
        sa.Column("resource_type", sa.String(length=64), nullable=False),
        sa.Column("param", sa.String(length=100), nullable=False),
        sa.Column("low", sa.DateTime(timezone=True), nullable=False),
        sa.Column("high", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fhir_date")),
    )
    with op.batch_alter_table("fhir_date", schema=None) as batch_op:
        batch_op.create_index(
            "ix_fhir_date_lookup", ["resource_type", "param", "low", "high"], unique=False
        )
        batch_op.create_index("ix_fhir_date_rid", ["rid"], unique=False)

    op.create_table(
        "fhir_reference",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("rid", sa.BigInteger(), nullable=False),
        sa.Column("resource_type", sa.String(length=64), nullable=False),
        sa.Column("param", sa.String(length=100), nullable=False),
        sa.Column("target_type", sa.String(length=64), nullable=False),
        sa.Column("target_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fhir_reference")),
    )
    with op.batch_alter_table("fhir_reference", schema=None) as batch_op:
        batch_op.create_index(
            "ix_fhir_reference_lookup",
            ["resource_type", "param", "target_id", "target_type"],
            unique=False,
        )
        batch_op.create_index("ix_fhir_reference_rid", ["rid"], unique=False)

    op.create_table(
        "fhir_resource",
        sa.Column(
            "rid",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("resource_type", sa.String(length=64), nullable=False),
        sa.Column("fhir_id", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("last_updated", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("organisation_id", sa.String(length=64), nullable=False),
        sa.Column("content", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("rid", name=op.f("pk_fhir_resource")),
        sa.UniqueConstraint("resource_type", "fhir_id", name="uq_fhir_resource_type_id"),
    )
    with op.batch_alter_table("fhir_resource", schema=None) as batch_op:
        batch_op.create_index(
            "ix_fhir_resource_organisation", ["organisation_id", "resource_type"], unique=False
        )

    op.create_table(
        "fhir_string",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("rid", sa.BigInteger(), nullable=False),
        sa.Column("resource_type", sa.String(length=64), nullable=False),
        sa.Column("param", sa.String(length=100), nullable=False),
        sa.Column("value", sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fhir_string")),
    )
    with op.batch_alter_table("fhir_string", schema=None) as batch_op:
        batch_op.create_index(
            "ix_fhir_string_lookup", ["resource_type", "param", "value"], unique=False
        )
        batch_op.create_index("ix_fhir_string_rid", ["rid"], unique=False)

    op.create_table(
        "fhir_token",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("rid", sa.BigInteger(), nullable=False),
        sa.Column("resource_type", sa.String(length=64), nullable=False),
        sa.Column("param", sa.String(length=100), nullable=False),
        sa.Column("system", sa.String(length=255), nullable=True),
        sa.Column("code", sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fhir_token")),
    )
    with op.batch_alter_table("fhir_token", schema=None) as batch_op:
        batch_op.create_index(
            "ix_fhir_token_lookup", ["resource_type", "param", "code", "system"], unique=False
        )
        batch_op.create_index("ix_fhir_token_rid", ["rid"], unique=False)

    op.create_table(
        "fhir_version",
        sa.Column("rid", sa.BigInteger(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("last_updated", sa.DateTime(timezone=True), nullable=False),
        sa.Column("method", sa.String(length=10), nullable=False),
        sa.Column("content", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("rid", "version", name=op.f("pk_fhir_version")),
    )


def downgrade() -> None:
    op.drop_table("fhir_version")
    with op.batch_alter_table("fhir_token", schema=None) as batch_op:
        batch_op.drop_index("ix_fhir_token_rid")
        batch_op.drop_index("ix_fhir_token_lookup")

    op.drop_table("fhir_token")
    with op.batch_alter_table("fhir_string", schema=None) as batch_op:
        batch_op.drop_index("ix_fhir_string_rid")
        batch_op.drop_index("ix_fhir_string_lookup")

    op.drop_table("fhir_string")
    with op.batch_alter_table("fhir_resource", schema=None) as batch_op:
        batch_op.drop_index("ix_fhir_resource_organisation")

    op.drop_table("fhir_resource")
    with op.batch_alter_table("fhir_reference", schema=None) as batch_op:
        batch_op.drop_index("ix_fhir_reference_rid")
        batch_op.drop_index("ix_fhir_reference_lookup")

    op.drop_table("fhir_reference")
    with op.batch_alter_table("fhir_date", schema=None) as batch_op:
        batch_op.drop_index("ix_fhir_date_rid")
        batch_op.drop_index("ix_fhir_date_lookup")

    op.drop_table("fhir_date")
