"""Index rows of one resource: what each of its search parameters selects, normalised for
search. Derived data: the index of a resource can always be rebuilt from its JSON."""

from __future__ import annotations

import datetime as dt
import functools
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from medicus.core.dates import date_range
from medicus.fhir.search.geo import is_position, on_sphere
from medicus.fhir.search.parameters import SearchParameter, component_accessor, parameters_of
from medicus.fhir.search.phonetics import name_codes
from medicus.fhir.search.units import UCUM, canonical

_STRING_PARTS = {
    "family",
    "given",
    "prefix",
    "suffix",
    "text",
    "line",
    "city",
    "district",
    "state",
    "postalCode",
    "country",
}


_UNBOUNDED = 1e308


@dataclass
class Quantity:
    """A quantity or range [low, high] as written, and in its base unit (units.py) where
    its unit has one: `canonical` is (low, high, base unit)."""

    low: float
    high: float
    system: str | None
    code: str | None
    unit: str | None
    canonical: tuple[float, float, str] | None = None


@dataclass
class IndexRows:
    """Rows per index table, each starting with the parameter's code. Besides the parameters
    themselves, `code:text` (string) holds a token's display texts, `code:identifier` (token)
    a reference's identifier and `code:of-type` (token) an identifier as (type system,
    "type code|value"), for the modifiers of those names. `positions` are `near`'s (latitude,
    longitude, and x, y, z on the unit sphere). `strings` are normalised and as written (for
    `:exact`); Patient `phonetic`'s are the Kölner Phonetik codes of the names' words
    (search/phonetics.py). `groups` are the elements of composite parameters, each with its
    components' rows under `code$k`."""

    tokens: list[tuple[str, str | None, str]] = field(default_factory=list)
    strings: list[tuple[str, str, str]] = field(default_factory=list)
    references: list[tuple[str, str, str]] = field(default_factory=list)
    dates: list[tuple[str, dt.datetime, dt.datetime]] = field(default_factory=list)
    numbers: list[tuple[str, float]] = field(default_factory=list)
    quantities: list[tuple[str, Quantity]] = field(default_factory=list)
    uris: list[tuple[str, str]] = field(default_factory=list)
    positions: list[tuple[str, float, float, float, float, float]] = field(default_factory=list)
    groups: list[IndexRows] = field(default_factory=list)


INDEXED_STRING = 255
"""Characters of a string kept in the index (the length of `fhir_string.value`): searches
match on them, so a value is found by prefix, `:exact` and `:contains` in its first 255."""


