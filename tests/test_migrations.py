"""The migrations build exactly the schema the models describe (a forgotten migration fails)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import select, text
from sqlalchemy.engine import Connection

import medicus.access.models
import medicus.audit.models
import medicus.fhir.models
import medicus.iam.models
import medicus.storage.models  # noqa: F401  (register every table)
from medicus import migrations
from medicus.access.research import PURPOSES
from medicus.core.db import Base, Database
from medicus.fhir import repository
from medicus.fhir.models import RESOURCES, DateIndexRow, FhirVersionRow, PositionIndexRow
from medicus.fhir.search.extract import extract
from medicus.platform import Platform
from tests.conftest import DatabaseFactory
from tests.support import resources
from tests.support.resources import PRIVACY


def _stored(
    rid: int,
    kind: str,
    fhir_id: str,
    content: dict[str, Any] | None,
    organisation: str = "hospital-a",
    **columns: str,
) -> dict[str, Any]:
    """The row of a resource stored before a migration (`content` None: deleted), with the
    `columns` of the schema it was stored under (`patient_id` from migration 0008 on)."""
    return {
        "rid": rid,
        "resource_type": kind,
        "fhir_id": fhir_id,
        "version": 1,
        "last_updated": dt.datetime(2026, 11, 30, tzinfo=dt.UTC),
        "deleted": content is None,
        "organisation_id": organisation,
        "content": None if content is None else json.dumps({"resourceType": kind, **content}),
        **columns,
    }


async def _store(database: Database, rows: list[dict[str, Any]]) -> None:
    async with database.transaction() as session:
        for row in rows:
            await session.execute(RESOURCES.insert().values(**row))


async def _rows(database: Database, query: str) -> list[tuple[Any, ...]]:
    async with database.snapshot() as session:
        return [tuple(row) for row in await session.execute(text(query))]


async def _organisations(database: Database, types: dict[str, str]) -> None:
    async with database.transaction() as session:
        for organisation, kind in types.items():
            await session.execute(
                text(
                    "INSERT INTO organisation (id, name, type, created_at, mfa_policy)"
                    " VALUES (:id, :id, :type, :at, 'clinical')"
                ),
                {"id": organisation, "type": kind, "at": dt.datetime(2026, 11, 30)},
            )


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


async def test_models_and_migrations_agree(fresh_platform: Platform) -> None:
    async with fresh_platform.database.snapshot() as session:
        connection = await session.connection()
        differences = await connection.run_sync(_differences)
    assert differences == []


async def test_rows_of_union_parameters_are_removed(database_factory: DatabaseFactory) -> None:
    """Migration 0006: `combo-*` rows written by earlier versions go; other rows stay."""
    url = await asyncio.to_thread(database_factory.new_url, False)
    await asyncio.to_thread(migrations.upgrade, url, "0005")
    database = Database(url)
    try:
        async with database.transaction() as session:
            for param in ("code", "combo-code", "combo-code-value-quantity$0"):
                await session.execute(
                    text(
                        "INSERT INTO fhir_token (rid, resource_type, param, system, code)"
                        " VALUES (1, 'Observation', :param, 'http://loinc.org', '718-7')"
                    ),
                    {"param": param},
                )
        await asyncio.to_thread(migrations.upgrade, url)
        async with database.snapshot() as session:
            left = (await session.execute(text("SELECT param FROM fhir_token"))).scalars().all()
        assert left == ["code"]
    finally:
        await database.dispose()


async def test_locations_stored_before_positions_are_indexed(
    database_factory: DatabaseFactory,
) -> None:
    """Migration 0007: the positions of current Locations get the rows a write makes; no
    rows for deleted Locations, Locations without a position or with none on the Earth."""
    url = await asyncio.to_thread(database_factory.new_url, False)
    await asyncio.to_thread(migrations.upgrade, url, "0006")
    where = {"latitude": 52.5262, "longitude": 13.3766}
    stored = [
        ("charite", "Location", False, {"position": where}),
        ("gone", "Location", True, {"position": where}),
        ("nowhere", "Location", False, {}),
        ("beyond", "Location", False, {"position": {"latitude": 95, "longitude": 0}}),
        ("patient", "Patient", False, {"position": where}),
    ]
    database = Database(url)
    try:
        await _store(
            database,
            [
                _stored(rid, kind, fhir_id, None if deleted else content)
                for rid, (fhir_id, kind, deleted, content) in enumerate(stored, start=1)
            ],
        )
        await asyncio.to_thread(migrations.upgrade, url)
        async with database.snapshot() as session:
            rows = (await session.execute(select(PositionIndexRow.__table__))).mappings().all()
        assert [(row["rid"], row["resource_type"], row["param"]) for row in rows] == [
            (1, "Location", "near")
        ]
        [(_, *written)] = extract(
            "Location", {"resourceType": "Location", "position": where}
        ).positions
        columns = ("latitude", "longitude", "x", "y", "z")
        assert [rows[0][column] for column in columns] == pytest.approx(written)
    finally:
        await database.dispose()


async def test_resources_stored_before_get_their_patient(
    database_factory: DatabaseFactory,
) -> None:
    """Migration 0008: a Patient is its own patient; others get the Patient of the first of
    their type's compartment parameters (an Observation's `subject` before its `performer`);
    a Practitioner, or an Observation about a Group, gets none."""
    url = await asyncio.to_thread(database_factory.new_url, False)
    await asyncio.to_thread(migrations.upgrade, url, "0007")
    stored = {
        1: ("Patient", "anna", []),
        2: (
            "Observation",
            "lab",
            [("performer", "Patient", "ben"), ("subject", "Patient", "anna")],
        ),
        3: ("Observation", "by-ben", [("performer", "Patient", "ben")]),
        4: ("Observation", "group", [("subject", "Group", "ward-3")]),
        5: ("Practitioner", "doctor", []),
        6: ("Encounter", "stay", [("subject", "Patient", "anna"), ("patient", "Patient", "anna")]),
    }
    database = Database(url)
    try:
        async with database.transaction() as session:
            for rid, (kind, fhir_id, references) in stored.items():
                await session.execute(RESOURCES.insert().values(**_stored(rid, kind, fhir_id, {})))
                for param, target_type, target_id in references:
                    await session.execute(
                        text(
                            "INSERT INTO fhir_reference"
                            " (rid, resource_type, param, target_type, target_id)"
                            " VALUES (:rid, :kind, :param, :target_type, :target_id)"
                        ),
                        {
                            "rid": rid,
                            "kind": kind,
                            "param": param,
                            "target_type": target_type,
                            "target_id": target_id,
                        },
                    )
        await asyncio.to_thread(migrations.upgrade, url)
        async with database.snapshot() as session:
            found = dict(
                (await session.execute(select(RESOURCES.c.rid, RESOURCES.c.patient_id))).all()
            )
        assert found == {1: "anna", 2: "anna", 3: "ben", 4: None, 5: None, 6: "anna"}
    finally:
        await database.dispose()


def _merged_into(patient_id: str) -> dict[str, Any]:
    return {"other": {"reference": f"Patient/{patient_id}"}, "type": "replaced-by"}


async def test_patients_stored_before_the_index_are_in_it(
    database_factory: DatabaseFactory,
) -> None:
    """Migration 0009: every current Patient gets its record; the same KVNR, one person.
    Migration 0013: the records get their matching traits; 0016 their family names' sound.
    Migration 0018: a deleted one is a former record of the organisation that held it.
    Migration 0019: a record merged into another of its hospital's is that one's person; a
    merge with another hospital's record counts for nothing."""
    url = await asyncio.to_thread(database_factory.new_url, False)
    await asyncio.to_thread(migrations.upgrade, url, "0008")
    kvnr = {"identifier": [resources.kvnr("A123456780")]}
    stored = [
        ("p2", "hospital-b", False, kvnr),
        ("p1", "hospital-a", False, kvnr),
        ("p3", "hospital-a", False, {"name": [{"family": "Müller", "given": ["Anna"]}]}),
        ("gone", "hospital-a", True, kvnr),
        ("p4", "hospital-a", False, {"link": [_merged_into("p3")]}),
        ("p5", "hospital-b", False, {"link": [_merged_into("p3")]}),
    ]
    database = Database(url)
    try:
        await _store(
            database,
            [
                _stored(
                    rid,
                    "Patient",
                    fhir_id,
                    None if deleted else content,
                    organisation,
                    patient_id=fhir_id,
                )
                for rid, (fhir_id, organisation, deleted, content) in enumerate(stored, start=1)
            ],
        )
        await asyncio.to_thread(migrations.upgrade, url)
        records = "SELECT patient_id, organisation_id, person_id, kvnr FROM mpi_record"
        assert await _rows(database, f"{records} ORDER BY patient_id") == [
            ("p1", "hospital-a", "p1", "A123456780"),
            ("p2", "hospital-b", "p1", "A123456780"),
            ("p3", "hospital-a", "p3", None),
            ("p4", "hospital-a", "p3", None),
            ("p5", "hospital-b", "p5", None),
        ]
        # Migration 0013: their matching traits, as the index makes them.
        traits = "SELECT patient_id, family, given, family_sound FROM mpi_record"
        assert await _rows(database, f"{traits} ORDER BY patient_id") == [
            ("p1", None, None, None),
            ("p2", None, None, None),
            ("p3", "mueller", "anna", "657"),
            ("p4", None, None, None),
            ("p5", None, None, None),
        ]
        former = "SELECT patient_id, organisation_id FROM mpi_former_record"
        assert await _rows(database, former) == [("gone", "hospital-a")]
        merges = "SELECT patient_id, other_patient_id FROM mpi_merge"
        assert await _rows(database, merges) == [("p4", "p3")]
    finally:
        await database.dispose()


