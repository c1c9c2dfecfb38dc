"""What one search value means for one index row: the conditions on an (aliased) index table
for each parameter type, with FHIR's prefixes, precision and modifiers. query.py wraps them in
EXISTS subqueries; composites combine several of them on rows of the same element.

Values are cut to their columns' length as they are when indexed, so that a long value still
finds itself."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from decimal import Decimal, DecimalException, InvalidOperation
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, and_, not_, or_, true

from medicus.core.errors import ApiError, ErrorDetail
from medicus.fhir.models import (
    DateIndexRow,
    NumberIndexRow,
    PositionIndexRow,
    QuantityIndexRow,
    ReferenceIndexRow,
    StringIndexRow,
    TokenIndexRow,
    UriIndexRow,
)
from medicus.fhir.search.extract import canonical_unit, date_range, normalise
from medicus.fhir.search.geo import DEFAULT_DISTANCE, Circle, is_position, metres_in, on_sphere

PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
TABLES: dict[str, Table] = {
    kind: cast(Table, model.__table__)
    for kind, model in {
        "token": TokenIndexRow,
        "string": StringIndexRow,
        "reference": ReferenceIndexRow,
        "date": DateIndexRow,
        "number": NumberIndexRow,
        "quantity": QuantityIndexRow,
        "uri": UriIndexRow,
        "special": PositionIndexRow,
    }.items()
}
"""The index tables by search parameter type, as Core tables: conditions on their columns
(`table.c.code`) cost a fraction of those on ORM attributes, which are built anew for
every search. The one special parameter with index rows is Location's `near`."""
_APPROXIMATE = 0.1


def invalid(message: str, name: str, status: int = 400) -> ApiError:
    """A 400 OperationOutcome whose `expression` names the offending parameter."""
    return ApiError(
        status, message, errors=[ErrorDetail(message, expression=name)], issue_type="invalid"
    )


def split_escaped(text: str, separator: str) -> list[str]:
    """`text` split at `separator`s not escaped with a backslash (FHIR's `\\,` `\\$` `\\|`),
    escapes of the separator removed."""
    parts, current, escaped = [], "", False
    for char in text:
        if escaped:
            current += char if char == separator else "\\" + char
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == separator:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current + ("\\" if escaped else ""))
    return parts


def split_prefix(value: str) -> tuple[str, str]:
    if value[:2] in PREFIXES:
        return value[:2], value[2:]
    return "eq", value


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _starts_with(column: Any, text: str) -> ColumnElement[bool]:
    """`column` starts with `text`: LIKE for the meaning, and the equivalent byte range so
    that the index is used on both databases (their columns compare byte by byte)."""
    return and_(
        column.like(f"{_escape_like(text)}%", escape="\\"),
        column >= text,
        column < text + "\U0010ffff",
    )


def _token(table: Any, value: str, name: str, modifier: str | None) -> ColumnElement[bool]:
    parts = [part[:255] for part in split_escaped(value, "|")]
    if len(parts) == 1:
        return table.code == parts[0]  # type: ignore[no-any-return]
    system, code = parts[0], "|".join(parts[1:])
    conditions = [table.system.is_(None) if system == "" else table.system == system]
    if code:
        conditions.append(table.code == code)
    return and_(*conditions)


def _string(table: Any, value: str, name: str, modifier: str | None) -> ColumnElement[bool]:
    wanted = normalise(value)[:255]
    if modifier == "exact":
        return table.value == wanted  # type: ignore[no-any-return]
    if modifier == "contains":
        return table.value.like(f"%{_escape_like(wanted)}%", escape="\\")  # type: ignore[no-any-return]
    return _starts_with(table.value, wanted)


def _reference(table: Any, value: str, name: str, modifier: str | None) -> ColumnElement[bool]:
    parts = value.split("/_history/")[0].rstrip("/").split("/")
    if not parts[-1]:
        raise invalid(f"{name} needs a reference such as Patient/123.", name)
    condition = table.target_id == parts[-1]
    target_type = parts[-2] if len(parts) >= 2 else modifier
    return and_(condition, table.target_type == target_type) if target_type else condition


