"""Tables of the collaboration spaces: a space and its members (`collab_space`,
`collab_member`), its folders and files (`collab_node`) with their versions (`collab_version`,
whose bytes are stored objects of the space's organisation), locks for editing
(`collab_lock`, shared with WebDAV's locks), comments, the activity feed, share links and the
app passwords that WebDAV clients log in with.

A node in the trash keeps its place (`parent_id`) and is marked `deleted_at`, with
`trash_root` naming the node the user deleted (itself, or the folder it was in), so that
restoring the folder restores what was in it and nothing else; only live nodes hold a name."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from medicus.core.db import Base, UTCDateTime


class SpaceRow(Base):
    __tablename__ = "collab_space"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    organisation_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    root_id: Mapped[str] = mapped_column(String(36))
    trash_days: Mapped[int] = mapped_column(Integer, default=30)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    deleted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_collab_space_organisation", "organisation_id"),)


class MemberRow(Base):
    """A user in a space: `viewer` reads, `editor` also writes, `manager` also decides who
    is a member and shares."""

    __tablename__ = "collab_member"

    space_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("collab_space.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    added_by: Mapped[str] = mapped_column(String(64))
    added_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_collab_member_user", "user_id"),)


class NodeRow(Base):
    """A folder or a file. A file's bytes are its current version's (`version`)."""

    __tablename__ = "collab_node"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    space_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("collab_space.id", ondelete="CASCADE")
    )
    parent_id: Mapped[str | None] = mapped_column(String(36))
    kind: Mapped[str] = mapped_column(String(8))
    name: Mapped[str] = mapped_column(String(255))
    # The name as compared: NFC, case-folded (Windows and macOS clients see "A" and "a" as one).
    name_key: Mapped[str] = mapped_column(String(255))
    version: Mapped[int] = mapped_column(Integer, default=0)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    content_type: Mapped[str] = mapped_column(String(255), default="")
    sha256: Mapped[str] = mapped_column(String(64), default="")
    # A Patient of the space's organisation whose data the file is: `access` decides then.
    patient_id: Mapped[str | None] = mapped_column(String(64))
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    updated_by: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    deleted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    deleted_by: Mapped[str | None] = mapped_column(String(64))
    trash_root: Mapped[str | None] = mapped_column(String(36))
    text_content: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index(
            "ux_collab_node_name",
            "parent_id",
            "name_key",
            unique=True,
            sqlite_where=text("deleted_at IS NULL"),
            postgresql_where=text("deleted_at IS NULL"),
        ),
        Index("ix_collab_node_space", "space_id", "deleted_at"),
        Index("ix_collab_node_trash", "trash_root"),
    )


class VersionRow(Base):
    __tablename__ = "collab_version"

    node_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("collab_node.id", ondelete="CASCADE"), primary_key=True
    )
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    object_id: Mapped[str] = mapped_column(String(36))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    content_type: Mapped[str] = mapped_column(String(255))
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    # The version this one restored, if it is a restore.
    restored_from: Mapped[int | None] = mapped_column(Integer)


class LockRow(Base):
    """A lock on a node (RFC 4918 write lock; the portal's edit lock is one too), keyed by
    its token. `root` is the locked resource's path as WebDAV names it."""

    __tablename__ = "collab_lock"

    token: Mapped[str] = mapped_column(String(100), primary_key=True)
    root: Mapped[str] = mapped_column(String(4000))
    space_id: Mapped[str] = mapped_column(String(36))
    node_id: Mapped[str | None] = mapped_column(String(36))
    principal: Mapped[str] = mapped_column(String(64))
    scope: Mapped[str] = mapped_column(String(16))
    depth: Mapped[str] = mapped_column(String(16))
    owner_xml: Mapped[str] = mapped_column(Text, default="")
    timeout_seconds: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index("ix_collab_lock_root", "root"),
        Index("ix_collab_lock_node", "node_id"),
    )


class CommentRow(Base):
    __tablename__ = "collab_comment"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    node_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("collab_node.id", ondelete="CASCADE")
    )
    author: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_collab_comment_node", "node_id", "created_at"),)


class PropertyRow(Base):
    """A WebDAV client's own property of a file or folder (RFC 4918 "dead" property: Windows'
    timestamps and attributes, a Finder tag), kept as the client sent it (its XML)."""

    __tablename__ = "collab_property"

    node_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("collab_node.id", ondelete="CASCADE"), primary_key=True
    )
    # In Clark notation: {namespace}name.
    name: Mapped[str] = mapped_column(String(512), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class ActivityRow(Base):
    """Who did what in a space (the feed members see; the audit trail has it too)."""

    __tablename__ = "collab_activity"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    space_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("collab_space.id", ondelete="CASCADE")
    )
    node_id: Mapped[str | None] = mapped_column(String(36))
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    summary: Mapped[str] = mapped_column(String(600))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_collab_activity_space", "space_id", "id"),)


class ShareLinkRow(Base):
    """A link to one file or folder for someone without an account; only the token's hash
    is kept."""

    __tablename__ = "collab_share_link"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    space_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("collab_space.id", ondelete="CASCADE")
    )
    node_id: Mapped[str] = mapped_column(String(36))
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    password_hash: Mapped[str | None] = mapped_column(String(200))
    max_downloads: Mapped[int | None] = mapped_column(Integer)
    downloads: Mapped[int] = mapped_column(Integer, default=0)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    # Wrong passwords in a row; at the limit the link refuses passwords until `locked_until`.
    failed_passwords: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_collab_share_link_space", "space_id"),)


class AppPasswordRow(Base):
    """A password for one device's WebDAV client, for one membership of its user. It is
    random (160 bits), so its SHA-256 is kept and looked up, as for other bearer values."""

    __tablename__ = "collab_app_password"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[str] = mapped_column(String(64))
    organisation_id: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_collab_app_password_user", "user_id"),)