def normalise(text: str) -> str:
    """Lower case without accents, as FHIR string search compares ('Müller' ~ 'muller')."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def _indexed_string(text: str) -> str:
    """`normalise(text)` as far as the index keeps it. Only the start is normalised: a string
    may have a million characters, which would take a second. Four times the kept length, as
    dropped accents shorten the text."""
    return normalise(text[: 4 * INDEXED_STRING])[:INDEXED_STRING]


def _tokens(value: Any) -> list[tuple[str | None, str]]:
    if isinstance(value, bool):
        return [(None, "true" if value else "false")]
    if isinstance(value, str | int):
        return [(None, str(value))]
    if not isinstance(value, dict):
        return []
    if "coding" in value:
        return [pair for coding in value["coding"] for pair in _tokens(coding)]
    code = value.get("code") if "code" in value else value.get("value")
    if code is None:
        return []
    return [(value.get("system"), str(code))]


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        found: list[str] = []
        for key, part in value.items():
            if key in _STRING_PARTS:
                found.extend(part if isinstance(part, list) else [part])
        return [text for text in found if isinstance(text, str)]
    return []


def _reference(value: Any, targets: tuple[str, ...]) -> tuple[str, str] | None:
    reference = value.get("reference") if isinstance(value, dict) else value
    if not isinstance(reference, str) or "/" not in reference:
        return None
    parts = reference.split("/_history/")[0].rstrip("/").split("/")
    target_type, target_id = parts[-2], parts[-1]
    if targets and target_type not in targets:
        return None
    return target_type, target_id


def _dates(value: Any) -> list[tuple[dt.datetime, dt.datetime]]:
    if isinstance(value, str):
        found = date_range(value)
        return [found] if found else []
    if isinstance(value, dict) and ("start" in value or "end" in value):
        start = date_range(value["start"]) if "start" in value else None
        end = date_range(value["end"]) if "end" in value else None
        low = start[0] if start else dt.datetime.min.replace(tzinfo=dt.UTC)
        high = end[1] if end else dt.datetime.max.replace(tzinfo=dt.UTC)
        return [(low, high)]
    return []


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        return None
    try:
        return float(value)
    except ValueError:
        return None


def canonical_unit(system: str | None, code: str | None) -> tuple[float, str] | None:
    """The factor to the base unit of `code` if it is a simple UCUM unit (or has no system)."""
    return canonical(code) if code and system in (None, "", UCUM) else None


def _quantity(value: Any) -> Quantity | None:
    if not isinstance(value, dict):
        return None
    if "low" in value or "high" in value:
        return _quantity_range(_quantity(value.get("low")), _quantity(value.get("high")))
    number = _number(value.get("value"))
    if number is None:
        return None
    system, unit = value.get("system"), value.get("unit")
    code = value.get("code") or (unit if not system else None)
    base = canonical_unit(system, code)
    in_base = (number * base[0], number * base[0], base[1]) if base else None
    return Quantity(number, number, system, code, unit, in_base)


def _quantity_range(low: Quantity | None, high: Quantity | None) -> Quantity | None:
    """A Range: its ends (an open end unbounded), in the unit of its ends."""
    ends = low or high
    if ends is None:
        return None
    canonical_ends = (low or ends).canonical, (high or ends).canonical
    in_base = None
    if canonical_ends[0] and canonical_ends[1]:
        in_base = (
            canonical_ends[0][0] if low else -_UNBOUNDED,
            canonical_ends[1][1] if high else _UNBOUNDED,
            canonical_ends[0][2],
        )
    return Quantity(
        low.low if low else -_UNBOUNDED,
        high.high if high else _UNBOUNDED,
        ends.system,
        ends.code,
        ends.unit,
        in_base,
    )


def position(value: Any) -> tuple[float, float, float, float, float] | None:
    """A Location.position as latitude, longitude and its point on the unit sphere; None if
    it is no position on the Earth (a latitude beyond ±90°, a longitude beyond ±180°)."""
    if not isinstance(value, dict):
        return None
    latitude, longitude = _number(value.get("latitude")), _number(value.get("longitude"))
    if latitude is None or longitude is None or not is_position(latitude, longitude):
        return None
    return latitude, longitude, *on_sphere(latitude, longitude)


def _texts(value: Any) -> list[str]:
    """The display texts of a CodeableConcept or Coding, for the token modifier `:text`."""
    if not isinstance(value, dict):
        return []
    texts = [value[key] for key in ("text", "display") if isinstance(value.get(key), str)]
    for coding in value.get("coding") or []:
        texts.extend(_texts(coding))
    return texts


def _add_token(rows: IndexRows, code: str, value: Any) -> None:
    rows.tokens.extend((code, system, token) for system, token in _tokens(value))
    if "$" in code:
        return
    rows.strings.extend(
        (f"{code}:text", _indexed_string(text), text[:INDEXED_STRING]) for text in _texts(value)
    )
    if isinstance(value, dict) and isinstance(value.get("type"), dict) and "value" in value:
        rows.tokens.extend(
            (f"{code}:of-type", system, f"{kind}|{value['value']}")
            for system, kind in _tokens(value["type"])
        )


def _add_reference(rows: IndexRows, parameter: SearchParameter, value: Any) -> None:
    found = _reference(value, parameter.target_types)
    if found:
        rows.references.append((parameter.code, *found))
    if isinstance(value, dict) and isinstance(value.get("identifier"), dict):
        identifier = value["identifier"]
        rows.tokens.extend((f"{parameter.code}:identifier", s, v) for s, v in _tokens(identifier))


def _add(rows: IndexRows, parameter: SearchParameter, code: str, value: Any) -> None:
    kind = parameter.type
    if kind == "token":
        _add_token(rows, code, value)
    elif kind == "string":
        rows.strings.extend(
            (code, _indexed_string(text), text[:INDEXED_STRING]) for text in _strings(value)
        )
    elif kind == "reference":
        _add_reference(rows, parameter, value)
    elif kind == "date":
        rows.dates.extend((code, low, high) for low, high in _dates(value))
    elif kind == "number" and (number := _number(value)) is not None:
        rows.numbers.append((code, number))
    elif kind == "quantity" and (quantity := _quantity(value)) is not None:
        rows.quantities.append((code, quantity))
    elif kind == "uri" and isinstance(value, str):
        rows.uris.append((code, value))
    elif kind == "special" and (found := position(value)) is not None:
        rows.positions.append((code, *found))


@dataclass(frozen=True)
class _Part:
    """A component of a composite, ready to evaluate: its accessor, whether it starts at the
    resource (`%resource.x`) rather than at the element the composite selects, and the
    parameter (`code$k`, of the component's type) its rows are added as."""

    accessor: Callable[[Any], list[Any]]
    on_resource: bool
    parameter: SearchParameter


@functools.cache
def _parts(resource_type: str, code: str) -> tuple[_Part, ...]:
    composite = parameters_of(resource_type)[code]
    parts = []
    for number, component in enumerate(composite.components):
        on_resource = component.expression.startswith(f"{resource_type}.")
        root = resource_type if on_resource else None
        parts.append(
            _Part(
                component_accessor(component.expression, root),
                on_resource,
                SearchParameter(resource_type, f"{code}${number}", component.type, None),
            )
        )
    return tuple(parts)


def _all_components(
    parts: tuple[_Part, ...], resource: dict[str, Any], element: Any
) -> list[list[Any]] | None:
    """What each component selects in `element`; None as soon as one selects nothing. The
    last component (the value: quantity, concept, date, string) is the one most often
    missing, so it is looked at first."""
    selected: list[list[Any]] = []
    for part in reversed(parts):
        values = part.accessor(resource if part.on_resource else element)
        if not values:
            return None
        selected.append(values)
    selected.reverse()
    return selected


def _composite(rows: IndexRows, parameter: SearchParameter, resource: dict[str, Any]) -> None:
    """One group of rows per element the composite selects, its components' rows under
    `code$k`, so that `code-value-quantity` matches code and value of the same component.
    An element without a value for every component has no value of the composite (a search
    needs all components to match): it gets no rows. Observation's eleven composites would
    otherwise write about a third of all its index rows for values it does not have."""
    if parameter.shared:
        return  # answered from the rows of the parameters it shares (`SearchParameter.shared`)
    parts = _parts(parameter.resource_type, parameter.code)
    for element in parameter.values(resource):
        selected = _all_components(parts, resource, element)
        if selected is None:
            continue
        group = IndexRows()
        for part, values in zip(parts, selected, strict=True):
            for value in values:
                _add(group, part.parameter, part.parameter.code, value)
        rows.groups.append(group)


@functools.cache
def _indexed(resource_type: str) -> tuple[SearchParameter, ...]:
    """The parameters of `resource_type` that have index rows of their own (`_id` and
    `_lastUpdated` are columns of the resource row; a union such as `combo-code` is
    answered from its members' rows)."""
    return tuple(
        parameter
        for parameter in parameters_of(resource_type).values()
        if parameter.searchable
        and parameter.code not in ("_id", "_lastUpdated")
        and not parameter.members
    )


@functools.cache
def has_positions(resource_type: str) -> bool:
    """Whether resources of `resource_type` may have position rows (Locations): only theirs
    are looked for in that table when their index is replaced."""
    return any(parameter.type == "special" for parameter in _indexed(resource_type))


def extract(resource_type: str, resource: dict[str, Any]) -> IndexRows:
    """The index rows of `resource` for its searchable parameters."""
    rows = IndexRows()
    for parameter in _indexed(resource_type):
        if parameter.type == "composite":
            _composite(rows, parameter, resource)
            continue
        if parameter.sounds:
            found = name_codes(parameter.values(resource))
            rows.strings.extend((parameter.code, sound, sound) for sound in found)
            continue
        for value in parameter.values(resource):
            _add(rows, parameter, parameter.code, value)
    return rows
