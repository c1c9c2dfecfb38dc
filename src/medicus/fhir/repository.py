"""SQL of FHIR resources and their versions: reads by id, history, writes and their index
rows, conditional matches inside a write. Searches run in search_repository.py.

Over 500 lines on purpose: the current content is stored once (in `fhir_resource`), so the
writes that move it into version rows and the reads that pick it from either place belong
together, with the index rows that each write replaces."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import (
    Table,
    and_,
    bindparam,
    case,
    delete,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from medicus.access.policy import (
    Viewpoint,
    opened_record,
    readable_patients,
    shared_record,
)
from medicus.core.bulk import Batch, insert_tables
from medicus.core.driver import AnySelect, DriverRow
from medicus.fhir.models import (
    RESOURCES,
    TOKEN_DATES,
    DateIndexRow,
    FhirResourceRow,
    FhirVersionRow,
    NumberIndexRow,
    PositionIndexRow,
    QuantityIndexRow,
    ReferenceIndexRow,
    StoredResource,
    StringIndexRow,
    TokenIndexRow,
    UriIndexRow,
    VersionRow,
)
from medicus.fhir.search.extract import IndexRows, has_positions
from medicus.fhir.search.pairs import PAIRS, pair_rows
from medicus.fhir.search.template import Sql, Values


async def resource(
    session: AsyncSession, resource_type: str, fhir_id: str, for_update: bool = False
) -> FhirResourceRow | None:
    statement = (
        select(FhirResourceRow)
        .where(FhirResourceRow.resource_type == resource_type, FhirResourceRow.fhir_id == fhir_id)
        .execution_options(populate_existing=True)
    )
    if for_update and session.get_bind().dialect.name == "postgresql":
        statement = statement.with_for_update()
    return await session.scalar(statement)


def _content_of(version: Any) -> Any:
    """The content of a version row joined with its resource: the resource's own for its
    current version (stored once, see `FhirVersionRow`), else the version row's."""
    return case(
        (version.version == FhirResourceRow.version, FhirResourceRow.content),
        else_=version.content,
    )


async def versions(session: AsyncSession, rid: int, limit: int) -> list[VersionRow]:
    """The resource's versions, newest first."""
    statement = (
        select(FhirVersionRow.version, FhirVersionRow.last_updated, _content_of(FhirVersionRow))
        .join(FhirResourceRow, FhirResourceRow.rid == FhirVersionRow.rid)
        .where(FhirVersionRow.rid == rid)
        .order_by(FhirVersionRow.version.desc())
        .limit(limit)
    )
    return [VersionRow(*row) for row in await session.execute(statement)]


async def targets(
    session: AsyncSession, keys: Collection[tuple[str, str]]
) -> dict[tuple[str, str], FhirResourceRow]:
    """The stored resources of several (type, id) keys in one query (on PostgreSQL locked
    for the transaction, as `resource(for_update=True)` locks one): a transaction bundle
    looks up all its updates' targets at once."""
    by_type: dict[str, list[str]] = {}
    for resource_type, fhir_id in keys:
        by_type.setdefault(resource_type, []).append(fhir_id)
    if not by_type:
        return {}
    statement = (
        select(FhirResourceRow)
        .where(
            or_(
                *(
                    and_(FhirResourceRow.resource_type == kind, FhirResourceRow.fhir_id.in_(ids))
                    for kind, ids in by_type.items()
                )
            )
        )
        .execution_options(populate_existing=True)
    )
    if session.get_bind().dialect.name == "postgresql":
        statement = statement.with_for_update()
    rows = (await session.scalars(statement)).all()
    return {(row.resource_type, row.fhir_id): row for row in rows}


@dataclass(frozen=True)
class Change:
    """A new version of a stored resource (`content` None: a deletion) replacing version
    `expected`, with the index rows of its content (None: deleted, no index)."""

    rid: int
    resource_type: str
    expected: int
    version: int
    last_updated: dt.datetime
    method: str
    content: str | None
    patient_id: str | None
    index: IndexRows | None


_VERSIONS = cast(Table, FhirVersionRow.__table__)
_KEEP_CONTENT = (
    update(_VERSIONS)
    .where(
        _VERSIONS.c.rid.in_(bindparam("rids", expanding=True)),
        _VERSIONS.c.version
        == select(RESOURCES.c.version).where(RESOURCES.c.rid == _VERSIONS.c.rid).scalar_subquery(),
    )
    .values(
        content=select(RESOURCES.c.content)
        .where(RESOURCES.c.rid == _VERSIONS.c.rid)
        .scalar_subquery()
    )
)
"""The current versions' content into their version rows, before newer versions replace
them: the content of the current version is stored in its resource row only."""

