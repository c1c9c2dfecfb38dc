"""Referrals as treatment relations: `access_treatment` says which organisation a fact makes a
treating one (`treating_organisation_id`: an encounter's holder, or the organisation an
active ServiceRequest refers the patient to). The referrals stored before it are read with
the rule's own code (`access.sharing.referred_to`), and the shares of their persons are
recomputed (`access.sharing.shares`): derived data must agree with later writes.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-30 14:30:00.000000
"""

from collections.abc import Sequence
from typing import Any

import orjson
import sqlalchemy as sa
from alembic import op

from medicus.access.repository import StoredRecord, stored_consent
from medicus.access.sharing import referred_to, shares
from medicus.core.db import UTCDateTime, utc_now
from medicus.migrations.stored import current_resources

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TREATMENTS = sa.table(
    "access_treatment",
    *map(sa.column, ("resource_type", "resource_id", "organisation_id")),
    *map(sa.column, ("treating_organisation_id", "patient_id")),
)


def upgrade() -> None:
    op.add_column(
        "access_treatment", sa.Column("treating_organisation_id", sa.String(64), nullable=True)
    )
    op.execute("UPDATE access_treatment SET treating_organisation_id = organisation_id")
    with op.batch_alter_table("access_treatment") as batch_op:
        batch_op.alter_column(
            "treating_organisation_id", existing_type=sa.String(64), nullable=False
        )
    referrals = _stored_referrals()
    if referrals:
        op.bulk_insert(_TREATMENTS, referrals)
        _recompute_shares({row["patient_id"] for row in referrals})


def _stored_referrals() -> list[dict[str, Any]]:
    found = []
    for row in current_resources("ServiceRequest"):
        treating = referred_to(orjson.loads(row.content))
        if treating is not None:
            found.append(
                {
                    "resource_type": "ServiceRequest",
                    "resource_id": row.fhir_id,
                    "organisation_id": row.organisation_id,
                    "treating_organisation_id": treating,
                    "patient_id": row.patient_id,
                }
            )
    return found


def _recompute_shares(patient_ids: set[str]) -> None:
    """Replace the shares of the persons of `patient_ids` by what their facts say now."""
    connection = op.get_bind()
    records = sa.table(
        "mpi_record", *map(sa.column, ("patient_id", "organisation_id", "person_id", "kvnr"))
    )
    persons = {
        row.person_id
        for row in connection.execute(
            sa.select(records.c.person_id).where(records.c.patient_id.in_(sorted(patient_ids)))
        )
    }
    members = [
        StoredRecord(*row)
        for row in connection.execute(
            sa.select(*records.c).where(records.c.person_id.in_(sorted(persons)))
        )
    ]
    ids = sorted(member.patient_id for member in members)
    consents_table = sa.table(
        "access_consent",
        *map(sa.column, ("consent_id", "organisation_id", "patient_id", "decision")),
        *map(sa.column, ("organisations", "excluded")),
        sa.column("valid_from", UTCDateTime()),
        sa.column("valid_until", UTCDateTime()),
    )
    consents = [
        stored_consent(row)
        for row in connection.execute(
            sa.select(*consents_table.c).where(consents_table.c.patient_id.in_(ids))
        )
    ]
    treating = [
        (row.organisation_id, row.treating_organisation_id, row.patient_id)
        for row in connection.execute(
            sa.select(*_TREATMENTS.c).where(_TREATMENTS.c.patient_id.in_(ids))
        )
    ]
    shares_table = sa.table(
        "access_share",
        *map(sa.column, ("organisation_id", "person_id")),
        sa.column("valid_from", UTCDateTime()),
        sa.column("valid_until", UTCDateTime()),
    )
    connection.execute(sa.delete(shares_table).where(shares_table.c.person_id.in_(sorted(persons))))
    now = utc_now()
    rows = [
        {
            "organisation_id": share.organisation_id,
            "person_id": person,
            "valid_from": share.valid_from,
            "valid_until": share.valid_until,
        }
        for person in sorted(persons)
        for share in shares([m for m in members if m.person_id == person], consents, treating, now)
    ]
    if rows:
        op.bulk_insert(shares_table, rows)


def downgrade() -> None:
    op.execute("DELETE FROM access_treatment WHERE resource_type = 'ServiceRequest'")
    with op.batch_alter_table("access_treatment") as batch_op:
        batch_op.drop_column("treating_organisation_id")
