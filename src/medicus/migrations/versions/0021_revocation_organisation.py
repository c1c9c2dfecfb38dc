"""The revocation feed can void a user's tokens for one organisation only (a membership
suspended or changed there), leaving those for their other organisations valid.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-02 13:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("revocation", sa.Column("organisation_id", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("revocation") as batch_op:
        batch_op.drop_column("organisation_id")
