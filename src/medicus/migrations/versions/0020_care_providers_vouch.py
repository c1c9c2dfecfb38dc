"""Who may vouch for sharing: only care providers record sharing consents and treatment
relations; a permit names its source document and opens other organisations' data once it
was on record while its recorder treated the person (`access_consent.vouched_at`); every
organisation that gains sight of a record is registered for its holder
(`access_disclosure`). The stored consents are read again by the background update
`access.sharing_facts` (a permit without a source says nothing that can be relied on), and
every person's shares recomputed by `access.shares`. The rules are narrower than before, so
the consents and shares derived under the old ones are removed here: until the updates are
done a person's data is shared with fewer organisations, never with more.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-02 13:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from medicus.core.db import UTCDateTime
from medicus.migrations.scheduling import schedule

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("access_consent", sa.Column("vouched_at", UTCDateTime(), nullable=True))
    op.create_table(
        "access_disclosure",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("holder_organisation_id", sa.String(length=64), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("organisation_id", sa.String(length=64), nullable=False),
        sa.Column("reasons", sa.Text(), nullable=False),
        sa.Column("gained_at", UTCDateTime(), nullable=False),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_disclosure")),
    )
    op.create_index(
        "ix_access_disclosure_holder", "access_disclosure", ["holder_organisation_id", "id"]
    )
    op.create_index(
        "ix_access_disclosure_patient", "access_disclosure", ["patient_id", "organisation_id"]
    )
    op.execute("DELETE FROM access_consent")
    op.execute("DELETE FROM access_share")
    schedule("access.sharing_facts")
    schedule("access.shares", depends_on=("access.mpi_records", "access.sharing_facts"))


def downgrade() -> None:
    op.drop_table("access_disclosure")
    with op.batch_alter_table("access_consent") as batch_op:
        batch_op.drop_column("vouched_at")
