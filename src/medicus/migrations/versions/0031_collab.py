"""Collaboration spaces: spaces and members, folders and files with versions, locks,
comments, WebDAV clients' own properties, the activity feed, share links and WebDAV app
passwords (docs/collab.md).

Revision ID: 0031
Revises: 0030
Create Date: 2026-12-03 23:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from medicus.core.db import UTCDateTime

revision: str = "0031"
down_revision: str | None = "0030"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_LIVE = sa.text("deleted_at IS NULL")


def _space_key() -> sa.Column[str]:
    return sa.Column(
        "space_id",
        sa.String(36),
        sa.ForeignKey("collab_space.id", ondelete="CASCADE"),
        nullable=False,
    )


def upgrade() -> None:
    op.create_table(
        "collab_space",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("organisation_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("root_id", sa.String(36), nullable=False),
        sa.Column("trash_days", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("deleted_at", UTCDateTime()),
    )
    op.create_index("ix_collab_space_organisation", "collab_space", ["organisation_id"])
    op.create_table(
        "collab_member",
        sa.Column(
            "space_id",
            sa.String(36),
            sa.ForeignKey("collab_space.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("user_id", sa.String(64), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("added_by", sa.String(64), nullable=False),
        sa.Column("added_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_collab_member_user", "collab_member", ["user_id"])
    op.create_table(
        "collab_node",
        sa.Column("id", sa.String(36), primary_key=True),
        _space_key(),
        sa.Column("parent_id", sa.String(36)),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("name_key", sa.String(255), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("content_type", sa.String(255), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("patient_id", sa.String(64)),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_by", sa.String(64), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("deleted_at", UTCDateTime()),
        sa.Column("deleted_by", sa.String(64)),
        sa.Column("trash_root", sa.String(36)),
        sa.Column("text_content", sa.Text()),
    )
    op.create_index(
        "ux_collab_node_name",
        "collab_node",
        ["parent_id", "name_key"],
        unique=True,
        sqlite_where=_LIVE,
        postgresql_where=_LIVE,
    )
    op.create_index("ix_collab_node_space", "collab_node", ["space_id", "deleted_at"])
    op.create_index("ix_collab_node_trash", "collab_node", ["trash_root"])
    op.create_table(
        "collab_version",
        sa.Column(
            "node_id",
            sa.String(36),
            sa.ForeignKey("collab_node.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("number", sa.Integer(), primary_key=True),
        sa.Column("object_id", sa.String(36), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("content_type", sa.String(255), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("restored_from", sa.Integer()),
    )
    op.create_table(
        "collab_lock",
        sa.Column("token", sa.String(100), primary_key=True),
        sa.Column("root", sa.String(4000), nullable=False),
        sa.Column("space_id", sa.String(36), nullable=False),
        sa.Column("node_id", sa.String(36)),
        sa.Column("principal", sa.String(64), nullable=False),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("depth", sa.String(16), nullable=False),
        sa.Column("owner_xml", sa.Text(), nullable=False),
        sa.Column("timeout_seconds", sa.Integer(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_collab_lock_root", "collab_lock", ["root"])
    op.create_index("ix_collab_lock_node", "collab_lock", ["node_id"])
    op.create_table(
        "collab_comment",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column(
            "node_id",
            sa.String(36),
            sa.ForeignKey("collab_node.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("author", sa.String(64), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_collab_comment_node", "collab_comment", ["node_id", "created_at"])
    op.create_table(
        "collab_property",
        sa.Column(
            "node_id",
            sa.String(36),
            sa.ForeignKey("collab_node.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("name", sa.String(512), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
    )
    op.create_table(
        "collab_activity",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        _space_key(),
        sa.Column("node_id", sa.String(36)),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("summary", sa.String(600), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_collab_activity_space", "collab_activity", ["space_id", "id"])
    op.create_table(
        "collab_share_link",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        _space_key(),
        sa.Column("node_id", sa.String(36), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("password_hash", sa.String(200)),
        sa.Column("max_downloads", sa.Integer()),
        sa.Column("downloads", sa.Integer(), nullable=False),
        sa.Column("revoked_at", UTCDateTime()),
        sa.Column("failed_passwords", sa.Integer(), nullable=False),
        sa.Column("locked_until", UTCDateTime()),
    )
    op.create_index("ix_collab_share_link_space", "collab_share_link", ["space_id"])
    op.create_table(
        "collab_app_password",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("secret_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("organisation_id", sa.String(64), nullable=False),
        sa.Column("label", sa.String(100), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("last_used_at", UTCDateTime()),
        sa.Column("revoked_at", UTCDateTime()),
    )
    op.create_index("ix_collab_app_password_user", "collab_app_password", ["user_id"])


def downgrade() -> None:
    for table in (
        "collab_app_password",
        "collab_share_link",
        "collab_activity",
        "collab_property",
        "collab_comment",
        "collab_lock",
        "collab_version",
        "collab_node",
        "collab_member",
        "collab_space",
    ):
        op.drop_table(table)
