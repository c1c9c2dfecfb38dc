"""Tables of FHIR resources: the current version of each, and every version ever written.

Each row knows the organisation that holds it, so that access decisions are part of the query.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, NamedTuple, cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Double,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

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
    patient_id: Mapped[str | None] = mapped_column(String(64))
    """The Patient record whose compartment the resource is in (a Patient: itself; None:
    no patient's data, such as a Practitioner), so that decisions about a patient's data
    are conditions of the query (see `patient_of`)."""

    __table_args__ = (
        UniqueConstraint("resource_type", "fhir_id", name="uq_fhir_resource_type_id"),
        Index("ix_fhir_resource_listing", "organisation_id", "resource_type", "rid"),
        Index("ix_fhir_resource_patient", "patient_id"),
        # A broad search (a common code) walks the type's newest rows and stops at a page.
        Index("ix_fhir_resource_type", "resource_type", "rid"),
    )


RESOURCES = cast(Table, FhirResourceRow.__table__)


class StoredResource(NamedTuple):
    """A resource row as searches return it: the columns of `fhir_resource` in their order,
    not an ORM object (building those cost searches more than their queries)."""

    rid: int
    resource_type: str
    fhir_id: str
    version: int
    last_updated: dt.datetime
    deleted: bool
    organisation_id: str
    content: str | None
    patient_id: str | None


class VersionRow(NamedTuple):
    """A version as history and vread answer it: its content the resource's if it is the
    current one (None: a deletion)."""

    version: int
    last_updated: dt.datetime
    content: str | None


LARGEST_VERSION = 2**31 - 1
"""Versions are 32-bit integers (`fhir_version.version`): a larger one is no version."""


class FhirVersionRow(Base):
    """One version of a resource; a deletion is a version without content. The current
    version's content is its resource's (`fhir_resource.content`), stored there only: its
    row here has none until a newer version replaces it (`repository.replace`)."""

    __tablename__ = "fhir_version"

    rid: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_updated: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    method: Mapped[str] = mapped_column(String(10))
    content: Mapped[str | None] = mapped_column(Text)


# Strings searched by prefix compare byte by byte (collation "C" on PostgreSQL, SQLite's
# default), so that `value LIKE 'abc%'` and `value >= 'abc'` are ranges of the btree index.
_BYTEWISE_255 = String(255).with_variant(String(255, collation="C"), "postgresql")
_BYTEWISE_512 = String(512).with_variant(String(512, collation="C"), "postgresql")


class _IndexEntry:
    """Columns every search-index row has: which resource, of which type, for which parameter.
    Index rows are derived data, rebuilt from the resource whenever it is written.

    A composite parameter's components are stored as rows of their own types under
    `code$k`; `grp` numbers the element they came from, so that components pair up.

    The tables have no primary key: a row is only ever found by a search's index or by its
    resource (`rid`) to be replaced, never by a key of its own, whose column and index cost
    a tenth of each table's bytes. The mapping names one (`rid` and `param`) for the ORM."""

    rid: Mapped[int] = mapped_column(BigInteger)
    resource_type: Mapped[str] = mapped_column(String(64))
    param: Mapped[str] = mapped_column(String(100))
    grp: Mapped[int | None] = mapped_column(Integer)

    @declared_attr.directive
    def __mapper_args__(cls) -> dict[str, Any]:
        table = cls.__table__  # type: ignore[attr-defined]
        return {"primary_key": [table.c.rid, table.c.param]}


class TokenIndexRow(_IndexEntry, Base):
    """One token (system, code) a search parameter selects in a current resource."""

    __tablename__ = "fhir_token"

    system: Mapped[str | None] = mapped_column(String(255))
    code: Mapped[str] = mapped_column(String(255))

    __table_args__ = (
        Index("ix_fhir_token_lookup", "resource_type", "param", "code", "system"),
        Index("ix_fhir_token_rid", "rid"),
    )


class StringIndexRow(_IndexEntry, Base):
    """One string of a search parameter: normalised (lower case, no accents) in `value`,
    which searches find by prefix, and as written in `exact`, which `:exact` compares among
    the rows its normalised value finds (so it needs no index of its own)."""

    __tablename__ = "fhir_string"

    value: Mapped[str] = mapped_column(_BYTEWISE_255)
    exact: Mapped[str | None] = mapped_column(_BYTEWISE_255)

    __table_args__ = (
        Index("ix_fhir_string_lookup", "resource_type", "param", "value", "rid"),
        Index("ix_fhir_string_rid", "rid"),
    )


class ReferenceIndexRow(_IndexEntry, Base):
    """One reference (target type and id) of a search parameter."""

    __tablename__ = "fhir_reference"

    target_type: Mapped[str] = mapped_column(String(64))
    target_id: Mapped[str] = mapped_column(String(64))

    __table_args__ = (
        Index("ix_fhir_reference_lookup", "resource_type", "param", "target_id", "target_type"),
        Index("ix_fhir_reference_rid", "rid"),
    )


class DateIndexRow(_IndexEntry, Base):
    """The half-open UTC range [low, high) a date value of a search parameter covers."""

    __tablename__ = "fhir_date"

    low: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    high: Mapped[dt.datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index("ix_fhir_date_lookup", "resource_type", "param", "low", "high"),
        # `ge` and `gt` (high > …) are a range of this index, not of `low`'s.
        Index("ix_fhir_date_high", "resource_type", "param", "high"),
        Index("ix_fhir_date_rid", "rid"),
    )


class NumberIndexRow(_IndexEntry, Base):
    """One number of a search parameter."""

    __tablename__ = "fhir_number"

    value: Mapped[float] = mapped_column(Double)

    __table_args__ = (
        Index("ix_fhir_number_lookup", "resource_type", "param", "value"),
        Index("ix_fhir_number_rid", "rid"),
    )


class QuantityIndexRow(_IndexEntry, Base):
    """A quantity (low = high) or range [low, high] of a search parameter as written, and, if
    its UCUM unit has a plain factor to a base unit (mg, mL, h, mg/dL...), in that base unit
    too (`canonical_*`), so that 5 mg is found by a search for 0.005 g."""

    __tablename__ = "fhir_quantity"

    low: Mapped[float] = mapped_column(Double)
    high: Mapped[float] = mapped_column(Double)
    system: Mapped[str | None] = mapped_column(String(255))
    code: Mapped[str | None] = mapped_column(String(255))
    unit: Mapped[str | None] = mapped_column(String(255))
    canonical_low: Mapped[float | None] = mapped_column(Double)
    canonical_high: Mapped[float | None] = mapped_column(Double)
    canonical_code: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        Index("ix_fhir_quantity_lookup", "resource_type", "param", "low", "high"),
        Index(
            "ix_fhir_quantity_canonical",
            "resource_type",
            "param",
            "canonical_code",
            "canonical_low",
            "canonical_high",
        ),
        Index("ix_fhir_quantity_rid", "rid"),
    )


