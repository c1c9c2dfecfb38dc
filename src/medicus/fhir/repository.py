"""SQL of FHIR resources and their versions."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from medicus.fhir.models import FhirResourceRow, FhirVersionRow


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
