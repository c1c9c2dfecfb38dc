"""Searching the audit trail: `AuditQuery`, the conditions of one page of sealed entries, and
its reading from the search parameters of FHIR `AuditEvent` (`patient`, `agent`, `date`,
`outcome`, `subtype`, `entity`, `_count`, `_cursor`).

The trail is searched newest first; a page after another starts below the last entry it
showed (`_cursor`, its sequence number), so entries sealed meanwhile never shift a page.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from medicus.audit.service import Outcome
from medicus.core.dates import date_range
from medicus.core.errors import ApiError, ErrorDetail
from medicus.core.ids import is_fhir_id

_T = TypeVar("_T")
DEFAULT_PAGE = 50
MAX_PAGE = 1000
MAX_ALTERNATIVES = 100

OUTCOME_CODES = {Outcome.SUCCESS: "0", Outcome.DENIED: "4", Outcome.FAILED: "8"}
"""FHIR's AuditEvent.outcome: 0 success, 4 minor failure (refused), 8 serious failure."""

ACTION_SYSTEM = "urn:medicus:audit-action"
"""The code system of the trail's own action names (`fhir.read`, `access.break-glass`)."""

_REFERENCE_ACTORS = {"Practitioner": "user", "Device": "service"}
"""How `agent` references name the trail's actors: users are Practitioners, service
accounts Devices."""


_TRAIL_ACTORS = ("user", "service", "system", "share-link")
"""The kinds of actor the trail names (`kind:id`)."""


@dataclass(frozen=True)
class AuditQuery:
    """Entries that meet every condition given (None: no condition), newest first."""

    patients: frozenset[str] | None = None
    """Entries concerning any of these Patient records."""
    organisation: str | None = None
    """Entries of actors of this organisation."""
    actors: frozenset[str] | None = None
    outcomes: frozenset[Outcome] | None = None
    actions: frozenset[str] | None = None
    targets: frozenset[str] | None = None
    since: dt.datetime | None = None
    """Entries at or after this time."""
    until: dt.datetime | None = None
    """Entries before this time."""
    below: int | None = None
    """Entries before this sequence number (the page after an entry)."""
    limit: int = DEFAULT_PAGE


_SINGLE = ("patient", "agent", "outcome", "subtype", "entity", "_count", "_cursor")
KNOWN = frozenset({*_SINGLE, "date"})


def parse_search(parameters: Iterable[tuple[str, str]]) -> AuditQuery:
    """The query that FHIR AuditEvent search parameters ask for; a 400 naming the parameter
    for anything else or any value that cannot be one. Values of one parameter separated by
    commas are alternatives; `date` may come twice (a range)."""
    given: dict[str, str] = {}
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    for name, value in parameters:
        if name not in KNOWN:
            raise _invalid(name, f"AuditEvent has no search parameter {name!r} here.")
        if name == "date":
            since, until = _narrowed(since, until, value)
        elif name in given:
            raise _invalid(name, f"Give {name} once; separate alternatives with commas.")
        else:
            given[name] = value
    return AuditQuery(
        patients=_each(given, "patient", _patient),
        actors=_each(given, "agent", _actor),
        outcomes=_each(given, "outcome", _outcome),
        actions=_each(given, "subtype", _action),
        targets=_each(given, "entity", _reference),
        since=since,
        until=until,
        below=_number(given, "_cursor", 1, 2**62, None),
        limit=_number(given, "_count", 1, MAX_PAGE, DEFAULT_PAGE) or DEFAULT_PAGE,
    )


def _each(
    given: dict[str, str], name: str, parse: Callable[[str], _T | None]
) -> frozenset[_T] | None:
    if name not in given:
        return None
    parts = given[name].split(",")
    if len(parts) > MAX_ALTERNATIVES:
        raise _invalid(name, f"Give at most {MAX_ALTERNATIVES} values of {name}.")
    found: set[_T] = set()
    for part in parts:
        value = parse(part.strip())
        if value is None:
            raise _invalid(name, f"{part.strip()!r} is not a value of {name}.")
        found.add(value)
    return frozenset(found)


def _patient(value: str) -> str | None:
    kind, _, fhir_id = value.rpartition("/")
    return fhir_id if kind in ("", "Patient") and is_fhir_id(fhir_id) else None


def _actor(value: str) -> str | None:
    """`Practitioner/ID` (a user), `Device/ID` (a service account), or the trail's own
    form (`user:ID`, `share-link:ID` for a collab share link's visitors)."""
    kind, _, subject = value.partition("/")
    if subject and kind in _REFERENCE_ACTORS and is_fhir_id(subject):
        return f"{_REFERENCE_ACTORS[kind]}:{subject}"
    kind, _, subject = value.partition(":")
    return value if kind in _TRAIL_ACTORS and subject else None


def _outcome(value: str) -> Outcome | None:
    return next((outcome for outcome, code in OUTCOME_CODES.items() if code == value), None)


def _action(value: str) -> str | None:
    """A trail action (`fhir.read`, optionally with its system) or a FHIR interaction
    (`read`, `search`: the FHIR hub's)."""
    system, bar, code = value.rpartition("|")
    if bar and system not in (ACTION_SYSTEM, "http://hl7.org/fhir/restful-interaction"):
        return None
    if system == "http://hl7.org/fhir/restful-interaction" or "." not in code:
        return f"fhir.{code}" if code.isalpha() else None
    return code if code.replace(".", "").replace("-", "").isalpha() else None


def _reference(value: str) -> str | None:
    kind, _, fhir_id = value.partition("/")
    return value if kind.isalpha() and is_fhir_id(fhir_id) else None


def _number(
    given: dict[str, str], name: str, lowest: int, highest: int, default: int | None
) -> int | None:
    if name not in given:
        return default
    text = given[name]
    if not (text.isascii() and text.isdigit()) or not lowest <= int(text) <= highest:
        raise _invalid(name, f"{name} must be a whole number from {lowest} to {highest}.")
    return int(text)


_PREFIXES = ("eq", "ge", "gt", "le", "lt")


def _narrowed(
    since: dt.datetime | None, until: dt.datetime | None, value: str
) -> tuple[dt.datetime | None, dt.datetime | None]:
    """The time range `since` to `until` narrowed by one `date` value (`ge2026-11-30`)."""
    prefix = value[:2] if value[:2] in _PREFIXES else "eq"
    found = date_range(value[2:] if value[:2] in _PREFIXES else value)
    if found is None:
        raise _invalid("date", f"{value!r} is not a date with one of the prefixes {_PREFIXES}.")
    low, high = found
    lower = {"eq": low, "ge": low, "gt": high}.get(prefix)
    upper = {"eq": high, "le": high, "lt": low}.get(prefix)
    if lower is not None:
        since = lower if since is None else max(since, lower)
    if upper is not None:
        until = upper if until is None else min(until, upper)
    return since, until


def _invalid(name: str, message: str) -> ApiError:
    return ApiError(
        400, message, errors=[ErrorDetail(message, expression=name)], issue_type="invalid"
    )
