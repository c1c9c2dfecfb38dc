"""Pairs of parameters searched together: a token and a date (`Observation?code=…&date=ge…`,
`status=…&date=ge…`), kept as rows of their own (`fhir_token_date`) so that the search is one
index range (the code, then the end of the date) and reads only what it finds.

Without them such a search starts from one parameter and checks the other per row: from the
code, every Observation of a code that is a third of all of them, each checked for its date
(7 ms at 10,000 Observations, 16 ms at 20,000: it grew with the data); from the date, every
Observation of the month, each checked for its code. The pair rows cost one row per token
and date of the two parameters of a resource (an Observation: its codings and its status,
each with its effective date).

A pair answers a search when the search starts from one of its parameters (planning.py),
the token has a code (`code=718-7`, `system|718-7`, `|718-7`) and the date is one value
whose prefix bounds one end of the date (`PAIRED_PREFIXES`): two indexes, by the code and
the date's end (`ge`, `gt`, `eb`) or its start (`lt`, `le`, `eq`, `sa`), make each such
search one index range. Lists of values, `ne` and `ap` read the parameters' own rows."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from operator import eq, gt
from typing import Any

from sqlalchemy import ColumnElement, select

from medicus.fhir.models import TOKEN_DATES
from medicus.fhir.search.extract import IndexRows
from medicus.fhir.search.match import date_condition, parse_date, split_escaped
from medicus.fhir.search.template import Sql, Values, all_of, compare

PAIRS: dict[str, tuple[tuple[str, str], ...]] = {
    "Observation": (("code", "date"), ("status", "date")),
    "DiagnosticReport": (("code", "date"), ("status", "date")),
    "Encounter": (("status", "date"),),
    "Procedure": (("code", "date"),),
}
"""Per type, its pairs of a token parameter and a date parameter (searched together often)."""


def pair_name(token: str, date: str) -> str:
    return f"{token}+{date}"


def pair_rows(rid: int, resource_type: str, rows: IndexRows) -> list[dict[str, Any]]:
    """The pair rows of resource `rid` from its extracted index rows (the parameters' own)."""
    found: list[dict[str, Any]] = []
    for token, date in PAIRS.get(resource_type, ()):
        codes = {(system or "", code[:255]) for name, system, code in rows.tokens if name == token}
        moments = {(low, high) for name, low, high in rows.dates if name == date}
        key = {"rid": rid, "resource_type": resource_type, "pair": pair_name(token, date)}
        found += [
            {**key, "system": system[:255], "code": code, "low": low, "high": high}
            for system, code in sorted(codes)
            for low, high in sorted(moments)
        ]
    return found


@dataclass(frozen=True)
class Paired:
    """The places (among the searched parameters) that a condition of index rows answers
    (a pair's, or the join of ordering.py), and it."""

    places: frozenset[int]
    condition: Sql


def _token(values: Values, value: str) -> Sql | None:
    """The token's condition on a pair row, None if a pair cannot answer it (no code)."""
    parts = split_escaped(value, "|")
    if len(parts) > 2 or not parts[-1]:
        return None
    code = compare("code", eq, values.slot(parts[-1][:255]))
    if len(parts) == 1:
        return code
    return all_of(compare("system", eq, values.slot(parts[0][:255])), code)


PAIRED_PREFIXES = ("eq", "ge", "gt", "lt", "le", "sa", "eb")
"""The prefixes whose condition bounds one end of the date: a range of one of the pair
indexes (by the date's end for `ge`, `gt`, `eb`; by its start for `lt`, `le`, `eq`, `sa`).
`ne` and `ap` use the date's own rows."""


def bounded(value: str, name: str) -> tuple[str, tuple[dt.datetime, dt.datetime]] | None:
    """A date value a pair answers, as prefix and range; None for several values or a prefix
    without a bound."""
    if len(split_escaped(value, ",")) > 1:
        return None
    prefix, wanted = parse_date(value, name)
    return (prefix, wanted) if prefix in PAIRED_PREFIXES else None


def date_range(values: Values, prefix: str, wanted: tuple[dt.datetime, dt.datetime]) -> Sql:
    """The date's condition on an index row with `low` and `high` (a pair's, or the date's own),
    a range of one of the indexes by the date's start or end."""
    condition = date_condition(values, ("low", "high"), prefix, wanted)
    if prefix != "ge":
        return condition
    # `high > start` follows from ge's `high > end or low >= start` (low < high); it makes
    # the condition a range of the index on the date's end.
    return all_of(compare("high", gt, values.slot(wanted[0])), condition)


def _in_pair(row: Any, resource_type: str, pair: str, condition: Sql) -> ColumnElement[bool]:
    table = TOKEN_DATES.c
    matched = select(table.rid).where(
        table.resource_type == resource_type, table.pair == pair, condition.build(table)
    )
    return row.rid.in_(matched)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class PairMatch:
    """A pair that can answer two searched parameters: its parameters' names and places."""

    token: str
    date: str
    token_place: int
    date_place: int

    @property
    def name(self) -> str:
        return pair_name(self.token, self.date)


def pair_for(
    resource_type: str, searched: Sequence[tuple[str, str]], driving: int | None
) -> PairMatch | None:
    """The pair that can answer two of the `searched` parameters, if the search starts from
    one of them (`driving`) and their values suit a pair (one code; one bounded date)."""
    for token, date in PAIRS.get(resource_type, ()):
        places = {
            name: next((place for place, (n, _) in enumerate(searched) if n == name), None)
            for name in (token, date)
        }
        token_place, date_place = places[token], places[date]
        if token_place is None or date_place is None or driving not in (token_place, date_place):
            continue
        token_value, date_value = searched[token_place][1], searched[date_place][1]
        if len(split_escaped(token_value, ",")) > 1 or _token(Values(), token_value) is None:
            continue
        if bounded(date_value, date) is not None:
            return PairMatch(token, date, token_place, date_place)
    return None


def pair_condition(values: Values, searched: Sequence[tuple[str, str]], pair: PairMatch) -> Sql:
    """The condition of `pair`'s two parameters on a pair row."""
    token = _token(values, searched[pair.token_place][1])
    moment = bounded(searched[pair.date_place][1], pair.date)
    # pair_for checked both.
    assert token is not None
    assert moment is not None
    return all_of(token, date_range(values, *moment))


def paired(
    values: Values,
    resource_type: str,
    searched: Sequence[tuple[str, str]],
    driving: int | None,
) -> Paired | None:
    """The pair that answers two of the `searched` parameters (`pair_for`), and its
    condition on the searched resources."""
    pair = pair_for(resource_type, searched, driving)
    if pair is None:
        return None
    condition = pair_condition(values, searched, pair)
    in_pair = Sql(_in_pair, (resource_type, pair.name, condition))
    return Paired(frozenset((pair.token_place, pair.date_place)), in_pair)