DROP_CURRENT_CONTENT = (
    update(_VERSIONS)
    .where(
        _VERSIONS.c.rid.in_(bindparam("rids", expanding=True)),
        _VERSIONS.c.content.is_not(None),
        _VERSIONS.c.version
        == select(RESOURCES.c.version).where(RESOURCES.c.rid == _VERSIONS.c.rid).scalar_subquery(),
    )
    .values(content=None)
)
"""Version rows of the resources `rids` without the current content, which their
resource rows hold (rows written before migration 0025 held it twice)."""

_REPLACE = (
    update(RESOURCES)
    .where(RESOURCES.c.rid == bindparam("b_rid"), RESOURCES.c.version == bindparam("b_expected"))
    .values(
        version=bindparam("b_version"),
        last_updated=bindparam("b_last_updated"),
        deleted=bindparam("b_deleted"),
        content=bindparam("b_content"),
        patient_id=bindparam("b_patient_id"),
    )
)


async def replace(session: AsyncSession, changes: Sequence[Change]) -> bool:
    """Make each change's version the current one, if the stored one is still the one it
    replaces (whose content moves to its version row); write the version rows and replace
    the index rows, a statement per table for all changes (a transaction bundle of PUTs).
    False: a resource changed meanwhile (as far as the driver reports it: the rows were
    locked when read on PostgreSQL, and SQLite writes one transaction at a time)."""
    parameters = [
        {
            "b_rid": change.rid,
            "b_expected": change.expected,
            "b_version": change.version,
            "b_last_updated": change.last_updated,
            "b_deleted": change.content is None,
            "b_content": change.content,
            "b_patient_id": change.patient_id,
        }
        for change in changes
    ]
    rids = [change.rid for change in changes]
    await session.execute(_KEEP_CONTENT, {"rids": rids})
    result = await session.execute(_REPLACE, parameters)
    replaced = getattr(result, "rowcount", -1)
    if replaced not in (-1, None) and replaced != len(changes):
        return False
    versions = [
        {
            "rid": change.rid,
            "version": change.version,
            "last_updated": change.last_updated,
            "method": change.method,
            "content": None,
        }
        for change in changes
    ]
    indexed = [(c.rid, c.resource_type, c.index) for c in changes if c.index is not None]
    kinds = {change.resource_type for change in changes}
    positions = (PositionIndexRow,) if any(map(has_positions, kinds)) else ()
    pairs = (TOKEN_DATES,) if kinds & PAIRS.keys() else ()
    tables = (*_INDEX_TABLES, *positions, *pairs)
    await _reindex(session, rids, indexed, tables, (_VERSIONS, versions))
    return True


async def readable_elsewhere(
    session: AsyncSession, patient_id: str | None, viewpoint: Viewpoint
) -> tuple[bool, bool]:
    """Whether the data of Patient record `patient_id` is shared with the viewpoint's
    organisation, and whether opened by its break-glass."""
    if patient_id is None:
        return False, False
    patient = literal(patient_id)
    statement = select(
        shared_record(patient, viewpoint.organisation_id, viewpoint.at),
        opened_record(patient, viewpoint.actor, viewpoint.at),
    )
    shared, opened = (await session.execute(statement)).one()
    return bool(shared), bool(opened)


async def history(
    session: AsyncSession,
    viewpoint: Viewpoint,
    resource_types: Sequence[str] | None,
    since: dt.datetime | None,
    limit: int,
) -> list[tuple[VersionRow, str, str, str | None]]:
    """Versions of the resources the viewpoint sees (of `resource_types`, or all; deleted
    ones too), newest first, with their type, id and patient. What the caller may see is
    part of the query: what it may not is never read."""
    organisation = FhirResourceRow.organisation_id == viewpoint.organisation_id
    shared = FhirResourceRow.patient_id.in_(
        readable_patients(viewpoint.organisation_id, viewpoint.actor, viewpoint.at)
    )
    statement = (
        select(
            FhirVersionRow.version,
            FhirVersionRow.last_updated,
            _content_of(FhirVersionRow),
            FhirResourceRow.resource_type,
            FhirResourceRow.fhir_id,
            FhirResourceRow.patient_id,
        )
        .join(FhirResourceRow, FhirResourceRow.rid == FhirVersionRow.rid)
        .where(or_(organisation, shared))
    )
    if resource_types is not None:
        statement = statement.where(FhirResourceRow.resource_type.in_(resource_types))
    if since is not None:
        statement = statement.where(FhirVersionRow.last_updated >= since)
    statement = statement.order_by(
        FhirVersionRow.last_updated.desc(), FhirVersionRow.rid, FhirVersionRow.version.desc()
    ).limit(limit)
    return [
        (VersionRow(number, at, content), kind, fhir_id, patient)
        for number, at, content, kind, fhir_id, patient in await session.execute(statement)
    ]


