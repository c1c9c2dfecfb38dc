"""Tables of the audit trail.

An audited request inserts its entry into `audit_pending`, inside the transaction that does the
audited work, so the two commit together and no global lock is taken per request. A sealer
(`AuditSealer`, in any replica) moves pending entries in batches into `audit_entry`, where each
carries its place in the chain and its hash; `audit_head` holds the chain's end. Sealing also
writes `audit_patient`, the entries by the Patient records they concern: a derived index of
the sealed (and hashed) `patients` column, for the access log of a patient.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from medicus.core.db import Base, UTCDateTime


class _EntryContent:
    """The content of an entry: what its hash covers."""

    occurred_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(200))
    organisation: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(100))
    target: Mapped[str | None] = mapped_column(String(300))
    outcome: Mapped[str] = mapped_column(String(20))
    client_address: Mapped[str | None] = mapped_column(String(64))
    request_id: Mapped[str | None] = mapped_column(String(128))
    detail: Mapped[str] = mapped_column(Text, default="{}")
    patients: Mapped[str | None] = mapped_column(Text)
    """The Patient records whose data the action concerned, space-separated (None: none)."""


class AuditPendingRow(_EntryContent, Base):
    """An entry written but not yet sealed into the chain."""

    __tablename__ = "audit_pending"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )


class AuditEntryRow(_EntryContent, Base):
    """A sealed entry. `hash` is SHA-256 over `prev_hash` and the canonical content; `seq` is
    its place in the chain. Rows are only ever inserted (the database refuses the rest)."""

    __tablename__ = "audit_entry"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))

    __table_args__ = (
        Index("ix_audit_entry_occurred_at", "occurred_at"),
        Index("ix_audit_entry_actor", "actor"),
        Index("ix_audit_entry_target", "target"),
        Index("ix_audit_entry_organisation", "organisation", "seq"),
    )


class AuditPatientRow(Base):
    """A sealed entry by each Patient record it concerns (its `patients`)."""

    __tablename__ = "audit_patient"

    patient_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)


class AuditHeadRow(Base):
    """The single row that holds the chain's last sequence number and hash. A sealer updates it
    first in its transaction, which serialises sealers on PostgreSQL (row lock) and SQLite
    (database lock) alike: the chain cannot fork, whatever the number of processes."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))
