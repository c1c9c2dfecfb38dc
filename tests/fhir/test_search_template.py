"""Searches as templates: searches that differ only in their values share one compiled
statement (the point of the cache), searches that need different SQL never do, and the
compiled statement is the one that runs (no IN list expanded at run time)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import column, select
from sqlalchemy.dialects import postgresql, sqlite

from medicus.access.policy import Viewpoint
from medicus.core.driver import CompiledStatement, StatementCache
from medicus.core.errors import ApiError
from medicus.fhir.models import RESOURCES, StoredResource
from medicus.fhir.search import paging, query, sorting
from medicus.fhir.search.include import Found, included, includes_of
from medicus.fhir.search.request import MAX_ALTERNATIVES, MAX_VALUES, SearchRequest
from medicus.fhir.search.template import Sql, Values
from tests.support.resources import KVNR

VIEWPOINT = Viewpoint("hospital-a", "user:someone", dt.datetime(2026, 11, 30, tzinfo=dt.UTC))


def _shape(resource_type: str, *parameters: tuple[str, str]) -> tuple[Sql, Values]:
    values = Values()
    request = SearchRequest(resource_type, parameters)
    return query.build(values, request, VIEWPOINT), values


# Pairs of searches with the same shape and different values.
SAME_SHAPE = [
    ("Patient", [("identifier", f"{KVNR}|A1")], [("identifier", f"{KVNR}|B22")]),
    (
        "Patient",
        [("family", "Mül"), ("birthdate", "1964")],
        [("family", "X"), ("birthdate", "2001")],
    ),
    (
        "Observation",
        [("subject", "Patient/1"), ("code", "http://loinc.org|718-7"), ("date", "ge2025")],
        [("subject", "Patient/2"), ("code", "http://loinc.org|2345-7"), ("date", "ge2020-01-05")],
    ),
    (
        "Observation",
        [("value-quantity", "gt5.4|http://unitsofmeasure.org|mg")],
        [("value-quantity", "gt7|http://unitsofmeasure.org|g")],
    ),
    ("Observation", [("code-value-quantity", "a|b$lt5")], [("code-value-quantity", "c|d$lt9.5")]),
    (
        "Observation",
        [("subject:Patient.identifier", f"{KVNR}|A1")],
        [("subject:Patient.identifier", f"{KVNR}|Z9")],
    ),
    (
        "Patient",
        [("_has:Observation:patient:code", "718-7")],
        [("_has:Observation:patient:code", "1-8")],
    ),
    ("Patient", [("_id", "a,b,c")], [("_id", "d,e,f,g")]),
    ("Patient", [("_list", "l1")], [("_list", "l2")]),
    ("Location", [("near", "52.5|13.4|10|km")], [("near", "48.1|11.6|2|km")]),
    ("Patient", [("name:contains", "ab")], [("name:contains", "xyz")]),
    ("Condition", [("code:not", "I10")], [("code:not", "E11.9")]),
]
# Pairs that need different SQL.
OTHER_SHAPE = [
    ("Observation", [("date", "ge2025")], [("date", "lt2025")]),
    ("Observation", [("code", "718-7")], [("code", "http://loinc.org|718-7")]),
    ("Observation", [("code", "|718-7")], [("code", "http://loinc.org|718-7")]),
    (
        "Observation",
        [("value-quantity", "5")],
        [("value-quantity", "5|http://unitsofmeasure.org|mg")],
    ),
    ("Patient", [("family", "a")], [("family:exact", "a")]),
    ("Patient", [("family", "a,b")], [("family", "a")]),
    ("Patient", [("_id", "a,b")], [("_id", "a,b,c")]),
]


@pytest.mark.parametrize(("resource_type", "first", "second"), SAME_SHAPE)
def test_searches_differing_in_values_share_a_statement(
    resource_type: str, first: list[tuple[str, str]], second: list[tuple[str, str]]
) -> None:
    (one, one_values), (two, two_values) = (
        _shape(resource_type, *first),
        _shape(resource_type, *second),
    )
    assert one == two
    assert hash(one) == hash(two)
    assert one_values.items != two_values.items


@pytest.mark.parametrize(("resource_type", "first", "second"), OTHER_SHAPE)
def test_searches_needing_other_sql_do_not(
    resource_type: str, first: list[tuple[str, str]], second: list[tuple[str, str]]
) -> None:
    assert _shape(resource_type, *first)[0] != _shape(resource_type, *second)[0]


@pytest.mark.parametrize("dialect", [sqlite.dialect(), postgresql.asyncpg.dialect()])  # type: ignore[attr-defined]
@pytest.mark.parametrize(("resource_type", "first", "second"), SAME_SHAPE + OTHER_SHAPE)
def test_every_search_compiles_to_plain_parameterised_sql(
    dialect: Any, resource_type: str, first: list[tuple[str, str]], second: list[tuple[str, str]]
) -> None:
    """No value is written into the SQL, and every slot is a parameter of the statement."""
    statement, values = _shape(resource_type, *first)
    keys = sorting.sort_keys(SearchRequest(resource_type, [("_sort", "-_lastUpdated")]))
    paged = sorting.page(values, statement, keys, 11, 0)
    compiled = CompiledStatement(paged.build(RESOURCES.c), dialect)
    arguments = compiled.arguments(values.parameters())
    for value in values.items:
        if isinstance(value, str) and len(value) > 2:
            assert value not in compiled.sql
    assert len(arguments) >= len(values.items)


def test_a_cursor_page_and_a_count_are_templates_too() -> None:
    request = SearchRequest("Patient", [("family", "Mül"), ("_sort", "birthdate,-family")])
    shapes = []
    for position in ([None, "müller", 5], ["1964-01-01T00:00:00+00:00", None, 9]):
        values = Values()
        statement = query.build(values, request, VIEWPOINT)
        keys = sorting.sort_keys(request)
        bounded = sorting.narrowed(statement, paging.after(values, keys, position))
        paged = sorting.page(values, bounded, keys, 11, 0)
        shapes.append((paged, query.count_of(values, statement)))
    assert shapes[0][1] == shapes[1][1]
    # A missing sort value is a different condition (IS NULL), not a value.
    assert shapes[0][0] != shapes[1][0]


def test_includes_of_pages_of_similar_size_share_a_statement() -> None:
    request = SearchRequest("Observation", [("_include", "Observation:subject")])
    found = [Found(rid, "Observation", f"o{rid}") for rid in range(1, 8)]
    shapes = []
    for size in (5, 6, 7):
        page = found[:size]
        values = Values()
        shapes.append(
            included(
                values, includes_of(request), page, [item.rid for item in page], VIEWPOINT, None
            )
        )
    assert shapes[0] == shapes[1] == shapes[2]


def test_a_piece_cannot_capture_values() -> None:
    captured = "Patient/1"

    def render(row: Any) -> Any:
        return row.fhir_id == captured

    with pytest.raises(TypeError, match="must not capture"):
        Sql(render)


def test_a_statement_with_an_expanding_list_is_refused() -> None:
    statement = select(column("rid")).where(column("rid").in_([1, 2]))
    with pytest.raises(ValueError, match="cannot run this statement as compiled"):
        CompiledStatement(statement, sqlite.dialect())


def test_the_cache_compiles_once_per_key_and_forgets_the_least_recently_used() -> None:
    cache = StatementCache(sqlite.dialect(), size=2)
    builds: list[str] = []

    def build(name: str) -> Any:
        builds.append(name)
        return select(column(name))

    first = cache.compiled("a", lambda: build("a"))
    assert cache.compiled("a", lambda: build("a")) is first
    cache.compiled("b", lambda: build("b"))
    cache.compiled("a", lambda: build("a"))
    cache.compiled("c", lambda: build("c"))  # forgets b, used least recently
    cache.compiled("a", lambda: build("a"))
    cache.compiled("b", lambda: build("b"))
    assert builds == ["a", "b", "c", "b"]


def test_a_found_resource_has_the_columns_of_the_table_in_order() -> None:
    assert StoredResource._fields == tuple(column.key for column in RESOURCES.c)


@pytest.mark.parametrize("dialect", [sqlite.dialect(), postgresql.asyncpg.dialect()])  # type: ignore[attr-defined]
def test_a_page_sorted_by_a_number_compiles(dialect: Any) -> None:
    """The sort value of a quantity is a double: asyncpg's driver returns it as a float."""
    request = SearchRequest("Observation", [("_sort", "value-quantity")])
    values = Values()
    statement = query.build(values, request, VIEWPOINT)
    paged = sorting.page(values, statement, sorting.sort_keys(request), 11, 0)
    compiled = CompiledStatement(paged.build(RESOURCES.c), dialect)
    row = (1, "Observation", "o1", 1, None, False, "h", "{}", "p1", 5.5, 1)
    assert compiled.row(row)[-2] == 5.5


def test_a_search_with_too_many_values_in_all_is_refused() -> None:
    """Each parameter within its limit, together beyond what one statement may bind."""
    ids = ",".join(f"p{number}" for number in range(MAX_ALTERNATIVES))
    parameters = [("_id", ids)] * (MAX_VALUES // MAX_ALTERNATIVES + 1)
    with pytest.raises(ApiError) as refused:
        _shape("Patient", *parameters)
    assert refused.value.status == 400
