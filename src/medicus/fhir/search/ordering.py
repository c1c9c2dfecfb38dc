"""The order of a search without `_sort` whose driving parameter is a range: the order of
the index that parameter reads, so that the first page is the first rows of one index range.

Newest created first (by row id) is every other search's order; for a range it costs the
whole range or a walk past every newer row it does not match. `Patient?birthdate=ge2010-01-01`
newest first either sorted every Patient born since 2010 (150,000 of 1,000,000) or walked
the Patients back from the newest, checking each: 4,000 Patients just created, all born
before 2010, made that 10 ms, and more as they grow. Medplum, HAPI and the FHIR specification
leave the order of an unsorted search to the server. So, without `_sort`:

- a date range (`birthdate=ge…`, `date=lt…`, also a code with a date, which pair rows
  answer, see pairs.py) is ordered by that date, the latest first: by the date's end for
  `ge`, `gt` and `eb`, by its start for `lt`, `le`, `eq` and `sa` (the end and the start
  each have an index that the condition is a range of);
- a string (`family=Mül`, `name:exact=…`) by the matched value (normalised: lower case, no
  accents), alphabetically; Patient `phonetic` by the rows of its (longest) code, which all
  have the same value (search/phonetics.py): in the order of the resources, oldest first;
- then by row id (in the same direction), so that every resource has a place of its own.

The search joins the driving index rows (`driving`) and orders by their column. A resource
with several matching rows (two names of one family, two codings of a code) is found once,
at its best row: the latest date, the first name; a row is kept only if no row of the same
resource is better (`NOT EXISTS`, probed by row id for the few rows of each match), and of
equal rows the one the database keeps first (its physical row: `ctid`, SQLite's `rowid`).
Other searches, `_sort`, the values of `ne`, `ap` or several values (`ge2010,lt1950`) keep
their order."""

from __future__ import annotations

from dataclasses import dataclass, replace
from operator import eq, gt, lt
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, or_
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import expression
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.visitors import InternalTraversal, _TraverseInternalsType
from sqlalchemy.types import NullType

from medicus.fhir.models import TOKEN_DATES
from medicus.fhir.search.conditions import Check, sound_rows
from medicus.fhir.search.match import TABLES, matches, split_escaped
from medicus.fhir.search.pairs import (
    Paired,
    PairMatch,
    bounded,
    date_range,
    pair_condition,
    pair_for,
)
from medicus.fhir.search.parameters import parameters_of
from medicus.fhir.search.phonetics import search_codes
from medicus.fhir.search.planning import driving_parameter
from medicus.fhir.search.request import SearchRequest, is_result_parameter
from medicus.fhir.search.template import Sql, Values, all_of, compare, constants, unindexed

DATE_COLUMNS = {
    "ge": "high",
    "gt": "high",
    "eb": "high",
    "lt": "low",
    "le": "low",
    "eq": "low",
    "sa": "low",
}
"""Per prefix, the column of a date's index rows that its condition is a range of."""

_DRIVING = {
    "date": TABLES["date"].alias("driving"),
    "string": TABLES["string"].alias("driving"),
    "pair": TOKEN_DATES.alias("driving"),
}
_BETTER = {
    "date": TABLES["date"].alias("better"),
    "string": TABLES["string"].alias("better"),
    "pair": TOKEN_DATES.alias("better"),
}


@dataclass(frozen=True)
class Ordering:
    """A search ordered by its driving index: the searched parameter at `place`, a date or a
    string, ordered by `column` of its rows; `pair`: the pair (with this date) that answers
    the search where pair rows may be used."""

    place: int
    kind: str
    column: str
    descending: bool
    pair: PairMatch | None = None

    def table(self, pairs: bool) -> str:
        """The index table the search reads: the pair's rows where they may be used."""
        return "pair" if self.pair is not None and pairs else self.kind

    @property
    def key_kind(self) -> str:
        """The kind of the key's values in a paging cursor (paging.py)."""
        return "moment" if self.kind == "date" else "text"


def _searched(request: SearchRequest) -> list[tuple[str, str]]:
    return [(n, v) for n, v in request.parameters if not is_result_parameter(n)]


def _date_ordering(place: int, name: str, value: str) -> Ordering | None:
    moment = bounded(value, name)
    if moment is None or moment[0] not in DATE_COLUMNS:
        return None
    return Ordering(place, "date", DATE_COLUMNS[moment[0]], descending=True)


def _sound_ordering(place: int, value: str) -> Ordering | None:
    """Patient `phonetic`: by the rows of its (longest) code (search/phonetics.py), which the
    string index holds in the order of the resources."""
    try:
        search_codes(value)
    except ValueError:
        return None  # the condition refuses it
    return Ordering(place, "string", "value", descending=False)


def _driving_sound(
    values: Values, resource_type: str, code: str, value: str
) -> tuple[Sql, Sql | None]:
    """The condition on the driving rows of a `phonetic` value, its longest code (a short
    one, such as Anna's 06, is shared by more names), and the check of its other codes."""
    codes = search_codes(value)  # `ordering` checked the value
    first = max(codes, key=len)
    others = [[sound] for sound in codes if sound != first]
    checked = sound_rows(values, resource_type, code, others, Check.PER_ROW) if others else None
    return compare("value", eq, values.slot(first)), checked


