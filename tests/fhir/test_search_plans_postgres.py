"""Plans that hold on PostgreSQL at realistic sizes: each search shape, run as the hub runs it
(the template compiled once, a broad search planned for its values with SSD page costs, the
others with one generic plan), reads a bounded number of rows per row it returns, whatever
ANALYZE happened to sample: checked after each of three ANALYZE runs.

Rows read: the sum over the plan's nodes of the rows each produced (actual rows times loops),
which grows with every index entry or table row a plan walks past, not with time (which on a
shared machine is noise). Skipped without TEST_POSTGRES_URL."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from sqlalchemy.dialects.postgresql import asyncpg as asyncpg_dialect
from sqlalchemy.engine import make_url

from medicus.access.policy import Viewpoint
from medicus.core.driver import BROAD_SEARCH_SETTINGS, USUAL_SETTINGS, CompiledStatement
from medicus.fhir.models import RESOURCES
from medicus.fhir.search import query, sorting
from medicus.fhir.search.planning import planned_per_execution
from medicus.fhir.search.request import SearchRequest
from medicus.fhir.search.template import Values
from tests.conftest import POSTGRES_ADMIN_URL, DatabaseFactory
from tests.support.search_data import CODES, LOINC, ORGANISATION, load_postgres

pytestmark = pytest.mark.skipif(not POSTGRES_ADMIN_URL, reason="needs TEST_POSTGRES_URL")

PATIENTS = 20_000
OBSERVATIONS = 20_000
NEWCOMERS = 4_000
"""The newest resources, matching none of the searches below (search_data.py): a search that
walks back from the newest rows reads them all before its first match."""
PAGE = 20
ROWS_PER_RESULT = 100
"""Rows a plan may read per row it returns."""
EMPTY_RESULT = 200
"""Rows a plan may read to find nothing."""
VIEWPOINT = Viewpoint(ORGANISATION, "user:someone", dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
DIALECT = asyncpg_dialect.dialect()

SHAPES: list[tuple[str, list[tuple[str, str]]]] = [
    ("Patient", [("birthdate", "ge2010-01-01")]),
    ("Patient", [("birthdate", "ge2030-01-01")]),
    ("Patient", [("birthdate", "lt1931-01-01")]),
    ("Patient", [("birthdate", "ge1990-01-01")]),
    ("Patient", [("birthdate", "lt1950-01-01")]),
    ("Patient", [("birthdate", "eq1964-05-17")]),
    ("Patient", [("birthdate", "eq1964-05")]),
    ("Patient", [("birthdate", "eq1964")]),
    ("Patient", [("family", "Family7")]),
    ("Patient", [("family", "Family7"), ("gender", "female")]),
    ("Patient", [("name", "Family12")]),
    # Kölner Phonetik: every family sounds alike (Family7, Familie: 365), Newcomer does not.
    ("Patient", [("phonetic", "Familie")]),
    ("Patient", [("phonetic", "Vamilie Anna")]),
    ("Patient", [("phonetic", "Anna"), ("phonetic", "Familie")]),
    ("Patient", [("phonetic", "Familie"), ("gender", "female")]),
    ("Patient", [("phonetic", "Familie"), ("birthdate", "eq1964-05-17")]),
    ("Patient", [("phonetic", "Meier")]),
    ("Observation", [("date", "ge2025-12-01")]),
    ("Observation", [("code", f"{LOINC}|{CODES[0]}"), ("date", "ge2020-01-01")]),
    ("Observation", [("status", "final"), ("date", "ge2020-01-01")]),
    ("Observation", [("code", CODES[0]), ("date", "ge2025-12-01"), ("status", "final")]),
    ("Observation", [("code", f"{LOINC}|{CODES[0]}"), ("date", "ge2025-12-01")]),
    ("Observation", [("code", f"{LOINC}|{CODES[1]}"), ("date", "ge2025-12-01")]),
    ("Observation", [("code", f"{LOINC}|{CODES[0]}"), ("date", "ge2030-01-01")]),
    ("Observation", [("status", "preliminary"), ("date", "ge2025-12-01")]),
    ("Observation", [("status", "final"), ("date", "ge2025-12-20")]),
    ("Observation", [("subject", "Patient/p5"), ("code", f"{LOINC}|{CODES[0]}")]),
    ("Observation", [("subject", "Patient/p5")]),
    ("Observation", [("code", f"{LOINC}|{CODES[0]}")]),
    ("Observation", [("code", f"{LOINC}|{CODES[0]}"), ("date", "lt2020-02-01")]),
    ("Observation", [("code", f"{LOINC}|{CODES[0]}"), ("date", "lt2024-01-01")]),
    ("Observation", [("code", f"{LOINC}|{CODES[1]}"), ("date", "le2020-03-01")]),
    ("Observation", [("code", f"{LOINC}|{CODES[0]}"), ("date", "eq2022-05")]),
    ("Observation", [("code", f"{LOINC}|{CODES[0]}"), ("date", "eq2022-05-17")]),
    ("Observation", [("status", "final"), ("date", "lt2020-01-15")]),
    ("Observation", [("status", "preliminary"), ("date", "lt2023-01-01")]),
    ("Observation", [("code", f"{LOINC}|{CODES[0]}"), ("date", "sa2025-12-01")]),
    ("Observation", [("code", f"{LOINC}|{CODES[0]}"), ("date", "eb2020-02-01")]),
    ("Observation", [("code", f"{LOINC}|{CODES[0]}"), ("date", "lt2019-01-01")]),
]


@pytest.fixture(scope="module")
async def connection(database_factory: DatabaseFactory) -> AsyncIterator[asyncpg.Connection]:
    url = await asyncio.to_thread(database_factory.new_url)
    await load_postgres(url, PATIENTS, OBSERVATIONS, NEWCOMERS)
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    opened = await asyncpg.connect(dsn)
    yield opened
    await opened.close()


def _rows_read(node: dict[str, Any]) -> int:
    own = int(node.get("Actual Rows", 0) * node.get("Actual Loops", 1))
    return own + sum(_rows_read(child) for child in node.get("Plans", []))


def _literal(value: Any) -> str:
    """A value as an SQL literal of unknown type, which takes the prepared parameter's."""
    if value is None:
        return "NULL"
    text = value.isoformat() if isinstance(value, dt.datetime) else str(value)
    return "'" + text.replace("'", "''") + "'"


