"""Query plans of typical searches (SQLite's EXPLAIN QUERY PLAN on the migrated schema): a
search starts from its most selective parameter and checks the others per candidate row, so
that its cost follows its result, not the share of the database an unselective parameter
matches (`code=718-7` is a third of all Observations); includes find their targets by key."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlalchemy.dialects import postgresql, sqlite

from medicus import migrations
from medicus.access.policy import Viewpoint
from medicus.core.driver import CompiledStatement
from medicus.fhir.models import RESOURCES
from medicus.fhir.search import query
from medicus.fhir.search.include import Found, included, includes_of
from medicus.fhir.search.request import SearchRequest
from medicus.fhir.search.template import Sql, Values

VIEWPOINT = Viewpoint("hospital-a", "user:someone", dt.datetime(2026, 11, 30, tzinfo=dt.UTC))


@pytest.fixture(scope="module")
def plan(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    path: Path = tmp_path_factory.mktemp("plans") / "plans.db"
    migrations.upgrade(f"sqlite+aiosqlite:///{path}")
    engine = create_engine(f"sqlite:///{path}")

    def explain(search: tuple[Sql, Values]) -> str:
        """The plan of the statement as it runs: compiled once, values bound."""
        statement, values = search
        compiled = CompiledStatement(statement.build(RESOURCES.c), engine.dialect)
        arguments = tuple(compiled.arguments(values.parameters()))
        with engine.connect() as connection:
            plan = f"EXPLAIN QUERY PLAN {compiled.sql}"
            rows = connection.exec_driver_sql(plan, arguments).all()
        return "\n".join(str(row[3]) for row in rows)

    yield explain
    engine.dispose()


def _search(*parameters: tuple[str, str], resource_type: str = "Observation") -> tuple[Sql, Values]:
    values = Values()
    return query.build(
        values, SearchRequest(resource_type, parameters), VIEWPOINT, pairs=True
    ), values


def test_a_patients_labs_start_from_the_patient(plan) -> None:  # type: ignore[no-untyped-def]
    found = plan(
        _search(
            ("code", "http://loinc.org|718-7"),
            ("date", "ge2025-01-01"),
            ("subject", "Patient/p1"),
        )
    )
    assert "ix_fhir_reference_lookup" in found
    assert "ix_fhir_token_lookup" not in found
    assert "ix_fhir_date_lookup" not in found
    assert "ix_fhir_token_rid (rid=?)" in found
    assert "ix_fhir_date_rid (rid=?)" in found


def test_a_single_parameter_is_read_from_its_index(plan) -> None:  # type: ignore[no-untyped-def]
    found = plan(
        _search(("identifier", "http://fhir.de/sid/gkv/kvid-10|A1"), resource_type="Patient")
    )
    assert "ix_fhir_token_lookup" in found


def test_includes_find_their_targets_by_key(plan) -> None:  # type: ignore[no-untyped-def]
    request = SearchRequest("Observation", [("_include", "Observation:subject")])
    values = Values()
    page = [Found(1, "Observation", "o1")]
    statement = included(values, includes_of(request), page, [1], VIEWPOINT, None)
    assert statement is not None
    found = plan((statement, values))
    assert "(resource_type=? AND fhir_id=?)" in found
    assert "ix_fhir_resource_listing" not in found


def test_a_day_reads_only_that_days_index_range(plan) -> None:  # type: ignore[no-untyped-def]
    """`date=2026-03-01` read every date row from that day to the newest (at 1M resources,
    a day's encounters took 170 ms instead of a few)."""
    found = plan(_search(("date", "2026-03-01"), resource_type="Encounter"))
    assert "ix_fhir_date_lookup (resource_type=? AND param=? AND low>? AND low<?)" in found


def test_a_birth_date_starts_before_a_name(plan) -> None:  # type: ignore[no-untyped-def]
    """A name prefix matches more people the larger the database (`family=Familie123` also
    finds Familie1230…); one day of birth stays a handful."""
    found = plan(
        _search(("family", "Familie123"), ("birthdate", "1964-05-17"), resource_type="Patient")
    )
    assert "ix_fhir_date_lookup" in found
    assert "ix_fhir_string_lookup" not in found
    assert "ix_fhir_string_rid (rid=?)" in found


def test_a_year_of_birth_does_not_start_before_a_name(plan) -> None:  # type: ignore[no-untyped-def]
    found = plan(_search(("family", "Meier"), ("birthdate", "1964"), resource_type="Patient"))
    assert "ix_fhir_string_lookup" in found
    assert "ix_fhir_date_lookup" not in found


def test_a_day_of_last_updated_does_not_lead(plan) -> None:  # type: ignore[no-untyped-def]
    """`_lastUpdated` is a column of the resource without an index: leading with it would
    check the other parameters for every resource of the type."""
    found = plan(_search(("_lastUpdated", "2026-03-01"), ("code", "http://loinc.org|718-7")))
    assert "ix_fhir_token_lookup" in found
    assert "ix_fhir_token_rid (rid=?)" not in found


def test_near_reads_a_band_of_latitudes(plan) -> None:  # type: ignore[no-untyped-def]
    """A box around the circle is an index range; the exact distance is checked after."""
    found = plan(_search(("near", "52.52|13.40|10|km"), resource_type="Location"))
    assert (
        "ix_fhir_position_lookup (resource_type=? AND param=? AND latitude>? AND latitude<?)"
        in found
    )


def test_near_is_checked_per_location_of_an_organisation(plan) -> None:  # type: ignore[no-untyped-def]
    found = plan(
        _search(
            ("near", "52.52|13.40|10|km"),
            ("organization", "Organization/o1"),
            resource_type="Location",
        )
    )
    assert "ix_fhir_reference_lookup" in found
    assert "ix_fhir_position_rid (rid=?)" in found
    assert "ix_fhir_position_lookup" not in found


def test_a_list_starts_from_its_entries(plan) -> None:  # type: ignore[no-untyped-def]
    """The List by its key, its rows by its row id, and the searched resources by the type
    and id its items name: never every resource of the type, nor every List's items."""
    found = plan(_search(("_list", "l1"), ("family", "Meier"), resource_type="Patient"))
    assert "(resource_type=? AND fhir_id=?)" in found
    assert "ix_fhir_reference_rid (rid=?)" in found
    assert "ix_fhir_reference_lookup" not in found
    assert "ix_fhir_string_lookup" not in found
    assert "USING INDEX sqlite_autoindex_fhir_resource_1 (resource_type=?)\n" not in found


@pytest.mark.parametrize(
    ("resource_type", "parameters"),
    [
        ("Observation", [("code", "http://loinc.org|718-7")]),
        ("Observation", [("subject", "Patient/p1"), ("code", "http://loinc.org|718-7")]),
        ("Observation", [("subject:Patient.family", "Meier")]),
        ("Patient", [("_id", "a,b")]),
        ("Patient", [("_has:Observation:subject:code", "718-7")]),
        ("Patient", []),
        ("Patient", [("_lastUpdated", "gt2020-01-01")]),
    ],
)
def test_no_search_reads_every_resource_of_its_type(  # type: ignore[no-untyped-def]
    plan, resource_type: str, parameters: list[tuple[str, str]]
) -> None:
    """What the caller may see (its organisation's, or shared with it) is an OR: a search
    still starts from its parameter's rows or ids, or without one from the organisation's
    resources of the type and those of the persons shared with it, never from the type."""
    found = plan(_search(*parameters, resource_type=resource_type)) + "\n"
    assert (
        "fhir_resource USING INDEX sqlite_autoindex_fhir_resource_1 (resource_type=?)\n"
        not in found
    )
    assert "SCAN fhir_resource\n" not in found
    if not parameters or parameters[0][0] == "_lastUpdated":
        assert "ix_fhir_resource_listing (organisation_id=? AND resource_type=?)" in found
        assert "ix_fhir_resource_patient (patient_id=?)" in found


def test_dates_up_to_a_day_read_the_index_up_to_it(plan) -> None:  # type: ignore[no-untyped-def]
    """`le` (before the day, or within it) reads the date rows up to the day's end, not every
    row of the parameter."""
    found = plan(_search(("date", "le2026-03-01"), resource_type="Encounter"))
    assert "ix_fhir_date_lookup (resource_type=? AND param=? AND low<?)" in found


def test_lastn_starts_from_the_patient(plan) -> None:  # type: ignore[no-untyped-def]
    """`$lastn` ranks only the matches of its search (a patient's few rows), finding their
    codes and dates by row id, not every Observation's."""
    values = Values()
    request = SearchRequest("Observation", [("patient", "p1"), ("category", "vital-signs")])
    found = plan((query.lastn(values, request, VIEWPOINT, 1, 1001), values))
    assert "ix_fhir_reference_lookup" in found
    assert "SEARCH codes USING INDEX ix_fhir_token_rid (rid=?)" in found
    assert "ix_fhir_token_lookup" not in found
    assert "ix_fhir_date_lookup" not in found
    assert "SCAN fhir_resource\n" not in found + "\n"


def test_a_code_and_a_date_range_are_one_range_of_pair_rows(plan) -> None:  # type: ignore[no-untyped-def]
    found = plan(_search(("code", "http://loinc.org|718-7"), ("date", "ge2026-11-01")))
    assert "ix_fhir_token_date_lookup (resource_type=? AND pair=? AND code=? AND high>?)" in found
    assert "ix_fhir_token_lookup" not in found
    assert "ix_fhir_date_lookup" not in found


@pytest.mark.parametrize(
    ("date", "index"),
    [
        (
            "lt2021-01-01",
            "ix_fhir_token_date_start (resource_type=? AND pair=? AND code=? AND low<?)",
        ),
        (
            "eq2021-03-04",
            "ix_fhir_token_date_start (resource_type=? AND pair=? AND code=? AND low>? AND low<?)",
        ),
        (
            "sa2025-01-01",
            "ix_fhir_token_date_start (resource_type=? AND pair=? AND code=? AND low>?)",
        ),
        (
            "eb2021-01-01",
            "ix_fhir_token_date_lookup (resource_type=? AND pair=? AND code=? AND high<?)",
        ),
    ],
)
def test_other_prefixes_are_a_range_of_pair_rows_by_the_date_s_start_or_end(  # type: ignore[no-untyped-def]
    plan, date: str, index: str
) -> None:
    found = plan(_search(("status", "final"), ("date", date)))
    assert index in found
    assert "ix_fhir_token_lookup" not in found
    assert "ix_fhir_date_lookup" not in found


def test_the_type_is_hidden_from_sqlite_only() -> None:
    """SQLite must not start from the type (`unindexed`); PostgreSQL must see the column,
    whose statistics an expression would hide (estimated at 0.5 % of rows whatever it held)."""
    statement, _ = _search(("code", "http://loinc.org|718-7"), ("subject", "Patient/p1"))
    built = statement.build(RESOURCES.c)
    assert "|| ''" in str(built.compile(dialect=sqlite.dialect()))  # type: ignore[no-untyped-call]
    assert "|| ''" not in str(built.compile(dialect=postgresql.dialect()))  # type: ignore[no-untyped-call]


@pytest.mark.parametrize("value", ["Maier", "Hans Maier", "Maier,Schmidt"])
def test_a_sound_is_read_from_the_string_index(plan, value: str) -> None:  # type: ignore[no-untyped-def]
    """Patient `phonetic` reads its codes' rows from the string index (search/phonetics.py),
    each word's code a lookup of its own."""
    found = plan(_search(("phonetic", value), resource_type="Patient"))
    lookup = "COVERING INDEX ix_fhir_string_lookup (resource_type=? AND param=? AND value=?)"
    assert found.count(lookup) == len(value.split())
    assert "SCAN" not in found


def test_a_birth_date_starts_before_a_sound(plan) -> None:  # type: ignore[no-untyped-def]
    found = plan(
        _search(("phonetic", "Maier"), ("birthdate", "1964-05-17"), resource_type="Patient")
    )
    assert "ix_fhir_date_lookup" in found
    assert "ix_fhir_string_lookup" not in found
    assert "ix_fhir_string_rid (rid=?)" in found