def _uri(table: Any, value: str, name: str, modifier: str | None) -> ColumnElement[bool]:
    value = value[:512]
    if modifier == "below":
        return _starts_with(table.value, value)
    if modifier == "above":
        cuts = [i for i, char in enumerate(value) if char == "/"] + [len(value)]
        return table.value.in_({value[:cut] for cut in cuts if cut > 0})  # type: ignore[no-any-return]
    if modifier == "contains":
        return table.value.like(f"%{_escape_like(value)}%", escape="\\")  # type: ignore[no-any-return]
    return table.value == value  # type: ignore[no-any-return]


def _decimal(text: str, name: str) -> tuple[float, float, float]:
    """The value and the range [low, high) its precision implies ('1.0' is [0.95, 1.05)).
    An exponent beyond what decimal arithmetic reaches (`1e999999999`) is no number either."""
    try:
        number = Decimal(text)
        exponent = number.as_tuple().exponent
        if not isinstance(exponent, int):  # NaN, infinity
            raise InvalidOperation
        half = Decimal(5).scaleb(exponent - 1)
        return float(number), float(number - half), float(number + half)
    except DecimalException:
        raise invalid(f"'{text}' is not a number for {name}.", name) from None


def _range_condition(
    low: Any, high: Any, prefix: str, value: float, start: float, end: float
) -> ColumnElement[bool]:
    """FHIR's prefixes on a stored closed range [low, high] (a point: low = high) for a search
    value with the precision range [start, end); `ap` is ±10% of the value (at least the
    precision)."""
    delta = max(abs(value) * _APPROXIMATE, (end - start) / 2)
    equal = and_(low >= start, high < end)
    conditions: dict[str, Callable[[], ColumnElement[bool]]] = {
        "eq": lambda: equal,
        "ne": lambda: not_(equal),
        "gt": lambda: high > value,
        "lt": lambda: low < value,
        "ge": lambda: high >= value,
        "le": lambda: low <= value,
        "sa": lambda: low > value,
        "eb": lambda: high < value,
        "ap": lambda: and_(low < value + delta, high >= value - delta),
    }
    return conditions[prefix]()


def _number(table: Any, value: str, name: str, modifier: str | None) -> ColumnElement[bool]:
    prefix, text = split_prefix(value)
    number, start, end = _decimal(text, name)
    return _range_condition(table.value, table.value, prefix, number, start, end)


def _quantity(table: Any, value: str, name: str, modifier: str | None) -> ColumnElement[bool]:
    """`[prefix]number[|system|code]`. Without a unit the numbers are compared as written;
    with a UCUM unit (or a unit without system) that has a base unit, in the base unit."""
    parts = split_escaped(value, "|")
    if len(parts) not in (1, 3):
        raise invalid(f"{name} must be [prefix]number or [prefix]number|system|code.", name)
    prefix, text = split_prefix(parts[0])
    number, start, end = _decimal(text, name)
    if len(parts) == 1 or not parts[2]:
        return _range_condition(table.low, table.high, prefix, number, start, end)
    system, code = parts[1], parts[2]
    as_written = and_(
        table.system == system if system else or_(table.code == code, table.unit == code),
        table.code == code if system else true(),
        _range_condition(table.low, table.high, prefix, number, start, end),
    )
    base = canonical_unit(system or None, code)
    if base is None:
        return as_written
    factor, unit = base
    in_base = and_(
        table.canonical_code == unit,
        _range_condition(
            table.canonical_low,
            table.canonical_high,
            prefix,
            number * factor,
            start * factor,
            end * factor,
        ),
    )
    return in_base if system else or_(in_base, as_written)


def date_condition(
    low: Any, high: Any, prefix: str, wanted: tuple[dt.datetime, dt.datetime]
) -> ColumnElement[bool]:
    """FHIR's prefix semantics on ranges ([low, high) of the value and of the target); `ap`
    widens the target by 10% of its distance from now (at least its own precision)."""
    start, end = wanted
    # `low < end` follows from the others (low < high); it bounds the index range on `low`,
    # which otherwise ran from `start` to the newest value (a day's encounters read every
    # encounter since that day).
    equal = and_(low >= start, low < end, high <= end)
    if prefix == "ap":
        gap = abs(dt.datetime.now(dt.UTC) - start) * _APPROXIMATE
        return and_(low < end + gap, high > start - gap)
    conditions: dict[str, ColumnElement[bool]] = {
        "eq": equal,
        "ne": not_(equal),
        "gt": high > end,
        "lt": low < start,
        "ge": high > start,
        "le": low < end,
        "sa": low >= end,
        "eb": high <= start,
    }
    return conditions[prefix]