async def test_referrals_and_research_consents_stored_before_they_counted_count(
    database_factory: DatabaseFactory,
) -> None:
    """Migration 0014: a stored active referral makes its performer a treating organisation
    (the shares of the person are recomputed); an encounter's holder treats as before.
    Migration 0015: a stored research consent's purposes are kept."""
    url = await asyncio.to_thread(database_factory.new_url, False)
    await asyncio.to_thread(migrations.upgrade, url, "0008")
    subject = {"reference": "Patient/a1"}
    stored = [
        ("Patient", "a1", "hospital-a", {}),
        (
            "Consent",
            "c1",
            "hospital-a",
            {
                "status": "active",
                "scope": PRIVACY,
                "patient": subject,
                "provision": {"type": "permit"},
                "sourceAttachment": {"title": "signed form"},
            },
        ),
        (
            "ServiceRequest",
            "r1",
            "hospital-a",
            {
                "status": "active",
                "intent": "order",
                "subject": subject,
                "performer": [{"reference": "Organization/hospital-d"}],
            },
        ),
        ("Encounter", "e1", "hospital-a", {"status": "in-progress", "subject": subject}),
        (
            "Consent",
            "broad",
            "hospital-a",
            {
                "status": "active",
                "scope": {"coding": [{**PRIVACY["coding"][0], "code": "research"}]},
                "patient": subject,
                "provision": {
                    "type": "deny",
                    "provision": [
                        {
                            "type": "permit",
                            "code": [{"coding": [{"system": PURPOSES, "code": "1.2.3"}]}],
                        }
                    ],
                },
            },
        ),
    ]
    database = Database(url)
    try:
        await _organisations(database, {"hospital-a": "hospital", "hospital-d": "hospital"})
        await _store(
            database,
            [
                _stored(rid, kind, fhir_id, content, organisation, patient_id="a1")
                for rid, (kind, fhir_id, organisation, content) in enumerate(stored, start=1)
            ],
        )
        await asyncio.to_thread(migrations.upgrade, url)
        treating = (
            "SELECT resource_id, organisation_id, treating_organisation_id"
            " FROM access_treatment ORDER BY resource_id"
        )
        assert await _rows(database, treating) == [
            ("e1", "hospital-a", "hospital-a"),
            ("r1", "hospital-a", "hospital-d"),
        ]
        shared = "SELECT organisation_id, person_id FROM access_share ORDER BY 1"
        assert await _rows(database, shared) == [("hospital-a", "a1"), ("hospital-d", "a1")]
        research = "SELECT consent_id, patient_id, purpose, decision FROM access_research_consent"
        assert await _rows(database, research) == [("broad", "a1", "1.2.3", "permit")]
    finally:
        await database.dispose()


