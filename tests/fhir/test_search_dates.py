"""Date search against an oracle written here from R4's rules (search.html#date, #prefix): a
date, dateTime or instant stands for the range its precision implies (a year, a month, a
day, a minute, a second, or a fraction of a second as written), both in the search and in
the resource; each prefix compares those two ranges. Every prefix at every precision, with
stored values that carry fractions of a second, time zones and periods."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable

import pytest

from tests.fhir.conftest import Hub
from tests.fhir.test_search import create, search_ids

Range = tuple[dt.datetime, dt.datetime]

EARLIEST = dt.datetime.min.replace(tzinfo=dt.UTC)
LATEST = dt.datetime.max.replace(tzinfo=dt.UTC)


def _implicit_range(text: str) -> Range:
    """[start, end) of a FHIR date/dateTime/instant: from its first moment to the first
    moment after its last digit."""
    date, _, time = text.partition("T")
    parts = [int(part) for part in date.split("-")]
    if not time:
        year, month, day = [*parts, 1, 1][:3]
        start = dt.datetime(year, month, day, tzinfo=dt.UTC)
        if len(parts) == 1:
            return start, start.replace(year=year + 1)
        if len(parts) == 2:
            return start, start.replace(year=year + month // 12, month=month % 12 + 1)
        return start, start + dt.timedelta(days=1)
    clock = re.match(r"(\d\d):(\d\d)(?::(\d\d)(?:\.(\d+))?)?(Z|[+-]\d\d:\d\d)$", time)
    assert clock is not None, text
    hours, minutes, seconds, fraction, zone = clock.groups()
    offset = dt.timedelta(0)
    if zone != "Z":
        sign = -1 if zone[0] == "-" else 1
        offset = sign * dt.timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    local = dt.datetime(*parts, int(hours), int(minutes), int(seconds or 0), tzinfo=dt.UTC)
    start = local - offset + dt.timedelta(microseconds=int((fraction or "").ljust(6, "0")[:6]))
    if seconds is None:
        return start, start + dt.timedelta(minutes=1)
    return start, start + dt.timedelta(microseconds=10 ** (6 - min(len(fraction or ""), 6)))


def _contains(value: Range, target: Range) -> bool:
    return value[0] <= target[0] and target[1] <= value[1]


def _approximately(value: Range, target: Range, now: dt.datetime) -> bool:
    """medicus's `ap`: the value's range widened by 10% of its distance from now, overlapping."""
    gap = abs(now - value[0]) / 10
    return target[0] < value[1] + gap and target[1] > value[0] - gap


_PREFIXES: dict[str, Callable[[Range, Range], bool]] = {
    "eq": _contains,
    "ne": lambda value, target: not _contains(value, target),
    "gt": lambda value, target: target[1] > value[1],
    "lt": lambda value, target: target[0] < value[0],
    "ge": lambda value, target: target[1] > value[1] or _contains(value, target),
    "le": lambda value, target: target[0] < value[0] or _contains(value, target),
    "sa": lambda value, target: target[0] >= value[1],
    "eb": lambda value, target: target[1] <= value[0],
}

# What each Observation's `effective[x]` says, and so the range it stands for.
_STORED: dict[str, str | tuple[str | None, str | None]] = {
    "fraction": "2025-06-20T01:54:34.036778Z",
    "fraction-in-berlin": "2025-06-20T03:54:34.036778+02:00",
    "millisecond": "2025-06-20T01:54:34.500Z",
    "tenth": "2025-06-20T01:54:34.9Z",
    "second": "2025-06-20T01:54:34Z",
    "next-second": "2025-06-20T01:54:35Z",
    "end-of-minute": "2025-06-20T01:54:59.999999Z",
    "next-minute": "2025-06-20T01:55:00Z",
    "minute-before": "2025-06-20T01:53:59.999Z",
    "end-of-day-before": "2025-06-19T23:59:59.999999Z",
    "start-of-day-after": "2025-06-21T00:00:00.000001Z",
    "day": "2025-06-20",
    "month": "2025-06",
    "year": "2025",
    "long-ago": "2019-03-01T08:00:00.25Z",
    "period-within-the-minute": ("2025-06-20T01:54:30.5Z", "2025-06-20T01:54:40Z"),
    "period-across-the-second": ("2025-06-20T01:54:33.9Z", "2025-06-20T01:54:34.1Z"),
    "period-open-end": ("2025-06-20T01:54:34.2Z", None),
    "period-open-start": (None, "2025-06-20T01:54:34.2Z"),
}

_SEARCHED = [
    "2025",
    "2025-06",
    "2025-06-20",
    "2025-06-20T01:54Z",
    "2025-06-20T01:54:34Z",
    "2025-06-20T01:54:34.036778Z",
    "2025-06-20T01:54:34.5Z",
    "2025-06-20T03:54:34+02:00",
]


def _stored_range(value: str | tuple[str | None, str | None]) -> Range:
    if isinstance(value, str):
        return _implicit_range(value)
    start, end = value
    return (
        _implicit_range(start)[0] if start else EARLIEST,
        _implicit_range(end)[1] if end else LATEST,
    )


def _observation(value: str | tuple[str | None, str | None]) -> dict[str, object]:
    observation: dict[str, object] = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8310-5"}]},
    }
    if isinstance(value, str):
        observation["effectiveDateTime"] = value
    else:
        start, end = value
        observation["effectivePeriod"] = {
            key: moment for key, moment in (("start", start), ("end", end)) if moment
        }
    return observation


@pytest.fixture
async def stored(hub: Hub) -> dict[str, str]:
    """The id of each stored Observation by its name in _STORED."""
    return {name: await create(hub, _observation(value)) for name, value in _STORED.items()}


async def test_every_prefix_at_every_precision_matches_the_oracle(
    hub: Hub, stored: dict[str, str]
) -> None:
    names = {fhir_id: name for name, fhir_id in stored.items()}
    wrong = []
    for searched in _SEARCHED:
        value = _implicit_range(searched)
        for prefix, rule in [*_PREFIXES.items(), ("ap", None)]:
            now = dt.datetime.now(dt.UTC)
            found = await search_ids(
                hub, "/fhir/Observation", date=f"{prefix}{searched}", _count="100"
            )
            expected = {
                name
                for name, stored_value in _STORED.items()
                if (
                    rule(value, _stored_range(stored_value))
                    if rule is not None
                    else _approximately(value, _stored_range(stored_value), now)
                )
            }
            got = {names[fhir_id] for fhir_id in found}
            if got != expected:
                wrong.append(
                    (f"{prefix}{searched}", sorted(got - expected), sorted(expected - got))
                )
    assert wrong == []


async def test_a_second_finds_the_instants_within_it(hub: Hub, stored: dict[str, str]) -> None:
    """The report's case: a value with seconds is that second, so it finds a stored instant
    with microseconds inside it, and `gt`/`ne` do not."""
    found = set(await search_ids(hub, "/fhir/Observation", date="2025-06-20T01:54:34Z"))
    assert {stored["fraction"], stored["fraction-in-berlin"], stored["second"]} <= found
    for prefix in ("gt", "ne"):
        found = set(
            await search_ids(hub, "/fhir/Observation", date=f"{prefix}2025-06-20T01:54:34Z")
        )
        assert stored["fraction"] not in found