class UriIndexRow(_IndexEntry, Base):
    """One URI of a search parameter, as written (URIs compare case-sensitively)."""

    __tablename__ = "fhir_uri"

    value: Mapped[str] = mapped_column(_BYTEWISE_512)

    __table_args__ = (
        Index("ix_fhir_uri_lookup", "resource_type", "param", "value"),
        Index("ix_fhir_uri_rid", "rid"),
    )


class PositionIndexRow(_IndexEntry, Base):
    """A position (WGS84 degrees) of a `near` parameter (Location.position), and its point on
    the unit sphere (x, y, z): the index narrows a search to a latitude/longitude box, the
    point gives the exact distance with arithmetic alone (search/geo.py)."""

    __tablename__ = "fhir_position"

    latitude: Mapped[float] = mapped_column(Double)
    longitude: Mapped[float] = mapped_column(Double)
    x: Mapped[float] = mapped_column(Double)
    y: Mapped[float] = mapped_column(Double)
    z: Mapped[float] = mapped_column(Double)

    __table_args__ = (
        Index("ix_fhir_position_lookup", "resource_type", "param", "latitude", "longitude"),
        Index("ix_fhir_position_rid", "rid"),
    )


TOKEN_DATES = Table(
    "fhir_token_date",
    Base.metadata,
    Column("rid", BigInteger, nullable=False),
    Column("resource_type", String(64), nullable=False),
    Column("pair", String(100), nullable=False),
    Column("system", String(255), nullable=False),
    Column("code", String(255), nullable=False),
    Column("low", UTCDateTime(), nullable=False),
    Column("high", UTCDateTime(), nullable=False),
    Index("ix_fhir_token_date_lookup", "resource_type", "pair", "code", "high"),
    Index("ix_fhir_token_date_start", "resource_type", "pair", "code", "low"),
    Index("ix_fhir_token_date_rid", "rid"),
)
"""A token and a date of one resource, for the common pairs of parameters searched together
(`Observation?code=…&date=ge…`, search/pairs.py): one row per token and date of the pair's two
parameters, so that such a search is one range of one index (the code, then the end of the date
for `ge`/`gt`/`eb`, or its start for `lt`/`le`/`eq`/`sa`) instead of every row of the code, each
checked for its date. `pair` names the two parameters (`code+date`); `system` is '' for a token
without one. Derived like the other index rows and rebuilt with them; no primary key (rows are
found by `rid` to be replaced)."""
