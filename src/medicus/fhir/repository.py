"""SQL of FHIR resources and their versions."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import Row, delete, select, update
from sqlalchemy import insert as sql_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Select

from medicus.fhir.models import (
    DateIndexRow,
    FhirResourceRow,
    FhirVersionRow,
    ReferenceIndexRow,
    StringIndexRow,
    TokenIndexRow,
)
from medicus.fhir.search.extract import IndexRows


async def resource(
    session: AsyncSession, resource_type: str, fhir_id: str, for_update: bool = False
) -> FhirResourceRow | None:
    statement = select(FhirResourceRow).where(
        FhirResourceRow.resource_type == resource_type, FhirResourceRow.fhir_id == fhir_id
    )
    if for_update and session.get_bind().dialect.name == "postgresql":
        statement = statement.with_for_update()
    return await session.scalar(statement)


async def version(session: AsyncSession, rid: int, number: int) -> FhirVersionRow | None:
    return await session.get(FhirVersionRow, (rid, number))


async def versions(session: AsyncSession, rid: int, limit: int) -> Sequence[FhirVersionRow]:
    statement = (
        select(FhirVersionRow)
        .where(FhirVersionRow.rid == rid)
        .order_by(FhirVersionRow.version.desc())
        .limit(limit)
    )
    return (await session.scalars(statement)).all()


async def insert(session: AsyncSession, row: FhirResourceRow) -> None:
    session.add(row)
    await session.flush()


async def add_version(session: AsyncSession, row: FhirVersionRow) -> None:
    session.add(row)
    await session.flush()


async def replace(
    session: AsyncSession, rid: int, expected_version: int, new: FhirVersionRow, deleted: bool
) -> bool:
    """Make `new` the current version if the stored one is still `expected_version`."""
    statement = (
        update(FhirResourceRow)
        .where(FhirResourceRow.rid == rid, FhirResourceRow.version == expected_version)
        .values(
            version=new.version,
            last_updated=new.last_updated,
            deleted=deleted,
            content=new.content,
        )
        .execution_options(synchronize_session=False)
    )
    result = await session.execute(statement)
    return bool(getattr(result, "rowcount", 0) == 1)


async def history(
    session: AsyncSession,
    organisation_id: str,
    resource_types: Sequence[str] | None,
    since: dt.datetime | None,
    limit: int,
) -> Sequence[Row[FhirVersionRow, str, str]]:
    """Versions of the organisation's resources (of `resource_types`, or all), newest first.
    The organisation is part of the query: what the caller may not see is never read."""
    statement = (
        select(FhirVersionRow, FhirResourceRow.resource_type, FhirResourceRow.fhir_id)
        .join(FhirResourceRow, FhirResourceRow.rid == FhirVersionRow.rid)
        .where(FhirResourceRow.organisation_id == organisation_id)
    )
    if resource_types is not None:
        statement = statement.where(FhirResourceRow.resource_type.in_(resource_types))
    if since is not None:
        statement = statement.where(FhirVersionRow.last_updated >= since)
    statement = statement.order_by(
        FhirVersionRow.last_updated.desc(), FhirVersionRow.rid, FhirVersionRow.version.desc()
    ).limit(limit)
    return (await session.execute(statement)).all()


_INDEX_TABLES = (TokenIndexRow, StringIndexRow, ReferenceIndexRow, DateIndexRow)


async def write_index(
    session: AsyncSession, rid: int, resource_type: str, rows: IndexRows | None
) -> None:
    """Replace the search index of resource `rid` (None: it was deleted, no index). Values
    longer than their columns are cut: they still match searches for their beginning."""
    for table in _INDEX_TABLES:
        await session.execute(delete(table).where(table.rid == rid))
    if rows is None:
        return
    batches = (
        (
            TokenIndexRow,
            [{"param": p, "system": s and s[:255], "code": c[:255]} for p, s, c in rows.tokens],
        ),
        (StringIndexRow, [{"param": p, "value": v[:255]} for p, v in rows.strings]),
        (
            ReferenceIndexRow,
            [
                {"param": p, "target_type": t[:64], "target_id": i[:64]}
                for p, t, i in rows.references
            ],
        ),
        (DateIndexRow, [{"param": p, "low": lo, "high": hi} for p, lo, hi in rows.dates]),
    )
    for table, values in batches:
        if values:
            await session.execute(
                sql_insert(table),
                [{**value, "rid": rid, "resource_type": resource_type} for value in values],
            )


async def search(
    session: AsyncSession, statement: Select[FhirResourceRow], limit: int, offset: int
) -> Sequence[FhirResourceRow]:
    ordered = statement.order_by(FhirResourceRow.last_updated.desc(), FhirResourceRow.rid.desc())
    return (await session.scalars(ordered.limit(limit).offset(offset))).all()


async def count(session: AsyncSession, statement: Select[int]) -> int:
    return int(await session.scalar(statement) or 0)
