"""FHIR search: index tables for numbers, quantities (as written and in their base unit) and
URIs, and `grp` on every index table, pairing the components of composite parameters.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 16:17:03.038765
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _bytewise(length: int) -> sa.types.TypeEngine[str]:
    """Strings searched by prefix compare byte by byte (collation "C" on PostgreSQL)."""
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("fhir_string", "value", type_=_bytewise(255), existing_type=sa.String(255))
    op.create_table(
        "fhir_number",
        sa.Column("value", sa.Double(), nullable=False),
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("rid", sa.BigInteger(), nullable=False),
        sa.Column("resource_type", sa.String(length=64), nullable=False),
        sa.Column("param", sa.String(length=100), nullable=False),
        sa.Column("grp", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fhir_number")),
    )
    with op.batch_alter_table("fhir_number", schema=None) as batch_op:
        batch_op.create_index(
            "ix_fhir_number_lookup", ["resource_type", "param", "value"], unique=False
        )
        batch_op.create_index("ix_fhir_number_rid", ["rid"], unique=False)

    op.create_table(
        "fhir_quantity",
        sa.Column("low", sa.Double(), nullable=False),
        sa.Column("high", sa.Double(), nullable=False),
        sa.Column("system", sa.String(length=255), nullable=True),
        sa.Column("code", sa.String(length=255), nullable=True),
        sa.Column("unit", sa.String(length=255), nullable=True),
        sa.Column("canonical_low", sa.Double(), nullable=True),
        sa.Column("canonical_high", sa.Double(), nullable=True),
        sa.Column("canonical_code", sa.String(length=64), nullable=True),
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("rid", sa.BigInteger(), nullable=False),
        sa.Column("resource_type", sa.String(length=64), nullable=False),
        sa.Column("param", sa.String(length=100), nullable=False),
        sa.Column("grp", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fhir_quantity")),
    )
    with op.batch_alter_table("fhir_quantity", schema=None) as batch_op:
        batch_op.create_index(
            "ix_fhir_quantity_canonical",
            ["resource_type", "param", "canonical_code", "canonical_low", "canonical_high"],
            unique=False,
        )
        batch_op.create_index(
            "ix_fhir_quantity_lookup", ["resource_type", "param", "low", "high"], unique=False
        )
        batch_op.create_index("ix_fhir_quantity_rid", ["rid"], unique=False)

    op.create_table(
        "fhir_uri",
        sa.Column("value", _bytewise(512), nullable=False),
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("rid", sa.BigInteger(), nullable=False),
        sa.Column("resource_type", sa.String(length=64), nullable=False),
        sa.Column("param", sa.String(length=100), nullable=False),
        sa.Column("grp", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fhir_uri")),
    )
    with op.batch_alter_table("fhir_uri", schema=None) as batch_op:
        batch_op.create_index(
            "ix_fhir_uri_lookup", ["resource_type", "param", "value"], unique=False
        )
        batch_op.create_index("ix_fhir_uri_rid", ["rid"], unique=False)

    with op.batch_alter_table("fhir_date", schema=None) as batch_op:
        batch_op.add_column(sa.Column("grp", sa.Integer(), nullable=True))

    with op.batch_alter_table("fhir_reference", schema=None) as batch_op:
        batch_op.add_column(sa.Column("grp", sa.Integer(), nullable=True))

    with op.batch_alter_table("fhir_string", schema=None) as batch_op:
        batch_op.add_column(sa.Column("grp", sa.Integer(), nullable=True))

    with op.batch_alter_table("fhir_token", schema=None) as batch_op:
        batch_op.add_column(sa.Column("grp", sa.Integer(), nullable=True))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("fhir_string", "value", type_=sa.String(255), existing_type=_bytewise(255))
    with op.batch_alter_table("fhir_token", schema=None) as batch_op:
        batch_op.drop_column("grp")

    with op.batch_alter_table("fhir_string", schema=None) as batch_op:
        batch_op.drop_column("grp")

    with op.batch_alter_table("fhir_reference", schema=None) as batch_op:
        batch_op.drop_column("grp")

    with op.batch_alter_table("fhir_date", schema=None) as batch_op:
        batch_op.drop_column("grp")

    with op.batch_alter_table("fhir_uri", schema=None) as batch_op:
        batch_op.drop_index("ix_fhir_uri_rid")
        batch_op.drop_index("ix_fhir_uri_lookup")

    op.drop_table("fhir_uri")
    with op.batch_alter_table("fhir_quantity", schema=None) as batch_op:
        batch_op.drop_index("ix_fhir_quantity_rid")
        batch_op.drop_index("ix_fhir_quantity_lookup")
        batch_op.drop_index("ix_fhir_quantity_canonical")

    op.drop_table("fhir_quantity")
    with op.batch_alter_table("fhir_number", schema=None) as batch_op:
        batch_op.drop_index("ix_fhir_number_rid")
        batch_op.drop_index("ix_fhir_number_lookup")

    op.drop_table("fhir_number")