def point_condition(
    moment: Any, prefix: str, wanted: tuple[dt.datetime, dt.datetime]
) -> ColumnElement[bool]:
    """The same semantics for a point in time (such as `_lastUpdated`)."""
    start, end = wanted
    if prefix == "ap":
        gap = abs(dt.datetime.now(dt.UTC) - start) * _APPROXIMATE
        start, end = start - gap, end + gap
    equal = and_(moment >= start, moment < end)
    conditions: dict[str, ColumnElement[bool]] = {
        "eq": equal,
        "ap": equal,
        "ne": not_(equal),
        "gt": moment >= end,
        "lt": moment < start,
        "ge": moment >= start,
        "le": moment < end,
        "sa": moment >= end,
        "eb": moment < start,
    }
    return conditions[prefix]


def parse_date(value: str, name: str) -> tuple[str, tuple[dt.datetime, dt.datetime]]:
    prefix, text = split_prefix(value)
    wanted = date_range(text)
    if wanted is None:
        raise invalid(f"'{value}' is not a date for {name}.", name)
    return prefix, wanted


def _date(table: Any, value: str, name: str, modifier: str | None) -> ColumnElement[bool]:
    prefix, wanted = parse_date(value, name)
    return date_condition(table.low, table.high, prefix, wanted)


def circle(value: str, name: str) -> Circle:
    """`latitude|longitude[|distance[|units]]` (degrees; a UCUM length, km if none): the
    positions a `near` value stands for, DEFAULT_DISTANCE around it without a distance."""
    parts = split_escaped(value, "|")
    if not 2 <= len(parts) <= 4:
        raise invalid(f"{name} must be latitude|longitude|distance|units.", name)
    latitude, longitude = (_decimal(part, name)[0] for part in parts[:2])
    if not is_position(latitude, longitude):
        message = f"{name}: the latitude must be within ±90 and the longitude within ±180."
        raise invalid(message, name)
    unit = parts[3] if len(parts) > 3 and parts[3] else "km"
    factor = metres_in(unit)
    if factor is None:
        raise invalid(f"{name}: {unit} is not a unit of length (such as km, m, [mi_i]).", name)
    if len(parts) < 3 or not parts[2]:
        return Circle(latitude, longitude, DEFAULT_DISTANCE)
    distance = _decimal(parts[2], name)[0]
    if not 0 <= distance < math.inf:
        raise invalid(f"{name}: the distance must be a number of at least 0.", name)
    return Circle(latitude, longitude, distance * factor)


def squared_chord(table: Any, latitude: float, longitude: float) -> ColumnElement[float]:
    """The square of the chord from a position row's point to (latitude, longitude): it
    grows with the great-circle distance between them (search/geo.py)."""
    x, y, z = on_sphere(latitude, longitude)
    return (  # type: ignore[no-any-return]
        (table.x - x) * (table.x - x)
        + (table.y - y) * (table.y - y)
        + (table.z - z) * (table.z - z)
    )


def _near(table: Any, value: str, name: str, modifier: str | None) -> ColumnElement[bool]:
    """A position within the circle: inside its latitude/longitude box (the index's range),
    then closer than its chord."""
    around = circle(value, name)
    if around.covers_earth:
        return true()
    south, north = around.latitudes()
    return and_(
        table.latitude >= south,
        table.latitude <= north,
        or_(*[table.longitude.between(west, east) for west, east in around.longitudes()]),
        squared_chord(table, around.latitude, around.longitude) <= around.chord**2,
    )


_MATCHERS: dict[str, Callable[[Any, str, str, str | None], ColumnElement[bool]]] = {
    "token": _token,
    "string": _string,
    "reference": _reference,
    "date": _date,
    "number": _number,
    "quantity": _quantity,
    "uri": _uri,
    "special": _near,
}


def matches(
    kind: str, table: Any, value: str, name: str, modifier: str | None
) -> ColumnElement[bool]:
    """The condition on a row of `table` (the index table of `kind`) for one search value."""
    if not value:
        raise invalid(f"{name} needs a value.", name)
    return _MATCHERS[kind](table, value, name, modifier)