async def explain(
    connection: asyncpg.Connection, resource_type: str, parameters: list[tuple[str, str]]
) -> tuple[int, int, dict[str, Any]]:
    """Rows returned, rows read and the plan of a search's first page, planned as the hub
    plans it (see `PostgresDriver.connection`)."""
    request = SearchRequest(resource_type, parameters)
    values = Values()
    statement = query.build(values, request, VIEWPOINT, pairs=True, ordered=True)
    paged = sorting.page(values, statement, sorting.sort_keys(request, True), PAGE + 1, 0)
    compiled = CompiledStatement(paged.build(RESOURCES.c), DIALECT)
    arguments = compiled.arguments(values.parameters())
    per_execution = planned_per_execution(request)
    settings = (
        f"{BROAD_SEARCH_SETTINGS}; SET plan_cache_mode = force_custom_plan"
        if per_execution
        else f"{USUAL_SETTINGS}; SET plan_cache_mode = force_generic_plan"
    )
    await connection.execute(settings)
    await connection.execute(f"PREPARE shape AS {compiled.sql}")
    literals = ", ".join(_literal(argument) for argument in arguments)
    (found,) = await connection.fetchrow(
        f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE shape({literals})"
    )
    await connection.execute("DEALLOCATE shape")
    plan = json.loads(found)[0]["Plan"]
    return int(plan["Actual Rows"]), _rows_read(plan), plan


async def test_each_search_reads_a_bounded_number_of_rows_per_result(
    connection: asyncpg.Connection,
) -> None:
    too_many = []
    for run in range(3):
        await connection.execute("ANALYZE")
        for resource_type, parameters in SHAPES:
            returned, read, plan = await explain(connection, resource_type, parameters)
            bound = ROWS_PER_RESULT * returned if returned else EMPTY_RESULT
            if read > bound:
                too_many.append((run, resource_type, parameters, returned, read, plan))
    assert not too_many, (
        json.dumps(too_many[:1], indent=1)
        + "\n"
        + "\n".join(
            f"run {run}: {kind}?{parameters}: {returned} rows, {read} read"
            for run, kind, parameters, returned, read, _ in too_many
        )
    )