_INDEX_TABLES = (
    TokenIndexRow,
    StringIndexRow,
    ReferenceIndexRow,
    DateIndexRow,
    NumberIndexRow,
    QuantityIndexRow,
    UriIndexRow,
)


def _cut(text: str | None, length: int = 255) -> str | None:
    return text and text[:length]


def _values(
    rows: IndexRows, rid: int, resource_type: str, group: int | None
) -> list[tuple[type[Any], list[dict[str, Any]]]]:
    """The rows of each index table, as column values. Values longer than their columns are
    cut: they still match searches for their beginning. (Each row's dict is built once: a
    bundle has about a thousand of them.)"""
    key = {"rid": rid, "resource_type": resource_type, "grp": group}
    return [
        (
            TokenIndexRow,
            [{**key, "param": p, "system": _cut(s), "code": c[:255]} for p, s, c in rows.tokens],
        ),
        (
            StringIndexRow,
            [{**key, "param": p, "value": v[:255], "exact": e[:255]} for p, v, e in rows.strings],
        ),
        (
            ReferenceIndexRow,
            [
                {**key, "param": p, "target_type": t[:64], "target_id": i[:64]}
                for p, t, i in rows.references
            ],
        ),
        (DateIndexRow, [{**key, "param": p, "low": lo, "high": hi} for p, lo, hi in rows.dates]),
        (NumberIndexRow, [{**key, "param": p, "value": v} for p, v in rows.numbers]),
        (
            QuantityIndexRow,
            [
                {
                    **key,
                    "param": p,
                    "low": q.low,
                    "high": q.high,
                    "system": _cut(q.system),
                    "code": _cut(q.code),
                    "unit": _cut(q.unit),
                    "canonical_low": q.canonical and q.canonical[0],
                    "canonical_high": q.canonical and q.canonical[1],
                    "canonical_code": q.canonical and q.canonical[2][:64],
                }
                for p, q in rows.quantities
            ],
        ),
        (UriIndexRow, [{**key, "param": p, "value": v[:512]} for p, v in rows.uris]),
        (
            PositionIndexRow,
            [
                {**key, "param": p, "latitude": la, "longitude": lo, "x": x, "y": y, "z": z}
                for p, la, lo, x, y, z in rows.positions
            ],
        ),
    ]


def index_values(
    rid: int, resource_type: str, rows: IndexRows
) -> dict[type[Any] | Table, list[dict[str, Any]]]:
    """The index rows of resource `rid` as column values by table; the rows of each composite
    element carry the element's number in `grp`."""
    batches = _values(rows, rid, resource_type, None)
    for number, group in enumerate(rows.groups):
        batches += _values(group, rid, resource_type, number)
    merged: dict[type[Any] | Table, list[dict[str, Any]]] = {}
    for table, values in batches:
        if values:
            merged.setdefault(table, []).extend(values)
    if pairs := pair_rows(rid, resource_type, rows):
        merged[TOKEN_DATES] = pairs
    return merged


async def rewrite_indexes(
    session: AsyncSession, resources: Sequence[tuple[int, str, IndexRows]]
) -> None:
    """Replace the search index of several current resources (rid, type, rows) at once: a
    statement per table, not per resource (a rebuild, `fhir.background`)."""
    rids = [rid for rid, _, _ in resources]
    await _reindex(session, rids, resources, (*_INDEX_TABLES, PositionIndexRow, TOKEN_DATES))


async def _reindex(
    session: AsyncSession,
    rids: list[int],
    resources: Sequence[tuple[int, str, IndexRows]],
    tables: Sequence[type[Any] | Table],
    *leading: Batch,
) -> None:
    """Delete the index rows of `rids` from `tables`, then insert `leading` and the index
    rows of `resources` (rid, type, rows)."""
    for table in tables:
        column = table.c.rid if isinstance(table, Table) else table.rid
        await session.execute(delete(table).where(column.in_(rids)))
    batches = index_batches([rid for rid, _, _ in resources], [(k, r) for _, k, r in resources])
    await insert_tables(session, [*leading, *batches])


async def matching(
    session: AsyncSession, values: Values, statement: Sql, limit: int
) -> list[StoredResource]:
    """Up to `limit` resources of a search inside a writing transaction, the most recently
    updated first."""
    ordered = (
        statement.build(RESOURCES.c)
        .order_by(FhirResourceRow.last_updated.desc(), FhirResourceRow.rid.desc())
        .limit(limit)
    )
    return [StoredResource(*row) for row in await session.execute(ordered, values.parameters())]


