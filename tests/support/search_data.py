"""Searchable data at realistic sizes, written by SQL straight into a migrated database (not
through HTTP, which would take minutes for the tens of thousands of resources a plan test
needs): Patients and their Observations, with the index rows the hub's own extraction
derives from them (`index_batches`), so that the tables hold what writes would have left.

The values are spread the way a hospital's are: birth dates over ninety years, a handful of
lab codes of which one is a third of all Observations, results gathered on one Patient in
twenty, effective dates over six years, a few
Observations not yet final. The newest resources may be `newcomers`: Patients just admitted,
all born long before the searched birth dates and of a family nobody searches, and lab
results just entered, of the common code but years old, so that a search walking back from
the newest rows passes all of them before its first match."""

from __future__ import annotations

import datetime as dt
import json
import random
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from sqlalchemy import Table
from sqlalchemy.dialects.sqlite import pysqlite
from sqlalchemy.engine import make_url

from medicus.fhir.models import RESOURCES, FhirVersionRow
from medicus.fhir.repository import index_batches
from medicus.fhir.search.extract import IndexRows, extract
from tests.support.resources import LOINC, grams_per_decilitre, observation, patient

ORGANISATION = "hospital-a"
CODES = ("718-7", "2345-7", "2160-0", "6690-2", "789-8", "777-3", "4548-4", "2951-2")
"""Lab codes; the first is a third of all Observations, the others share the rest."""
LAB_PATIENT_SHARE = 20
"""One Patient in this many has Observations (about twenty each), as in a hospital, where the
lab results gather on the few who stay: a generic plan then estimates a Patient's results as
more rows than the average token value (the unique identifiers make that rare)."""
FAMILIES = tuple(f"Family{number}" for number in range(500))
FIRST_EFFECTIVE = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
LAST_EFFECTIVE = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
BATCH = 2_000


@dataclass(frozen=True)
class Stored:
    """One resource as the loader writes it: its type, id, patient and JSON."""

    resource_type: str
    fhir_id: str
    patient_id: str
    resource: dict[str, Any]


def _patient(number: int, chance: random.Random) -> Stored:
    born = dt.date(1930, 1, 1) + dt.timedelta(days=chance.randrange(90 * 365))
    fhir_id = f"p{number}"
    family = chance.choice(FAMILIES)
    resource = patient(f"A{number:09d}", family, "Anna", born.isoformat(), gender="female")
    return Stored("Patient", fhir_id, fhir_id, {**resource, "id": fhir_id})


def _observation(number: int, patients: int, chance: random.Random) -> Stored:
    code = CODES[0] if chance.random() < 1 / 3 else chance.choice(CODES[1:])
    span = (LAST_EFFECTIVE - FIRST_EFFECTIVE).total_seconds()
    when = FIRST_EFFECTIVE + dt.timedelta(seconds=chance.randrange(int(span)))
    subject = f"p{chance.randrange(max(1, patients // LAB_PATIENT_SHARE))}"
    resource = observation(
        subject,
        code,
        when.isoformat(),
        status="final" if chance.random() < 0.95 else "preliminary",
        valueQuantity=grams_per_decilitre(round(chance.uniform(8, 18), 1)),
    )
    fhir_id = f"o{number}"
    return Stored("Observation", fhir_id, subject, {**resource, "id": fhir_id})


def _newcomer(number: int) -> Stored:
    """A Patient just admitted (born 1950, family Newcomer), or a result just entered (even
    numbers: the common code, effective in January 2020, about the first Patient, whose long
    stay gathers them)."""
    if number % 2:
        resource = patient(f"N{number:09d}", "Newcomer", "Nina", "1950-06-15", gender="female")
        fhir_id = f"n{number}"
        return Stored("Patient", fhir_id, fhir_id, {**resource, "id": fhir_id})
    subject, fhir_id = "p0", f"m{number}"
    resource = observation(subject, CODES[0], "2020-01-02T08:00:00+00:00")
    return Stored("Observation", fhir_id, subject, {**resource, "id": fhir_id})


