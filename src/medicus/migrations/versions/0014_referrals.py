"""Referrals as treatment relations: `access_treatment` says which organisation a fact makes a
treating one (`treating_organisation_id`: an encounter's holder, or the organisation an
active ServiceRequest refers the patient to). The referrals stored before it are read with
the rule's own code (`access.sharing.referred_to`): derived data must agree with later
writes (the shares are recomputed by migration 0020).

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-30 14:30:00.000000
"""

from collections.abc import Sequence
from typing import Any

import orjson
import sqlalchemy as sa
from alembic import op

from medicus.access.sharing import referred_to
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


def downgrade() -> None:
    op.execute("DELETE FROM access_treatment WHERE resource_type = 'ServiceRequest'")
    with op.batch_alter_table("access_treatment") as batch_op:
        batch_op.drop_column("treating_organisation_id")
