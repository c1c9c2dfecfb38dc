"""Tables of the messenger (docs/messenger.md): one-time login tokens, who is listed in the
directory, who blocks or allows whom, the organisations on the federation list, and the
Matrix accounts medicus made (to lock them when their user is suspended). Messages are not
here: they live in Synapse."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Boolean, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from medicus.core.db import Base, UTCDateTime


class LoginTokenRow(Base):
    """A login token medicus signed: usable once, until `expires_at` (Synapse's own check
    accepts a token twice and two minutes late)."""

    __tablename__ = "messenger_login_token"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64))
    issued_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), default=None)
    device_id: Mapped[str | None] = mapped_column(String(64), default=None)
    """The only Matrix device the token may log in (a portal session's), or None: any."""

    __table_args__ = (Index("ix_messenger_login_token_expires", "expires_at"),)


class PortalDeviceRow(Base):
    """The Matrix device a portal login made: medicus logs it out in Synapse when the browser
    session it belongs to ends (logout on any page, expiry, logout everywhere), so that the
    access token the page kept stops working."""

    __tablename__ = "messenger_portal_device"

    device_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64))
    browser_session: Mapped[str] = mapped_column(String(64))
    """The `id_hash` of the browser session."""
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class BackupKeyRow(Base):
    """The decryption key of a user's server-side room-key backup (Matrix's
    `m.megolm_backup.v1.curve25519-aes-sha2`), which medicus keeps for the user's portal
    sessions: each new portal device restores the earlier messages' keys with it. Encrypted
    with the platform's key (`SecretBox`, bound to the user); never leaves medicus but to the
    user's own portal session."""

    __tablename__ = "messenger_backup_key"

    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[str] = mapped_column(String(64))
    """The backup version (Synapse's `/room_keys/version`) the key opens."""
    sealed_key: Mapped[str] = mapped_column(String(255))
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class ListingRow(Base):
    """A member whom their organisation lists in the directory: reachable from other
    organisations."""

    __tablename__ = "messenger_listing"

    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    organisation_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    listed_by: Mapped[str] = mapped_column(String(200))
    listed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class ContactRuleRow(Base):
    """A user's own rule about one contact: `block` (never reaches them) or `allow` (may
    invite them from another organisation although not listed)."""

    __tablename__ = "messenger_contact_rule"

    owner_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    contact: Mapped[str] = mapped_column(String(255), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class FederationRow(Base):
    """An organisation on the platform's federation list: its members may reach and be
    reached across organisations."""

    __tablename__ = "messenger_federation"

    organisation_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    added_by: Mapped[str] = mapped_column(String(200))
    added_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class AccountRow(Base):
    """A Matrix account medicus made for a user, and whether medicus locked it."""

    __tablename__ = "messenger_account"

    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    matrix_id: Mapped[str] = mapped_column(String(255), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    locked: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")


class ServiceRow(Base):
    """A service an organisation lists in the directory ("Kardiologie Rufdienst"), reachable
    at the Matrix account of the member who answers for it (a functional account)."""

    __tablename__ = "messenger_service"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    organisation_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    specialty: Mapped[str | None] = mapped_column(String(200), default=None)
    user_id: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_messenger_service_organisation", "organisation_id"),)


class RoomSubjectRow(Base):
    """What a case room is about: a Patient, or a teleconsultation request (a Task or
    ServiceRequest), in the FHIR hub of the organisation that linked it. Knowing the link grants
    nothing: each member sees it only if `access` lets them read that resource."""

    __tablename__ = "messenger_room_subject"

    room_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    reference: Mapped[str] = mapped_column(String(200))
    organisation_id: Mapped[str] = mapped_column(String(64))
    linked_by: Mapped[str] = mapped_column(String(200))
    linked_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class MediaRow(Base):
    """An attachment uploaded through the Messenger-Proxy: its bytes are an object of `storage`
    (encrypted, replicated, counted against the uploader's organisation's quota); Synapse never
    holds them."""

    __tablename__ = "messenger_media"

    media_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    object_id: Mapped[str] = mapped_column(String(36))
    content_type: Mapped[str] = mapped_column(String(255))
    file_name: Mapped[str | None] = mapped_column(String(255), default=None)
    size: Mapped[int] = mapped_column(BigInteger)
    uploaded_by: Mapped[str] = mapped_column(String(64))
    organisation_id: Mapped[str] = mapped_column(String(64))
    uploaded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
