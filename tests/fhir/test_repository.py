"""Bulk writes of the FHIR repository on the real database: many rows (one statement of
several tables on PostgreSQL) behave as INSERT does, conflicts included."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from medicus.core.bulk import BULK_FROM_ROWS
from medicus.core.db import Database
from medicus.fhir import repository
from medicus.fhir.models import FhirResourceRow, FhirVersionRow


def _resource(number: int, fhir_id: str | None = None) -> dict[str, object]:
    return {
        "resource_type": "Patient",
        "fhir_id": fhir_id or f"p{number}",
        "version": 1,
        "last_updated": dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        "deleted": False,
        "organisation_id": "hospital-a",
        "content": '{"resourceType":"Patient"}',
    }


@pytest.mark.parametrize("count", [3, BULK_FROM_ROWS + 6])
async def test_bulk_inserts_return_row_ids_in_order(fresh_database_url: str, count: int) -> None:
    database = Database(fresh_database_url)
    try:
        async with database.transaction() as session:
            rows = [_resource(n) for n in range(count)]
            rids = await repository.insert_new(
                session, rows, lambda rids: [repository.new_versions(rids, rows)]
            )
        async with database.snapshot() as session:
            stored = dict(
                (await session.execute(select(FhirResourceRow.fhir_id, FhirResourceRow.rid))).all()
            )
            versions = (
                await session.execute(select(FhirVersionRow.rid, FhirVersionRow.content))
            ).all()
        assert [stored[f"p{n}"] for n in range(count)] == rids
        assert sorted(versions) == sorted(
            (rid, row["content"]) for rid, row in zip(rids, rows, strict=True)
        )
    finally:
        await database.dispose()


@pytest.mark.parametrize("count", [3, BULK_FROM_ROWS + 6])
async def test_a_conflict_in_a_bulk_insert_is_an_integrity_error_and_leaves_nothing(
    fresh_database_url: str, count: int
) -> None:
    """The service turns IntegrityError into 409; a bulk insert through the driver raised
    asyncpg's own error (a 500)."""
    database = Database(fresh_database_url)
    rows = [_resource(n) for n in range(count)] + [_resource(0, fhir_id="p0")]
    try:
        with pytest.raises(IntegrityError):
            async with database.transaction() as session:
                await repository.insert_new(
                    session, rows, lambda rids: [repository.new_versions(rids, rows)]
                )
        async with database.snapshot() as session:
            assert await session.scalar(select(func.count()).select_from(FhirResourceRow)) == 0
            assert await session.scalar(select(func.count()).select_from(FhirVersionRow)) == 0
    finally:
        await database.dispose()