def ordering(request: SearchRequest) -> Ordering | None:
    """How the search is ordered by its driving index, None where it is not (see above)."""
    if request.values("_sort"):
        return None
    searched = _searched(request)
    place = driving_parameter(request).place
    if place is None:
        return None
    pair = pair_for(request.resource_type, searched, place)
    if pair is not None:
        found = _date_ordering(pair.date_place, pair.date, searched[pair.date_place][1])
        return None if found is None else replace(found, pair=pair)
    name, value = searched[place]
    code, _, modifier = name.partition(":")
    parameter = parameters_of(request.resource_type).get(code)
    if parameter is None or not parameter.searchable or len(split_escaped(value, ",")) != 1:
        return None
    if parameter.sounds:
        return _sound_ordering(place, value) if not modifier else None
    if parameter.type == "date" and code != "_lastUpdated" and not modifier:
        return _date_ordering(place, name, value)
    if parameter.type == "string" and modifier in ("", "exact"):
        return Ordering(place, "string", "value", descending=False)
    return None


def _driving_column(row: Any, table: str, column: str) -> Any:
    return getattr(_DRIVING[table].c, column)


def driving_key(order: Ordering, pairs: bool) -> Sql:
    """The sort key's expression: the column of the driving index row."""
    return Sql(_driving_column, (order.table(pairs), order.column))


class _PhysicalRow(expression.ColumnElement[Any]):
    """The database's own identity of a row of `table` (no index row has an id of its own):
    PostgreSQL's `ctid`, SQLite's `rowid`; stable within one statement."""

    inherit_cache = True
    type = NullType()
    _traverse_internals: _TraverseInternalsType = [  # noqa: RUF012 (as SQLAlchemy declares it)
        ("table", InternalTraversal.dp_clauseelement)
    ]

    def __init__(self, table: Any) -> None:
        self.table = table


@compiles(_PhysicalRow)
def _rowid(element: _PhysicalRow, compiler: SQLCompiler, **_: Any) -> str:
    return f"{compiler.preparer.format_alias(element.table)}.rowid"


@compiles(_PhysicalRow, "postgresql")
def _ctid(element: _PhysicalRow, compiler: SQLCompiler, **_: Any) -> str:
    return f"{compiler.preparer.format_alias(element.table)}.ctid"


def _named(table: Any, kind: str, names: tuple[str, ...]) -> ColumnElement[bool]:
    column = table.pair if kind == "pair" else table.param
    return column == names[0] if len(names) == 1 else column.in_(constants(names))  # type: ignore[no-any-return]


def _joined(
    row: Any,
    kind: str,
    resource_type: str,
    names: tuple[str, ...],
    where: Sql,
    column: str,
    descending: bool,
    once: bool,
) -> ColumnElement[bool]:
    driving, better = _DRIVING[kind], _BETTER[kind]
    matched = and_(
        driving.c.rid == row.rid,
        driving.c.resource_type == resource_type,
        _named(driving.c, kind, names),
        where.build(driving.c),
    )
    if once:
        return matched  # no resource has a better row
    ahead = gt if descending else lt
    own, other = getattr(driving.c, column), getattr(better.c, column)
    beats = or_(
        ahead(other, own),
        and_(eq(other, own), _PhysicalRow(better) < _PhysicalRow(driving)),
    )
    # The type must not lead an index on SQLite: the match's own few rows are found by rid.
    superseded = exists().where(
        better.c.rid == driving.c.rid,
        unindexed(better.c.resource_type) == resource_type,
        _named(better.c, kind, names),
        where.build(better.c),
        beats,
    )
    return and_(matched, ~superseded)


def driven(values: Values, request: SearchRequest, order: Ordering, pairs: bool) -> Paired:
    """The join of the driving index rows of a search ordered by them (`ordering`), and the
    places (among the searched parameters) it answers."""
    searched, resource_type = _searched(request), request.resource_type
    kind = order.table(pairs)
    once, others = False, None
    if kind == "pair":
        assert order.pair is not None
        pair = order.pair
        condition = pair_condition(values, searched, pair)
        places = frozenset((pair.token_place, pair.date_place))
        names: tuple[str, ...] = (pair.name,)
    else:
        name, value = searched[order.place]
        code, _, modifier = name.partition(":")
        names = tuple(parameters_of(resource_type)[code].index_names(code))
        if kind == "date":
            prefix, wanted = bounded(value, name) or ("", None)
            assert wanted is not None  # `ordering` checked the value
            condition = date_range(values, prefix, wanted)
        elif parameters_of(resource_type)[code].sounds:
            condition, others = _driving_sound(values, resource_type, code, value)
            once = True  # one row per code of a resource
        else:
            condition = matches(values, "string", value, name, modifier or None)
        places = frozenset((order.place,))
    arguments = (kind, resource_type, names, condition, order.column, order.descending, once)
    joined = Sql(_joined, arguments)
    return Paired(places, joined if others is None else all_of(joined, others))
