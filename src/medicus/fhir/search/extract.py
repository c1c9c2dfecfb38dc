"""Index rows of one resource: what each of its search parameters selects, normalised for
search. Derived data: the index of a resource can always be rebuilt from its JSON."""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from medicus.fhir.search.parameters import INDEXED_TYPES, SearchParameter, parameters_of

_DATE = re.compile(
    r"^(?P<year>\d{4})(-(?P<month>\d{2})(-(?P<day>\d{2})"
    r"(T(?P<time>\d{2}:\d{2}(:\d{2}(\.\d+)?)?)(?P<zone>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)
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


@dataclass
class IndexRows:
    tokens: list[tuple[str, str | None, str]] = field(default_factory=list)
    strings: list[tuple[str, str]] = field(default_factory=list)
    references: list[tuple[str, str, str]] = field(default_factory=list)
    dates: list[tuple[str, dt.datetime, dt.datetime]] = field(default_factory=list)


def normalise(text: str) -> str:
    """Lower case without accents, as FHIR string search compares ('Müller' ~ 'muller')."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def date_range(value: str) -> tuple[dt.datetime, dt.datetime] | None:
    """The half-open UTC range [low, high) a FHIR date/dateTime/instant stands for, by its
    precision; None if it is not one (including impossible dates such as 2026-13-01)."""
    found = _DATE.match(value.strip())
    if found is None:
        return None
    try:
        return _range(value.strip(), found)
    except ValueError:
        return None


def _range(value: str, found: re.Match[str]) -> tuple[dt.datetime, dt.datetime]:
    year, month, day = int(found["year"]), found["month"], found["day"]
    if found["time"] is not None:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.UTC)
        low = moment.astimezone(dt.UTC)
        step = dt.timedelta(seconds=1) if found["time"].count(":") == 2 else dt.timedelta(minutes=1)
        return low, low + step
    if day is not None:
        low = dt.datetime(year, int(month), int(day), tzinfo=dt.UTC)
        return low, low + dt.timedelta(days=1)
    if month is not None:
        low = dt.datetime(year, int(month), 1, tzinfo=dt.UTC)
        following = dt.datetime(year + (int(month) == 12), int(month) % 12 + 1, 1, tzinfo=dt.UTC)
        return low, following
    return dt.datetime(year, 1, 1, tzinfo=dt.UTC), dt.datetime(year + 1, 1, 1, tzinfo=dt.UTC)


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


def _add(rows: IndexRows, parameter: SearchParameter, value: Any) -> None:
    code = parameter.code
    if parameter.type == "token":
        rows.tokens.extend((code, system, token) for system, token in _tokens(value))
    elif parameter.type == "string":
        rows.strings.extend((code, normalise(text)) for text in _strings(value))
    elif parameter.type == "reference":
        found = _reference(value, parameter.target_types)
        if found:
            rows.references.append((code, *found))
    elif parameter.type == "date":
        rows.dates.extend((code, low, high) for low, high in _dates(value))


def extract(resource_type: str, resource: dict[str, Any]) -> IndexRows:
    """The index rows of `resource` for the parameter types searched so far."""
    rows = IndexRows()
    for parameter in parameters_of(resource_type).values():
        if parameter.type in INDEXED_TYPES and parameter.code not in ("_id", "_lastUpdated"):
            for value in parameter.values(resource):
                _add(rows, parameter, value)
    return rows
