"""Master patient index: `mpi_record` (each current Patient record, its KVNR and its person)
and `mpi_link` (explicit links made by MPI stewards). The Patients stored before it are
indexed as a write of each would index them, with the index's own rules
(`access.patients.kvnr_of`, `persons`): the index is derived data, and it must agree with
what the code derives for later writes.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 12:00:00.000000
"""

from collections.abc import Sequence

import orjson
import sqlalchemy as sa
from alembic import op

from medicus.access.patients import kvnr_of, persons
from medicus.core.db import UTCDateTime
from medicus.migrations.stored import current_resources

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BATCH = 1000


def upgrade() -> None:
    records = op.create_table(
        "mpi_record",
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("organisation_id", sa.String(length=64), nullable=False),
        sa.Column("person_id", sa.String(length=64), nullable=False),
        sa.Column("kvnr", sa.String(length=10), nullable=True),
        sa.PrimaryKeyConstraint("patient_id", name=op.f("pk_mpi_record")),
    )
    op.create_index("ix_mpi_record_person", "mpi_record", ["person_id"])
    op.create_index("ix_mpi_record_kvnr", "mpi_record", ["kvnr"])
    op.create_table(
        "mpi_link",
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("other_patient_id", sa.String(length=64), nullable=False),
        sa.Column("linked_by", sa.String(length=200), nullable=False),
        sa.Column("linked_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("patient_id", "other_patient_id", name=op.f("pk_mpi_link")),
    )
    op.create_index("ix_mpi_link_other", "mpi_link", ["other_patient_id"])
    assert records is not None
    _index_stored_patients(records)


def _index_stored_patients(records: sa.Table) -> None:
    """Records of the current Patients (each its own patient since migration 0008)."""
    found = [
        (row.fhir_id, row.organisation_id, kvnr_of(orjson.loads(row.content)))
        for row in current_resources("Patient")
    ]
    person = persons(((patient_id, kvnr) for patient_id, _, kvnr in found), [])
    rows = [
        {
            "patient_id": patient_id,
            "organisation_id": organisation_id,
            "person_id": person[patient_id],
            "kvnr": kvnr,
        }
        for patient_id, organisation_id, kvnr in found
    ]
    for start in range(0, len(rows), _BATCH):
        op.bulk_insert(records, rows[start : start + _BATCH])


def downgrade() -> None:
    op.drop_table("mpi_link")
    op.drop_table("mpi_record")