def resources(
    patients: int, observations: int, newcomers: int = 0, seed: int = 18
) -> Iterator[Stored]:
    """`patients` Patients, then `observations` Observations about them, then `newcomers`
    (the same every run)."""
    chance = random.Random(seed)
    for number in range(patients):
        yield _patient(number, chance)
    for number in range(observations):
        yield _observation(number, patients, chance)
    for number in range(newcomers):
        yield _newcomer(number)


Rows = dict[Table, list[dict[str, Any]]]


def _rows(first_rid: int, batch: Sequence[Stored]) -> Rows:
    """The resource, version and index rows of a batch of resources, by table."""
    rids = list(range(first_rid, first_rid + len(batch)))
    indexes: list[tuple[str, IndexRows]] = [
        (item.resource_type, extract(item.resource_type, item.resource)) for item in batch
    ]
    rows: Rows = {RESOURCES: [], FhirVersionRow.__table__: []}  # type: ignore[dict-item]
    for rid, item in zip(rids, batch, strict=True):
        content = json.dumps({**item.resource, "meta": {"versionId": "1"}})
        rows[RESOURCES].append(
            {
                "rid": rid,
                "resource_type": item.resource_type,
                "fhir_id": item.fhir_id,
                "version": 1,
                "last_updated": NOW,
                "deleted": False,
                "organisation_id": ORGANISATION,
                "content": content,
                "patient_id": item.patient_id,
            }
        )
        version = {"rid": rid, "version": 1, "last_updated": NOW, "method": "POST"}
        rows[FhirVersionRow.__table__].append({**version, "content": content})  # type: ignore[index]
    for table, values in index_batches(rids, indexes):
        rows.setdefault(table, []).extend(values)
    return rows


def _batches(patients: int, observations: int, newcomers: int = 0) -> Iterator[Rows]:
    batch: list[Stored] = []
    rid = 1
    for item in resources(patients, observations, newcomers):
        batch.append(item)
        if len(batch) == BATCH:
            yield _rows(rid, batch)
            rid += len(batch)
            batch = []
    if batch:
        yield _rows(rid, batch)


def _columns(table: Table, row: dict[str, Any]) -> list[str]:
    return [column.name for column in table.columns if column.name in row]


async def load_postgres(url: str, patients: int, observations: int, newcomers: int = 0) -> None:
    """Write the data into the migrated PostgreSQL database at `url` (COPY per table), and
    ANALYZE it."""
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    connection = await asyncpg.connect(dsn)
    try:
        for rows in _batches(patients, observations, newcomers):
            for table, values in rows.items():
                names = _columns(table, values[0])
                records = [tuple(value[name] for name in names) for value in values]
                await connection.copy_records_to_table(table.name, records=records, columns=names)
        last = patients + observations + newcomers
        await connection.execute(f"SELECT setval('fhir_resource_rid_seq', {last})")
        await connection.execute("ANALYZE")
    finally:
        await connection.close()


def _sqlite_binders(table: Table, names: list[str]) -> list[Any]:
    """How each column's values are written on SQLite (times as SQLAlchemy's text)."""
    dialect = pysqlite.dialect()
    return [table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names]


def load_sqlite(path: str, patients: int, observations: int) -> None:
    """Write the data into the migrated SQLite database file at `path`, and ANALYZE it."""
    connection = sqlite3.connect(path)
    try:
        for rows in _batches(patients, observations):
            for table, values in rows.items():
                names = _columns(table, values[0])
                binders = _sqlite_binders(table, names)
                marks = ", ".join("?" for _ in names)
                connection.executemany(
                    f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({marks})",
                    [
                        tuple(
                            value[name] if bind is None else bind(value[name])
                            for name, bind in zip(names, binders, strict=True)
                        )
                        for value in values
                    ],
                )
        connection.commit()
        connection.execute("ANALYZE")
    finally:
        connection.close()


__all__ = ["LOINC", "load_postgres", "load_sqlite", "resources"]
