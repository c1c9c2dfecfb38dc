"""The messenger: one-time login tokens, directory listings and services, contact rules, the
federation list, case rooms' subjects, attachments kept in storage and the Matrix accounts
medicus made (docs/messenger.md).

Revision ID: 0032
Revises: 0031
Create Date: 2026-12-04 12:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from medicus.core.db import UTCDateTime

revision: str = "0032"
down_revision: str | None = "0031"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "messenger_login_token",
        sa.Column("jti", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("issued_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime()),
    )
    op.create_index("ix_messenger_login_token_expires", "messenger_login_token", ["expires_at"])
    op.create_table(
        "messenger_listing",
        sa.Column("user_id", sa.String(64), primary_key=True),
        sa.Column("organisation_id", sa.String(64), primary_key=True),
        sa.Column("listed_by", sa.String(200), nullable=False),
        sa.Column("listed_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "messenger_contact_rule",
        sa.Column("owner_id", sa.String(64), primary_key=True),
        sa.Column("contact", sa.String(255), primary_key=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "messenger_federation",
        sa.Column("organisation_id", sa.String(64), primary_key=True),
        sa.Column("added_by", sa.String(200), nullable=False),
        sa.Column("added_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "messenger_service",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("organisation_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("specialty", sa.String(200)),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_messenger_service_organisation", "messenger_service", ["organisation_id"])
    op.create_table(
        "messenger_room_subject",
        sa.Column("room_id", sa.String(255), primary_key=True),
        sa.Column("reference", sa.String(200), nullable=False),
        sa.Column("organisation_id", sa.String(64), nullable=False),
        sa.Column("linked_by", sa.String(200), nullable=False),
        sa.Column("linked_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "messenger_media",
        sa.Column("media_id", sa.String(64), primary_key=True),
        sa.Column("object_id", sa.String(36), nullable=False),
        sa.Column("content_type", sa.String(255), nullable=False),
        sa.Column("file_name", sa.String(255)),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("uploaded_by", sa.String(64), nullable=False),
        sa.Column("organisation_id", sa.String(64), nullable=False),
        sa.Column("uploaded_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "messenger_account",
        sa.Column("user_id", sa.String(64), primary_key=True),
        sa.Column("matrix_id", sa.String(255), nullable=False, unique=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("locked", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    for table in (
        "messenger_account",
        "messenger_media",
        "messenger_room_subject",
        "messenger_service",
        "messenger_federation",
        "messenger_contact_rule",
        "messenger_listing",
        "messenger_login_token",
    ):
        op.drop_table(table)
