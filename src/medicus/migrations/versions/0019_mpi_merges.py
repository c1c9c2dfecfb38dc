"""A hospital's merges of its own records: `mpi_merge` keeps what each Patient record states
in its `Patient.link` (`replaced-by`, `replaces`) about another record its organisation
holds. Filled in here for the stored Patients with the index's own code
(`access.patients.merged_with`); the merged records' persons are joined, as the index
would have done on their write (their shares are recomputed by migration 0020).

Revision ID: 0019
Revises: 0018
Create Date: 2026-11-30 18:00:00.000000
"""

from collections.abc import Sequence

import orjson
import sqlalchemy as sa
from alembic import op

from medicus.access.patients import merged_with, persons
from medicus.migrations.stored import current_resources

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_RECORDS = sa.table("mpi_record", *map(sa.column, ("patient_id", "organisation_id", "person_id")))
_RECORDS_KVNR = sa.table("mpi_record", *map(sa.column, ("patient_id", "person_id", "kvnr")))
_LINKS = sa.table("mpi_link", *map(sa.column, ("patient_id", "other_patient_id")))
_MERGES = sa.table("mpi_merge", *map(sa.column, ("patient_id", "other_patient_id")))


def upgrade() -> None:
    op.create_table(
        "mpi_merge",
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("other_patient_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("patient_id", "other_patient_id", name=op.f("pk_mpi_merge")),
    )
    op.create_index("ix_mpi_merge_other", "mpi_merge", ["other_patient_id"])
    merges = _stored_merges()
    if merges:
        op.bulk_insert(_MERGES, merges)
        merged = {row[key] for row in merges for key in ("patient_id", "other_patient_id")}
        _join_persons(merged)


def _stored_merges() -> list[dict[str, str]]:
    connection = op.get_bind()
    found = []
    for row in current_resources("Patient"):
        stated = merged_with(orjson.loads(row.content)) - {row.fhir_id}
        if not stated:
            continue
        held = connection.execute(
            sa.select(_RECORDS.c.patient_id).where(
                _RECORDS.c.patient_id.in_(sorted(stated)),
                _RECORDS.c.organisation_id == row.organisation_id,
            )
        )
        found += [{"patient_id": row.fhir_id, "other_patient_id": other} for (other,) in held]
    return found


def _join_persons(merged: set[str]) -> None:
    """Regroup every record of the persons of the `merged` records (merges only join)."""
    connection = op.get_bind()
    records = _RECORDS_KVNR.c
    touched = sa.select(records.person_id).where(records.patient_id.in_(sorted(merged)))
    members = connection.execute(
        sa.select(records.patient_id, records.kvnr).where(records.person_id.in_(touched))
    ).all()
    ids = sorted(patient_id for patient_id, _ in members)
    pairs = [
        tuple(pair)
        for table in (_LINKS, _MERGES)
        for pair in connection.execute(
            sa.select(table.c.patient_id, table.c.other_patient_id).where(
                table.c.patient_id.in_(ids), table.c.other_patient_id.in_(ids)
            )
        )
    ]
    for patient_id, person_id in persons(members, pairs).items():
        connection.execute(
            sa.update(_RECORDS_KVNR)
            .where(records.patient_id == patient_id)
            .values(person_id=person_id)
        )


def downgrade() -> None:
    op.drop_index("ix_mpi_merge_other", table_name="mpi_merge")
    op.drop_table("mpi_merge")