_resource = FhirResourceRow
_version = FhirVersionRow
_SHARED = shared_record(_resource.patient_id, bindparam("viewer"), bindparam("at"))
_OPENED = opened_record(_resource.patient_id, bindparam("actor"), bindparam("at"))
_CURRENT: AnySelect = select(
    _resource.organisation_id,
    _resource.version,
    _resource.last_updated,
    _resource.content,
    _SHARED,
    _OPENED,
    _resource.patient_id,
).where(
    _resource.resource_type == bindparam("resource_type"),
    _resource.fhir_id == bindparam("fhir_id"),
)
_VERSION: AnySelect = (
    select(
        _resource.organisation_id,
        _version.version,
        _version.last_updated,
        _content_of(_version),
        _SHARED,
        _OPENED,
        _resource.patient_id,
    )
    .join(_version, and_(_version.rid == _resource.rid, _version.version == bindparam("version")))
    .where(
        _resource.resource_type == bindparam("resource_type"),
        _resource.fhir_id == bindparam("fhir_id"),
    )
)


@dataclass(frozen=True)
class LookedUp:
    """What a read or vread found (`lookup`): the owning organisation, the version, its time
    and content (None: deleted), whether the resource's patient's data is shared with the
    viewpoint's organisation or opened by its break-glass, and the patient record."""

    owner: str
    version: int
    last_updated: dt.datetime
    content: str | None
    shared: bool
    opened: bool
    patient_id: str | None

    @classmethod
    def of(cls, row: DriverRow) -> LookedUp:
        """The row of a `lookup` statement (SQLite answers the two conditions as 0 or 1)."""
        owner, version, last_updated, content, shared, opened, patient_id = row
        return cls(owner, version, last_updated, content, bool(shared), bool(opened), patient_id)


def lookup(
    resource_type: str, fhir_id: str, version: int | None, viewpoint: Viewpoint
) -> tuple[AnySelect, dict[str, Any]]:
    """One statement for a read or vread, whose row is a `LookedUp`, of the current version
    or of version `version`. The statements are built once, with parameters: building one per
    read cost more than running it."""
    parameters: dict[str, Any] = {
        "resource_type": resource_type,
        "fhir_id": fhir_id,
        "viewer": viewpoint.organisation_id,
        "actor": viewpoint.actor,
        "at": viewpoint.at,
    }
    if version is None:
        return _CURRENT, parameters
    return _VERSION, {**parameters, "version": version}


_SEQUENCE = func.pg_get_serial_sequence(RESOURCES.name, RESOURCES.c.rid.name)
_ALLOCATE = select(func.nextval(_SEQUENCE)).select_from(func.generate_series(1, bindparam("count")))
_LARGEST = select(func.max(RESOURCES.c.rid))


async def _new_rids(session: AsyncSession, count: int) -> list[int]:
    """Row ids for `count` new resources, taken before they are inserted, so that the
    resources, their versions and index rows go in together: from the table's sequence on
    PostgreSQL; on SQLite the ones after the largest, which SQLite would give them itself
    (a rowid table without AUTOINCREMENT; the transaction is the only writer)."""
    if session.get_bind().dialect.name == "postgresql":
        return list((await session.scalars(_ALLOCATE, {"count": count})).all())
    largest = await session.scalar(_LARGEST) or 0
    return list(range(largest + 1, largest + 1 + count))


async def insert_new(
    session: AsyncSession,
    rows: list[dict[str, Any]],
    dependents: Callable[[list[int]], list[Batch]] = lambda _rids: [],
) -> list[int]:
    """Insert new resources and the rows that `dependents` makes for their row ids (their
    versions and index rows); the row ids, in the order of `rows`. The ids come first
    (`_new_rids`), then every table's rows at once (see `insert_tables`: on PostgreSQL one
    statement for all of them, on SQLite one executemany per table, never one INSERT per
    resource)."""
    rids = await _new_rids(session, len(rows))
    resources = [{**row, "rid": rid} for row, rid in zip(rows, rids, strict=True)]
    await insert_tables(session, [(RESOURCES, resources), *dependents(rids)])
    return rids


def new_versions(rids: list[int], rows: list[dict[str, Any]]) -> Batch:
    """The first versions of new resources (`rows` as given to `insert_new`), without their
    content, which their resource rows hold (see `FhirVersionRow`)."""
    versions = [
        {
            "rid": rid,
            "version": 1,
            "last_updated": row["last_updated"],
            "method": "create",
            "content": None,
        }
        for rid, row in zip(rids, rows, strict=True)
    ]
    return cast(Table, FhirVersionRow.__table__), versions


def index_batches(rids: list[int], resources: list[tuple[str, IndexRows]]) -> list[Batch]:
    """The index rows of new resources (type and extracted rows, in the order of `rids`),
    one batch per table."""
    merged: dict[type[Any] | Table, list[dict[str, Any]]] = {}
    for rid, (resource_type, rows) in zip(rids, resources, strict=True):
        for table, values in index_values(rid, resource_type, rows).items():
            merged.setdefault(table, []).extend(values)
    return [
        (table if isinstance(table, Table) else cast(Table, table.__table__), values)
        for table, values in merged.items()
    ]
