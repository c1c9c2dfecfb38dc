"""Where a search starts, without statistics: the most selective of its parameters drives it
(the database starts from the rows that parameter matches, and checks the others per row),
and how it starts from there (`Start`) decides how the caller's visibility is written
(visibility.py) so that SQLite, which plans without statistics, takes the index it should."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from medicus.fhir.search.parameters import SearchParameter, parameters_of
from medicus.fhir.search.request import SearchRequest, is_result_parameter


class Start(Enum):
    """How a search starts: from the ids it names (`IDS`: `_id`, `_list`, `_has`, the type's
    index by id), from index rows or a chain (`ROWS`: by row id; `BROAD`: index rows that may
    be a large share of the type's, a plain token or a date range), or from the type (`TYPE`:
    no parameter, or one without an index of its own: the organisation's resources of the
    type, and those of the persons shared with it)."""

    IDS = "ids"
    ROWS = "rows"
    BROAD = "broad"
    TYPE = "type"


@dataclass(frozen=True)
class DrivingParameter:
    """The searched parameter a search starts from: its place among the searched ones (None:
    the search has none) and how the search starts from it."""

    place: int | None
    start: Start


def _selectivity(resource_type: str, name: str, value: str) -> int:
    """How few rows a parameter is likely to match (lower: fewer), without statistics: the
    search starts from the most selective parameter and checks the others per row. A
    reference (`subject=Patient/1`), an identifier or a chain names one thing; so, nearly,
    do a List's entries and one day (`birthdate=1964-05-17`: a name prefix matches more
    people as the database grows); a plain token (`code`, `status`) or a date range may
    match a large share."""
    code, _, modifier = name.partition(":")
    if code.startswith("_has") or code == "_list" or "." in code:
        return 1
    parameter = parameters_of(resource_type).get(code.split(".")[0])
    if parameter is None or modifier in ("missing", "not"):
        return 9
    if code == "_id" or parameter.type == "reference" or modifier in ("identifier", "of-type"):
        return 0
    if "identifier" in code or (_indexed_date(parameter) and _one_day_or_less(value)):
        return 1
    return {"string": 2, "token": 3, "uri": 3, "composite": 4}.get(parameter.type, 5)


def _indexed_date(parameter: SearchParameter) -> bool:
    """A date with index rows (`_lastUpdated` is a column without an index of its own)."""
    return parameter.type == "date" and parameter.code != "_lastUpdated"


def _one_day_or_less(value: str) -> bool:
    """An `eq` date of day precision or finer, alone (not an OR of several)."""
    moment = value.removeprefix("eq")
    return "," not in moment and len(moment) >= len("2026-01-01") and moment[:1].isdigit()


def _start(name: str, selectivity: int) -> Start:
    """How a search whose most selective parameter is `name` starts (`Start`)."""
    code, _, modifier = name.partition(":")
    if code in ("_id", "_list") or code.startswith("_has"):
        return Start.IDS
    if code == "_lastUpdated" or modifier in ("missing", "not"):
        return Start.TYPE
    return Start.BROAD if selectivity >= _BROAD else Start.ROWS


_BROAD = 3
"""From this selectivity (`_selectivity`) a parameter may match a large share of a type."""


def driving_parameter(request: SearchRequest) -> DrivingParameter:
    """The search parameter the search starts from: the most selective one (the first of
    equals)."""
    searched = [(n, v) for n, v in request.parameters if not is_result_parameter(n)]
    ranked = [_selectivity(request.resource_type, *parameter) for parameter in searched]
    place = min(range(len(searched)), key=ranked.__getitem__, default=None)
    if place is None:
        return DrivingParameter(None, Start.TYPE)
    return DrivingParameter(place, _start(searched[place][0], ranked[place]))


def planned_per_execution(request: SearchRequest) -> bool:
    """Whether the database should plan the search for its values each time (PostgreSQL):
    a broad search's best start depends on how common the value is (`code=718-7` is a third
    of all Observations, another code a few), which a plan made once for any value cannot
    know; its planning costs less than its execution anyway."""
    return driving_parameter(request).start is Start.BROAD