async def test_consents_and_treatments_stored_before_count_only_from_care_providers(
    database_factory: DatabaseFactory,
) -> None:
    """Migration 0020: a stored permit without its source document, and an app vendor's
    consent and episode of care, open nothing any more; a care provider's sourced permit,
    recorded while it treats the person, is vouched for, and whom each record is open to
    is registered."""
    url = await asyncio.to_thread(database_factory.new_url, False)
    await asyncio.to_thread(migrations.upgrade, url, "0008")
    form = {"title": "signed form"}

    def person(kvnr: str) -> dict[str, Any]:
        return {"identifier": [resources.kvnr(kvnr)]}

    def about(patient: str, **content: Any) -> dict[str, Any]:
        reference = {"reference": f"Patient/{patient}"}
        return {"status": "active", "scope": PRIVACY, "patient": reference, **content}

    def stay(patient: str) -> dict[str, Any]:
        return {"status": "in-progress", "subject": {"reference": f"Patient/{patient}"}}

    stored = [
        # Person 1: A's permit names no source; B treats.
        ("Patient", "a1", "hospital-a", "a1", person("A000000001")),
        ("Patient", "b1", "hospital-b", "b1", person("A000000001")),
        ("Consent", "unsourced", "hospital-a", "a1", about("a1", provision={"type": "permit"})),
        ("Encounter", "e-b1", "hospital-b", "b1", stay("b1")),
        # Person 2: the vendor records a sourced permit and an episode of care.
        ("Patient", "a2", "hospital-a", "a2", person("A000000002")),
        ("Patient", "v2", "vendor-v", "v2", person("A000000002")),
        (
            "Consent",
            "by-vendor",
            "vendor-v",
            "v2",
            about("v2", provision={"type": "permit"}, sourceAttachment=form),
        ),
        ("EpisodeOfCare", "eoc-v2", "vendor-v", "v2", {**about("v2"), "status": "active"}),
        # Person 3: A records a sourced permit during a stay; B treats.
        ("Patient", "a3", "hospital-a", "a3", person("A000000003")),
        ("Patient", "b3", "hospital-b", "b3", person("A000000003")),
        ("Encounter", "e-a3", "hospital-a", "a3", stay("a3")),
        (
            "Consent",
            "vouched",
            "hospital-a",
            "a3",
            about("a3", provision={"type": "permit"}, sourceAttachment=form),
        ),
        ("Encounter", "e-b3", "hospital-b", "b3", stay("b3")),
    ]
    database = Database(url)
    try:
        await _organisations(
            database,
            {"hospital-a": "hospital", "hospital-b": "hospital", "vendor-v": "app_vendor"},
        )
        await _store(
            database,
            [
                _stored(rid, kind, fhir_id, content, organisation, patient_id=patient)
                for rid, (kind, fhir_id, organisation, patient, content) in enumerate(
                    stored, start=1
                )
            ],
        )
        await asyncio.to_thread(migrations.upgrade, url)
        consents = "SELECT consent_id, vouched_at IS NOT NULL FROM access_consent ORDER BY 1"
        assert await _rows(database, consents) == [("by-vendor", False), ("vouched", True)]
        shared = "SELECT organisation_id, person_id FROM access_share ORDER BY 1"
        assert await _rows(database, shared) == [("hospital-a", "a3"), ("hospital-b", "a3")]
        disclosed = (
            "SELECT holder_organisation_id, patient_id, organisation_id, ended_at"
            " FROM access_disclosure ORDER BY 2"
        )
        assert await _rows(database, disclosed) == [
            ("hospital-a", "a3", "hospital-b", None),
            ("hospital-b", "b3", "hospital-a", None),
        ]
    finally:
        await database.dispose()


