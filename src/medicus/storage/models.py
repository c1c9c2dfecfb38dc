"""Tables of the object storage: what each object is and whose (`stored_object`), where its
sealed bytes lie (`object_replica`), which backends take new objects (`storage_backend`), how
much each organisation may keep (`storage_usage`) and the resumable uploads under way
(`storage_upload`).

The database is the truth about objects: a backend's listing is never trusted to say what
exists. The replica rows are the work queue of the background jobs that catch a replica up,
repair it or delete it; any medicus process may run them."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from medicus.core.db import Base, UTCDateTime


class StoredObjectRow(Base):
    """One object. Its data key is wrapped by its organisation's key (`kek_id`); deleting
    the object empties `wrapped_key`, which makes every copy unreadable (crypto-shredding)."""

    __tablename__ = "stored_object"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    organisation_id: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    content_type: Mapped[str] = mapped_column(String(255))
    file_name: Mapped[str | None] = mapped_column(String(255))
    # The FHIR resource whose access rules govern the object ("Binary/…"), if any.
    owner: Mapped[str | None] = mapped_column(String(130))
    header: Mapped[bytes] = mapped_column(LargeBinary(16))
    kek_id: Mapped[str | None] = mapped_column(String(64))
    wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary(128))
    created_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    deleted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index("ix_stored_object_organisation", "organisation_id", "kek_id"),
        Index("ix_stored_object_owner", "owner"),
    )


class ObjectReplicaRow(Base):
    """One object on one backend. `state`: `present` (written and, as far as known, good),
    `pending` (to be copied there: the backend failed during the upload, or repair or
    migration asked for it), `corrupt` (a read found it damaged or missing; to be
    re-copied), `deleting` (the object was deleted; to be removed there)."""

    __tablename__ = "object_replica"

    object_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("stored_object.id", ondelete="CASCADE"), primary_key=True
    )
    backend: Mapped[str] = mapped_column(String(32), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(String(200))
    verified_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index("ix_object_replica_work", "state", "next_attempt_at"),
        Index("ix_object_replica_backend", "backend", "state"),
    )


class StorageBackendRow(Base):
    """A backend's standing: `draining` while `medicus storage migrate --from` it (new
    objects go elsewhere, its objects are moved off)."""

    __tablename__ = "storage_backend"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    draining: Mapped[bool] = mapped_column(default=False)
    changed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class StorageUsageRow(Base):
    """What an organisation keeps (objects and the announced length of uploads under way)
    and may keep (`quota_bytes`; None: the platform's default)."""

    __tablename__ = "storage_usage"

    organisation_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    used_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    quota_bytes: Mapped[int | None] = mapped_column(BigInteger)


class StorageUploadRow(Base):
    """A resumable (tus) upload under way. Its received bytes are sealed as they arrive into
    a staging file with the upload's own data key; `received` bytes are durable, of which
    the last ones that do not fill a chunk are kept here, sealed (`tail`). When the last
    byte arrives the staging file becomes the object."""

    __tablename__ = "storage_upload"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    organisation_id: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[str | None] = mapped_column(String(64))
    length: Mapped[int] = mapped_column(BigInteger)
    received: Mapped[int] = mapped_column(BigInteger, default=0)
    content_type: Mapped[str] = mapped_column(String(255))
    file_name: Mapped[str | None] = mapped_column(String(255))
    owner: Mapped[str | None] = mapped_column(String(130))
    metadata_json: Mapped[str] = mapped_column(Text, default="{}")
    header: Mapped[bytes] = mapped_column(LargeBinary(16))
    kek_id: Mapped[str] = mapped_column(String(64))
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary(128))
    tail: Mapped[bytes] = mapped_column(LargeBinary, default=b"")
    object_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_storage_upload_expires", "expires_at"),)
