"""Tables of the audit trail: append-only entries and the head of their hash chain."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from medicus.core.db import Base, UTCDateTime


class AuditEntryRow(Base):
    """One audit entry. `hash` is SHA-256 over `prev_hash` and the entry's canonical content;
    `seq` is its place in the chain. Rows are only ever inserted."""

    __tablename__ = "audit_entry"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    occurred_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(200))
    organisation: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(100))
    target: Mapped[str | None] = mapped_column(String(300))
    outcome: Mapped[str] = mapped_column(String(20))
    client_address: Mapped[str | None] = mapped_column(String(64))
    request_id: Mapped[str | None] = mapped_column(String(128))
    detail: Mapped[str] = mapped_column(Text, default="{}")
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))

    __table_args__ = (
        Index("ix_audit_entry_occurred_at", "occurred_at"),
        Index("ix_audit_entry_actor", "actor"),
        Index("ix_audit_entry_target", "target"),
    )


class AuditHeadRow(Base):
    """The single row that holds the chain's last sequence number and hash. Writers update it
    first in their transaction, which serialises them on PostgreSQL (row lock) and SQLite
    (database lock) alike: the chain cannot fork, whatever the number of processes."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))
