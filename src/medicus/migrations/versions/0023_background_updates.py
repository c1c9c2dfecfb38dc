"""Background updates: `background_update`, the data migrations that the running server
performs in batches (`core.background`), each with its progress and the lease of the process
running it. Revisions from 0008 on schedule them (and make the table on first use); this
one makes it for databases whose revisions ran their data steps inline.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-02 16:30:00.000000
"""

from collections.abc import Sequence

from alembic import op

from medicus.migrations.scheduling import ensure_table

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    ensure_table()


def downgrade() -> None:
    op.drop_table("background_update")
