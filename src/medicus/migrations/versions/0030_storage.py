"""Object storage: objects, their replicas on the backends, the backends' standing, each
organisation's usage and quota, and the resumable uploads under way (docs/storage.md).

Revision ID: 0030
Revises: 0029
Create Date: 2026-12-03 17:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from medicus.core.db import UTCDateTime

revision: str = "0030"
down_revision: str | None = "0029"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "stored_object",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("organisation_id", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("content_type", sa.String(255), nullable=False),
        sa.Column("file_name", sa.String(255)),
        sa.Column("owner", sa.String(130)),
        sa.Column("header", sa.LargeBinary(16), nullable=False),
        sa.Column("kek_id", sa.String(64)),
        sa.Column("wrapped_key", sa.LargeBinary(128)),
        sa.Column("created_by", sa.String(64)),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("deleted_at", UTCDateTime()),
    )
    op.create_index("ix_stored_object_organisation", "stored_object", ["organisation_id", "kek_id"])
    op.create_index("ix_stored_object_owner", "stored_object", ["owner"])
    op.create_table(
        "object_replica",
        sa.Column(
            "object_id",
            sa.String(36),
            sa.ForeignKey("stored_object.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("backend", sa.String(32), primary_key=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
        sa.Column("last_error", sa.String(200)),
        sa.Column("verified_at", UTCDateTime()),
    )
    op.create_index("ix_object_replica_work", "object_replica", ["state", "next_attempt_at"])
    op.create_index("ix_object_replica_backend", "object_replica", ["backend", "state"])
    op.create_table(
        "storage_backend",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("draining", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("changed_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "storage_usage",
        sa.Column("organisation_id", sa.String(64), primary_key=True),
        sa.Column("used_bytes", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("quota_bytes", sa.BigInteger()),
    )
    op.create_table(
        "storage_upload",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("organisation_id", sa.String(64), nullable=False),
        sa.Column("created_by", sa.String(64)),
        sa.Column("length", sa.BigInteger(), nullable=False),
        sa.Column("received", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("content_type", sa.String(255), nullable=False),
        sa.Column("file_name", sa.String(255)),
        sa.Column("owner", sa.String(130)),
        sa.Column("metadata_json", sa.Text(), nullable=False, server_default="{}"),
        sa.Column("header", sa.LargeBinary(16), nullable=False),
        sa.Column("kek_id", sa.String(64), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(128), nullable=False),
        sa.Column("tail", sa.LargeBinary(), nullable=False, server_default=sa.text("''")),
        sa.Column("object_id", sa.String(36)),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_storage_upload_expires", "storage_upload", ["expires_at"])


def downgrade() -> None:
    for table in (
        "storage_upload",
        "storage_usage",
        "storage_backend",
        "object_replica",
        "stored_object",
    ):
        op.drop_table(table)
