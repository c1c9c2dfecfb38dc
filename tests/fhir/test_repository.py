"""Writes of the FHIR repository on the real database: many rows (one statement of several
tables on PostgreSQL) behave as INSERT does, conflicts included; the current content is
stored once, and every version still reads."""

from __future__ import annotations

import datetime as dt

import orjson
import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from medicus.core.bulk import BULK_FROM_ROWS
from medicus.core.db import Database
from medicus.fhir import repository
from medicus.fhir.models import FhirResourceRow, FhirVersionRow
from tests.fhir.conftest import Hub
from tests.support.database import rows


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
            first = await repository.versions(session, rids[0], 10)
        assert [stored[f"p{n}"] for n in range(count)] == rids
        # The content of a current version is stored once, in its resource's row.
        assert sorted(versions) == [(rid, None) for rid in sorted(rids)]
        assert [(v.version, v.content) for v in first] == [(1, rows[0]["content"])]
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


async def test_the_current_content_is_stored_once_and_every_version_still_reads(
    hub: Hub,
) -> None:
    headers = await hub.token()
    body = {"resourceType": "Patient", "id": "hospital-a.once", "gender": "male"}
    url = "/fhir/Patient/hospital-a.once"
    for gender in ("male", "female"):
        answer = await hub.http.put(
            url, content=orjson.dumps({**body, "gender": gender}), headers=headers
        )
        assert answer.status_code in (200, 201)
    assert (await hub.http.delete(url, headers=headers)).status_code == 204
    stored = await rows(
        hub.platform,
        "SELECT v.version, v.content IS NULL FROM fhir_version v"
        " JOIN fhir_resource r ON r.rid = v.rid WHERE r.fhir_id = 'hospital-a.once'"
        " ORDER BY v.version",
    )
    # Versions 1 and 2 were replaced: their rows hold their content; 3 is the deletion.
    assert [(number, bool(empty)) for number, empty in stored] == [
        (1, False),
        (2, False),
        (3, True),
    ]
    genders = []
    for number in (1, 2):
        vread = await hub.http.get(f"{url}/_history/{number}", headers=headers)
        genders.append(vread.json()["gender"])
    assert genders == ["male", "female"]
    assert (await hub.http.get(f"{url}/_history/3", headers=headers)).status_code == 410
    history = (await hub.http.get(f"{url}/_history", headers=headers)).json()["entry"]
    assert [e.get("resource", {}).get("gender") for e in history] == [None, "female", "male"]
    again = await hub.http.put(url, content=orjson.dumps(body), headers=headers)
    assert again.status_code in (200, 201)
    current = await hub.http.get(f"{url}/_history/4", headers=headers)
    assert current.json()["gender"] == "male"
    everything = await hub.http.get("/fhir/Patient/_history", headers=headers)
    newest = everything.json()["entry"][0]
    assert (newest["resource"]["meta"]["versionId"], newest["resource"]["gender"]) == ("4", "male")
