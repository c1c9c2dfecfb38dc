"""Tables of FHIR resources: the current version of each, and every version ever written.

Each row knows the organisation that holds it, so that access decisions are part of the query.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Boolean, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from medicus.core.db import Base, UTCDateTime


class FhirResourceRow(Base):
    __tablename__ = "fhir_resource"

    rid: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    resource_type: Mapped[str] = mapped_column(String(64))
    fhir_id: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    last_updated: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    organisation_id: Mapped[str] = mapped_column(String(64))
    content: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        UniqueConstraint("resource_type", "fhir_id", name="uq_fhir_resource_type_id"),
        Index("ix_fhir_resource_organisation", "organisation_id", "resource_type"),
    )


class FhirVersionRow(Base):
    """One version of a resource; a deletion is a version without content."""

    __tablename__ = "fhir_version"

    rid: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_updated: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    method: Mapped[str] = mapped_column(String(10))
    content: Mapped[str | None] = mapped_column(Text)
