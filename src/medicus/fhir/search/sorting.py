"""The order of a search's matches (`_sort`, by default the newest created first) as keys on
the resource row, and a page of the matches in that order; paging.py turns the keys of a
page's last match into the cursor of the next."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import Label, func, select
from sqlalchemy.sql import Select

from medicus.fhir.search.geo import on_sphere
from medicus.fhir.search.match import TABLES, circle, invalid, split_escaped, squared_chord
from medicus.fhir.search.ordering import driving_key, ordering
from medicus.fhir.search.parameters import parameters_of
from medicus.fhir.search.request import SearchRequest
from medicus.fhir.search.template import Slot, Sql, Values, constants

MAX_SORT_KEYS = 8
"""Keys of `_sort`: a page after or before a resource compares every key (an OR of ANDs that
grows with their square); SQLite refused that beyond about 16 keys, Python's recursion
limit beyond a few hundred."""
# Per sortable parameter type: the column ascending, the column descending, and the kind of
# value a paging cursor carries for it.
_SORT_COLUMNS = {
    "string": ("value", "value", "text"),
    "token": ("code", "code", "text"),
    "uri": ("value", "value", "text"),
    "reference": ("target_id", "target_id", "text"),
    "number": ("value", "value", "number"),
    "date": ("low", "high", "moment"),
    "quantity": ("low", "high", "number"),
}


@dataclass(frozen=True)
class SortKey:
    """One key of a search's order: its SQL expression (on the resource row), its direction,
    the kind of its values (`text`, `number`, `moment`, `rid`; what a paging cursor carries)
    and whether resources may lack a value (they come last in either direction, and first
    in the reverse order that pages backwards)."""

    expression: Sql
    descending: bool
    kind: str
    nullable: bool = False
    missing_first: bool = False

    def reversed(self) -> SortKey:
        """The key of the opposite order (to read the page before a resource)."""
        return replace(self, descending=not self.descending, missing_first=not self.missing_first)


def _column(row: Any, name: str) -> Any:
    return getattr(row, name)


def _nearest(row: Any, resource_type: str, code: str, centre: tuple[float, float, float]) -> Any:
    table = TABLES["special"].alias().c
    return (
        select(func.min(squared_chord(table, *centre)))
        .where(
            table.rid == row.rid,
            table.resource_type == resource_type,
            table.param == code,
        )
        .scalar_subquery()
    )


def near_point(request: SearchRequest) -> tuple[float, float] | None:
    """The one point a search's `near` is about (None: no `near`, or several points), whose
    distance each match carries."""
    every = parameters_of(request.resource_type)
    points = [
        (name, point)
        for name, value in request.parameters
        if name in every and every[name].type == "special" and every[name].searchable
        for point in split_escaped(value, ",")
    ]
    if len(points) != 1:
        return None
    centre = circle(points[0][1], points[0][0])
    return centre.latitude, centre.longitude


def _near_key(request: SearchRequest, code: str, descending: bool) -> SortKey:
    """`_sort=near`: by the distance from the search's one `near` point (to a resource's
    closest position; as its chord, which grows with the distance, see geo.py). The point is
    part of the statement's shape: such searches are compiled per point."""
    points = [point for value in request.values(code) for point in split_escaped(value, ",")]
    if len(points) != 1:
        raise invalid(f"_sort={code} needs one {code} parameter with one point.", "_sort")
    centre = circle(points[0], code)
    distance = Sql(
        _nearest,
        (request.resource_type, code, on_sphere(centre.latitude, centre.longitude)),
    )
    return SortKey(distance, descending, "number", nullable=True)


def _sort_value(
    row: Any, resource_type: str, kind: str, names: tuple[str, ...], descending: bool
) -> Any:
    """A resource's lowest value of the parameter ascending, its highest descending."""
    table = TABLES[kind].alias().c
    lowest, highest, _ = _SORT_COLUMNS[kind]
    aggregate = (
        func.max(getattr(table, highest)) if descending else func.min(getattr(table, lowest))
    )
    return (
        select(aggregate)
        .where(
            table.rid == row.rid,
            table.resource_type == resource_type,
            table.param.in_(constants(names)),
        )
        .scalar_subquery()
    )


