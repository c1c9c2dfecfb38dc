"""The background updates over stored resources (fhir/background.py) beside a running
server's writes."""

from __future__ import annotations

import asyncio
import datetime as dt
import json

import pytest
from sqlalchemy import text

from medicus.core.db import Database
from medicus.fhir import background, repository
from medicus.fhir.models import RESOURCES, FhirVersionRow
from tests.conftest import POSTGRES_ADMIN_URL, DatabaseFactory

AT = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
FIRST = json.dumps({"resourceType": "Patient", "id": "p1", "gender": "male"})
SECOND = json.dumps({"resourceType": "Patient", "id": "p1", "gender": "female"})


async def _stored_twice(database: Database) -> None:
    """Patient p1 at version 1, written before migration 0025: its content in its resource
    row and again in its version row."""
    async with database.transaction() as session:
        await session.execute(
            RESOURCES.insert().values(
                rid=1,
                resource_type="Patient",
                fhir_id="p1",
                version=1,
                last_updated=AT,
                deleted=False,
                organisation_id="hospital-a",
                content=FIRST,
                patient_id="p1",
            )
        )
        await session.execute(
            FhirVersionRow.__table__.insert().values(
                rid=1, version=1, last_updated=AT, method="create", content=FIRST
            )
        )


@pytest.mark.skipif(not POSTGRES_ADMIN_URL, reason="concurrent writers need PostgreSQL")
async def test_dropping_second_copies_loses_no_version_a_concurrent_write_replaces(
    database_factory: DatabaseFactory,
) -> None:
    """A write that makes version 2 current while `fhir.content_once` drops the copies of
    current contents: version 1's content, which the write kept in its version row, stays
    there (the update must not drop it on the strength of what was current before)."""
    url = await asyncio.to_thread(database_factory.new_url)
    database = Database(url)
    try:
        await _stored_twice(database)
        change = repository.Change(1, "Patient", 1, 2, AT, "update", SECOND, "p1", None)
        async with database.transaction() as writing:
            assert await repository.resource(writing, "Patient", "p1", for_update=True)
            assert await repository.replace(writing, [change])

            async def drop_copies() -> None:
                async with database.transaction() as session:
                    await background.content_once(session, {}, 100)

            dropping = asyncio.create_task(drop_copies())
            await asyncio.sleep(0.5)
        await asyncio.wait_for(dropping, 10)
        async with database.snapshot() as session:
            stored = await session.execute(
                text("SELECT version, content FROM fhir_version WHERE rid = 1 ORDER BY version")
            )
            assert [tuple(row) for row in stored] == [(1, FIRST), (2, None)]
            versions = await repository.versions(session, 1, 10)
        assert [(v.version, v.content) for v in versions] == [(2, SECOND), (1, FIRST)]
    finally:
        await database.dispose()