async def test_string_and_date_rows_stored_before_are_rebuilt(
    database_factory: DatabaseFactory,
) -> None:
    """Migration 0022: strings stored before get their value as written (`exact`), and
    dates with fractions of a second the range of their precision, as a write makes them;
    a deleted resource's rows are left alone."""
    url = await asyncio.to_thread(database_factory.new_url, False)
    await asyncio.to_thread(migrations.upgrade, url, "0019")
    moment = dt.datetime(2025, 6, 20, 1, 54, 34, 36778, tzinfo=dt.UTC)
    stored = [
        _stored(1, "Practitioner", "doc", {"name": [{"family": "Crúz"}]}),
        _stored(
            2,
            "Observation",
            "lab",
            {
                "status": "final",
                "code": {"text": "Hb"},
                "effectiveDateTime": "2025-06-20T01:54:34.036778Z",
            },
        ),
        _stored(3, "Practitioner", "gone", None),
    ]
    database = Database(url)
    try:
        await _store(database, stored)
        async with database.transaction() as session:
            for rid, name in ((1, "family"), (3, "family")):
                await session.execute(
                    text(
                        "INSERT INTO fhir_string (rid, resource_type, param, value)"
                        " VALUES (:rid, 'Practitioner', :name, 'cruz')"
                    ),
                    {"rid": rid, "name": name},
                )
            await session.execute(
                DateIndexRow.__table__.insert().values(
                    rid=2,
                    resource_type="Observation",
                    param="date",
                    low=moment,
                    high=moment + dt.timedelta(seconds=1),
                )
            )
        await asyncio.to_thread(migrations.upgrade, url)
        strings = "SELECT rid, param, value, exact FROM fhir_string WHERE param = 'family'"
        assert await _rows(database, f"{strings} ORDER BY rid") == [
            (1, "family", "cruz", "Crúz"),
            (3, "family", "cruz", None),
        ]
        async with database.snapshot() as session:
            dates = (
                await session.execute(
                    select(DateIndexRow.low, DateIndexRow.high).where(DateIndexRow.rid == 2)
                )
            ).all()
        assert [tuple(row) for row in dates] == [(moment, moment + dt.timedelta(microseconds=1))]
    finally:
        await database.dispose()