_ID, _LAST_UPDATED, _RID = (Sql(_column, (name,)) for name in ("fhir_id", "last_updated", "rid"))


def _sort_key(request: SearchRequest, key: str) -> SortKey:
    resource_type = request.resource_type
    descending, code = key.startswith("-"), key.removeprefix("-")
    if code == "_id":
        return SortKey(_ID, descending, "text")
    if code == "_lastUpdated":
        return SortKey(_LAST_UPDATED, descending, "moment")
    parameter = parameters_of(resource_type).get(code)
    if parameter is not None and parameter.type == "special" and parameter.searchable:
        return _near_key(request, code, descending)
    if parameter is None or not parameter.searchable or parameter.type not in _SORT_COLUMNS:
        raise invalid(f"_sort: {code} is not a parameter of {resource_type} to sort by.", "_sort")
    names = tuple(parameter.index_names(code))
    value = Sql(_sort_value, (resource_type, parameter.type, names, descending))
    return SortKey(value, descending, _SORT_COLUMNS[parameter.type][2], nullable=True)


def sort_keys(request: SearchRequest, pairs: bool = False) -> list[SortKey]:
    """The order `_sort` asks for (several keys, `-` descending; a resource's lowest value
    ascending, its highest descending), the row id breaking ties so that every resource has a
    place of its own. Without `_sort`: a search driven by a range in the order of its index
    (ordering.py; `pairs` as for `query.build`), any other the most recently created first,
    by row id alone, which an update does not change (`_lastUpdated` does, and would move a
    resource across pages)."""
    keys = [key for value in request.values("_sort") for key in value.split(",")]
    if not keys:
        order = ordering(request)
        if order is None:
            return [SortKey(_RID, True, "rid")]
        driving = SortKey(driving_key(order, pairs), order.descending, order.key_kind)
        return [driving, SortKey(_RID, order.descending, "rid")]
    if not all(keys):
        raise invalid("_sort needs parameter names separated by commas.", "_sort")
    if len(keys) > MAX_SORT_KEYS:
        raise invalid(f"_sort takes at most {MAX_SORT_KEYS} parameters.", "_sort")
    columns = [_sort_key(request, key) for key in keys]
    return [*columns, SortKey(_RID, False, "rid")]


def _where(row: Any, statement: Sql, condition: Sql) -> Select[Any]:
    return statement.build(row).where(condition.build(row))  # type: ignore[no-any-return]


def narrowed(statement: Sql, condition: Sql) -> Sql:
    """`statement` with one condition more."""
    return Sql(_where, (statement, condition))


def _page(
    row: Any, statement: Sql, keys: tuple[SortKey, ...], limit: Slot, offset: Slot
) -> Select[Any]:
    labelled: list[Label[Any]] = [
        key.expression.build(row).label(f"sort_{number}") for number, key in enumerate(keys)
    ]
    order = []
    for key, column in zip(keys, labelled, strict=True):
        direction = column.desc() if key.descending else column.asc()
        # Only where a value may be missing: PostgreSQL would not read the row id's index
        # backwards for `DESC NULLS LAST`.
        if key.nullable:
            direction = direction.nulls_first() if key.missing_first else direction.nulls_last()
        order.append(direction)
    selected: Select[Any] = statement.build(row)
    return selected.add_columns(*labelled).order_by(*order).limit(limit).offset(offset)


def page(values: Values, statement: Sql, keys: Sequence[SortKey], size: int, offset: int) -> Sql:
    """`size` resources of `statement` from `offset` on, in the order of `keys`, those without
    a value last; each key's value is a column after the resource (the last one's values are
    where the next page starts)."""
    return Sql(_page, (statement, tuple(keys), values.slot(size), values.slot(offset)))
