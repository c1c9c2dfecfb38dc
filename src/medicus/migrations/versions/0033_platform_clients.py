"""OAuth clients of the platform itself: a client without an owner organisation (the
messenger's Synapse signs users in with medicus's OpenID Connect; docs/messenger.md).

Revision ID: 0033
Revises: 0032
Create Date: 2026-12-04 15:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0033"
down_revision: str | None = "0032"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("oauth_client") as batch:
        batch.alter_column("organisation_id", existing_type=sa.String(64), nullable=True)


def downgrade() -> None:
    op.execute("DELETE FROM oauth_client WHERE organisation_id IS NULL")
    with op.batch_alter_table("oauth_client") as batch:
        batch.alter_column("organisation_id", existing_type=sa.String(64), nullable=False)
