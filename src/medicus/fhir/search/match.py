"""What one search value means for one index row: the conditions on an index table for each
parameter type, with FHIR's prefixes, precision and modifiers, as SQL templates whose values
are slots (template.py). conditions.py wraps them in subqueries; composites combine several of
them on rows of the same element.

Values are cut to their columns' length as they are when indexed, so that a long value still
finds itself."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from decimal import Decimal, DecimalException, InvalidOperation
from operator import eq, ge, gt, le, lt
from typing import Any, cast

from sqlalchemy import ColumnElement, Table

from medicus.core.dates import date_range
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
from medicus.fhir.search.extract import canonical_unit, normalise
from medicus.fhir.search.geo import DEFAULT_DISTANCE, Circle, is_position, metres_in, on_sphere
from medicus.fhir.search.template import (
    TRUE,
    Slot,
    Sql,
    Values,
    all_of,
    any_of,
    compare,
    is_null,
    like,
    negated,
    one_of,
)

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


def _starts_with(values: Values, column: str, text: str) -> Sql:
    """`column` starts with `text`: LIKE for the meaning, and the equivalent byte range so
    that the index is used on both databases (their columns compare byte by byte)."""
    return all_of(
        like(column, values.slot(f"{_escape_like(text)}%")),
        compare(column, ge, values.slot(text)),
        compare(column, lt, values.slot(text + "\U0010ffff")),
    )


def _contains(values: Values, column: str, text: str) -> Sql:
    return like(column, values.slot(f"%{_escape_like(text)}%"))


def _token(values: Values, value: str, name: str, modifier: str | None) -> Sql:
    parts = [part[:255] for part in split_escaped(value, "|")]
    if len(parts) == 1:
        return compare("code", eq, values.slot(parts[0]))
    system, code = parts[0], "|".join(parts[1:])
    conditions = [is_null("system") if system == "" else compare("system", eq, values.slot(system))]
    if code:
        conditions.append(compare("code", eq, values.slot(code)))
    return all_of(*conditions)


def _string(values: Values, value: str, name: str, modifier: str | None) -> Sql:
    wanted = normalise(value)[:255]
    if modifier == "exact":
        # Case and accents count: the value as written, among the rows of its normalised form
        # (which the index finds).
        return all_of(
            compare("value", eq, values.slot(wanted)),
            compare("exact", eq, values.slot(value[:255])),
        )
    if modifier == "contains":
        return _contains(values, "value", wanted)
    return _starts_with(values, "value", wanted)


def _reference(values: Values, value: str, name: str, modifier: str | None) -> Sql:
    parts = value.split("/_history/")[0].rstrip("/").split("/")
    if not parts[-1]:
        raise invalid(f"{name} needs a reference such as Patient/123.", name)
    condition = compare("target_id", eq, values.slot(parts[-1]))
    target_type = parts[-2] if len(parts) >= 2 else modifier
    if not target_type:
        return condition
    return all_of(condition, compare("target_type", eq, values.slot(target_type)))


def _uri(values: Values, value: str, name: str, modifier: str | None) -> Sql:
    value = value[:512]
    if modifier == "below":
        return _starts_with(values, "value", value)
    if modifier == "above":
        cuts = [i for i, char in enumerate(value) if char == "/"] + [len(value)]
        return one_of("value", values.slots(sorted({value[:cut] for cut in cuts if cut > 0})))
    if modifier == "contains":
        return _contains(values, "value", value)
    return compare("value", eq, values.slot(value))


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


def _in_range(
    values: Values,
    columns: tuple[str, str],
    prefix: str,
    value: float,
    start: float,
    end: float,
) -> Sql:
    """FHIR's prefixes on a stored closed range [low, high] (a point: low = high) for a search
    value with the precision range [start, end); `ap` is the closed range of ±10% of the
    value (at least the precision) around it: `ap100` is [90, 110]."""
    low, high = columns
    if prefix in ("eq", "ne"):
        equal = all_of(compare(low, ge, values.slot(start)), compare(high, lt, values.slot(end)))
        return equal if prefix == "eq" else negated(equal)
    if prefix == "ap":
        below, above = _approximately(value, start, end)
        return all_of(compare(low, le, values.slot(above)), compare(high, ge, values.slot(below)))
    column, operator = {
        "gt": (high, gt),
        "lt": (low, lt),
        "ge": (high, ge),
        "le": (low, le),
        "sa": (low, gt),
        "eb": (high, lt),
    }[prefix]
    return compare(column, operator, values.slot(value))


def _approximately(value: float, start: float, end: float) -> tuple[float, float]:
    """The bounds of `ap`: ±10% of the value (at least half its precision), in decimal
    arithmetic, so that `ap100` reaches 90 and 110 exactly rather than a binary neighbour."""
    exact = Decimal(repr(value))
    delta = max(
        abs(exact) * Decimal(repr(_APPROXIMATE)), (Decimal(repr(end)) - Decimal(repr(start))) / 2
    )
    return float(exact - delta), float(exact + delta)


def _number(values: Values, value: str, name: str, modifier: str | None) -> Sql:
    prefix, text = split_prefix(value)
    number, start, end = _decimal(text, name)
    return _in_range(values, ("value", "value"), prefix, number, start, end)


def _quantity(values: Values, value: str, name: str, modifier: str | None) -> Sql:
    """`[prefix]number[|system|code]`. Without a unit the numbers are compared as written;
    with a UCUM unit (or a unit without system) that has a base unit, in the base unit."""
    parts = split_escaped(value, "|")
    if len(parts) not in (1, 3):
        raise invalid(f"{name} must be [prefix]number or [prefix]number|system|code.", name)
    prefix, text = split_prefix(parts[0])
    number, start, end = _decimal(text, name)
    if len(parts) == 1 or not parts[2]:
        return _in_range(values, ("low", "high"), prefix, number, start, end)
    system, code = parts[1], parts[2]
    base = canonical_unit(system or None, code)
    in_base = None
    if base is not None:
        factor, unit = base
        in_base = all_of(
            compare("canonical_code", eq, values.slot(unit)),
            _in_range(
                values,
                ("canonical_low", "canonical_high"),
                prefix,
                number * factor,
                start * factor,
                end * factor,
            ),
        )
        if system:
            return in_base
    unit_slot = values.slot(code)
    as_written = all_of(
        *(
            [compare("system", eq, values.slot(system)), compare("code", eq, unit_slot)]
            if system
            else [any_of(compare("code", eq, unit_slot), compare("unit", eq, unit_slot))]
        ),
        _in_range(values, ("low", "high"), prefix, number, start, end),
    )
    return as_written if in_base is None else any_of(in_base, as_written)


def date_condition(
    values: Values, columns: tuple[str, str], prefix: str, wanted: tuple[dt.datetime, dt.datetime]
) -> Sql:
    """FHIR's prefix semantics on ranges ([low, high) of the value and of the target), as
    R4 states them (search.html#prefix): `eq` the value's range contains the target's, `gt`
    the range above the value overlaps it, `ge` either; `ap` widens the value's range by 10%
    of its distance from now and asks for an overlap."""
    low, high = columns
    start, end = wanted
    if prefix == "ap":
        gap = abs(dt.datetime.now(dt.UTC) - start) * _APPROXIMATE
        return all_of(
            compare(low, lt, values.slot(end + gap)), compare(high, gt, values.slot(start - gap))
        )
    if prefix in ("eq", "ne"):
        # `low < end` follows from the others (low < high); it bounds the index range on
        # `low`, which otherwise ran from `start` to the newest value (a day's encounters
        # read every encounter since that day).
        end_slot = values.slot(end)
        equal = all_of(
            compare(low, ge, values.slot(start)),
            compare(low, lt, end_slot),
            compare(high, le, end_slot),
        )
        return equal if prefix == "eq" else negated(equal)
    # R4: `ge` is "the range above the value overlaps the target's, or the value's range
    # contains it" (high > end, or start <= low and high <= end), which is high > end or
    # low >= start; `le` likewise. A target that only overlaps the value's start (end) is
    # neither.
    if prefix == "ge":
        return any_of(compare(high, gt, values.slot(end)), compare(low, ge, values.slot(start)))
    if prefix == "le":
        # `low < end` follows (low < high): it bounds the index range on `low`.
        end_slot = values.slot(end)
        return all_of(
            compare(low, lt, end_slot),
            any_of(compare(low, lt, values.slot(start)), compare(high, le, end_slot)),
        )
    column, operator, bound = {
        "gt": (high, gt, end),
        "lt": (low, lt, start),
        "sa": (low, ge, end),
        "eb": (high, le, start),
    }[prefix]
    return compare(column, operator, values.slot(bound))


def point_condition(
    values: Values, column: str, prefix: str, wanted: tuple[dt.datetime, dt.datetime]
) -> Sql:
    """The same semantics for a point in time (such as `_lastUpdated`)."""
    start, end = wanted
    if prefix == "ap":
        gap = abs(dt.datetime.now(dt.UTC) - start) * _APPROXIMATE
        start, end = start - gap, end + gap
    if prefix in ("eq", "ap", "ne"):
        equal = all_of(
            compare(column, ge, values.slot(start)), compare(column, lt, values.slot(end))
        )
        return negated(equal) if prefix == "ne" else equal
    operator, bound = {
        "gt": (ge, end),
        "lt": (lt, start),
        "ge": (ge, start),
        "le": (lt, end),
        "sa": (ge, end),
        "eb": (lt, start),
    }[prefix]
    return compare(column, operator, values.slot(bound))


def parse_date(value: str, name: str) -> tuple[str, tuple[dt.datetime, dt.datetime]]:
    prefix, text = split_prefix(value)
    wanted = date_range(text)
    if wanted is None:
        raise invalid(f"'{value}' is not a date for {name}.", name)
    return prefix, wanted


def _date(values: Values, value: str, name: str, modifier: str | None) -> Sql:
    prefix, wanted = parse_date(value, name)
    return date_condition(values, ("low", "high"), prefix, wanted)


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


def squared_chord(table: Any, x: Any, y: Any, z: Any) -> ColumnElement[float]:
    """The square of the chord from a position row's point to (x, y, z) on the unit sphere
    (numbers or slots): it grows with the great-circle distance between them (search/geo.py)."""
    return (  # type: ignore[no-any-return]
        (table.x - x) * (table.x - x)
        + (table.y - y) * (table.y - y)
        + (table.z - z) * (table.z - z)
    )


def _chord_within(table: Any, x: Slot, y: Slot, z: Slot, chord: Slot) -> ColumnElement[bool]:
    return squared_chord(table, x, y, z) <= chord


def _near(values: Values, value: str, name: str, modifier: str | None) -> Sql:
    """A position within the circle: inside its latitude/longitude box (the index's range),
    then closer than its chord."""
    around = circle(value, name)
    if around.covers_earth:
        return TRUE
    south, north = around.latitudes()
    centre = values.slots(on_sphere(around.latitude, around.longitude))
    return all_of(
        compare("latitude", ge, values.slot(south)),
        compare("latitude", le, values.slot(north)),
        any_of(
            *[
                all_of(
                    compare("longitude", ge, values.slot(west)),
                    compare("longitude", le, values.slot(east)),
                )
                for west, east in around.longitudes()
            ]
        ),
        Sql(_chord_within, (*centre, values.slot(around.chord**2))),
    )


_MATCHERS: dict[str, Callable[[Values, str, str, str | None], Sql]] = {
    "token": _token,
    "string": _string,
    "reference": _reference,
    "date": _date,
    "number": _number,
    "quantity": _quantity,
    "uri": _uri,
    "special": _near,
}


def matches(values: Values, kind: str, value: str, name: str, modifier: str | None) -> Sql:
    """The condition on a row of the index table of `kind` for one search value."""
    if not value:
        raise invalid(f"{name} needs a value.", name)
    return _MATCHERS[kind](values, value, name, modifier)