async def test_versions_stored_before_keep_the_current_content_once(
    database_factory: DatabaseFactory,
) -> None:
    """Migration 0025: the current version's row drops its copy of the content (its
    resource holds it); earlier versions keep theirs; every version reads as before."""
    url = await asyncio.to_thread(database_factory.new_url, False)
    await asyncio.to_thread(migrations.upgrade, url, "0023")
    first = json.dumps({"resourceType": "Patient", "gender": "male"})
    second = json.dumps({"resourceType": "Patient", "gender": "female"})
    at = dt.datetime(2026, 11, 30, tzinfo=dt.UTC)
    database = Database(url)
    try:
        await _store(
            database,
            [
                {**_stored(1, "Patient", "p1", None), "version": 2, "deleted": False},
                {**_stored(2, "Patient", "p2", None), "version": 2},
            ],
        )
        async with database.transaction() as session:
            await session.execute(
                text("UPDATE fhir_resource SET content = :c WHERE rid = 1"), {"c": second}
            )
            for rid, version, content in (
                (1, 1, first),
                (1, 2, second),
                (2, 1, first),
                (2, 2, None),
            ):
                await session.execute(
                    FhirVersionRow.__table__.insert().values(
                        rid=rid, version=version, last_updated=at, method="update", content=content
                    )
                )
        await asyncio.to_thread(migrations.upgrade, url)
        stored = "SELECT rid, version, content FROM fhir_version ORDER BY rid, version"
        assert await _rows(database, stored) == [
            (1, 1, first),
            (1, 2, None),
            (2, 1, first),
            (2, 2, None),
        ]
        async with database.snapshot() as session:
            versions = await repository.versions(session, 1, 10)
        assert [(v.version, v.content) for v in versions] == [(2, second), (1, first)]
    finally:
        await database.dispose()
