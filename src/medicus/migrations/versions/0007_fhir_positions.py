"""FHIR search: `fhir_position`, the index of Location's `near` (Location.position), and the
positions of the Locations stored before it, so that they are found too. Derived data: the
same rows a write of each Location makes (search/extract.py, search/geo.py); the math is
repeated here so that this migration does not change when the code does.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 10:00:00.000000
"""

import json
import math
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BATCH = 1000


def upgrade() -> None:
    op.create_table(
        "fhir_position",
        sa.Column("latitude", sa.Double(), nullable=False),
        sa.Column("longitude", sa.Double(), nullable=False),
        sa.Column("x", sa.Double(), nullable=False),
        sa.Column("y", sa.Double(), nullable=False),
        sa.Column("z", sa.Double(), nullable=False),
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
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fhir_position")),
    )
    with op.batch_alter_table("fhir_position", schema=None) as batch_op:
        batch_op.create_index(
            "ix_fhir_position_lookup",
            ["resource_type", "param", "latitude", "longitude"],
            unique=False,
        )
        batch_op.create_index("ix_fhir_position_rid", ["rid"], unique=False)
    _index_stored_locations()


def _index_stored_locations() -> None:
    """Position rows of the current Locations, read a batch at a time in row-id order."""
    resources = sa.table(
        "fhir_resource",
        sa.column("rid", sa.BigInteger()),
        sa.column("resource_type", sa.String()),
        sa.column("deleted", sa.Boolean()),
        sa.column("content", sa.Text()),
    )
    positions = sa.table(
        "fhir_position",
        *(sa.column(name) for name in ("rid", "resource_type", "param", "latitude")),
        *(sa.column(name) for name in ("longitude", "x", "y", "z")),
    )
    connection, last = op.get_bind(), 0
    while True:
        batch = connection.execute(
            sa.select(resources.c.rid, resources.c.content)
            .where(
                resources.c.resource_type == "Location",
                resources.c.deleted.is_(False),
                resources.c.content.is_not(None),
                resources.c.rid > last,
            )
            .order_by(resources.c.rid)
            .limit(_BATCH)
        ).all()
        if not batch:
            return
        rows = [row for rid, content in batch if (row := _position_row(rid, content))]
        if rows:
            connection.execute(positions.insert(), rows)
        last = batch[-1].rid


def _position_row(rid: int, content: str) -> dict[str, Any] | None:
    position = json.loads(content).get("position")
    try:
        latitude, longitude = float(position["latitude"]), float(position["longitude"])
    except (KeyError, TypeError, ValueError):
        return None
    if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
        return None
    north, east = math.radians(latitude), math.radians(longitude)
    return {
        "rid": rid,
        "resource_type": "Location",
        "param": "near",
        "latitude": latitude,
        "longitude": longitude,
        "x": math.cos(north) * math.cos(east),
        "y": math.cos(north) * math.sin(east),
        "z": math.sin(north),
    }


def downgrade() -> None:
    with op.batch_alter_table("fhir_position", schema=None) as batch_op:
        batch_op.drop_index("ix_fhir_position_rid")
        batch_op.drop_index("ix_fhir_position_lookup")
    op.drop_table("fhir_position")
