"""The portal's Matrix devices, logged out when their browser session ends; login tokens bound
to one device (docs/messenger.md).

Revision ID: 0034
Revises: 0033
Create Date: 2026-12-04 16:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from medicus.core.db import UTCDateTime

revision: str = "0034"
down_revision: str | None = "0033"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("messenger_login_token", sa.Column("device_id", sa.String(64)))
    op.create_table(
        "messenger_portal_device",
        sa.Column("device_id", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("browser_session", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("messenger_portal_device")
    with op.batch_alter_table("messenger_login_token") as batch:
        batch.drop_column("device_id")
