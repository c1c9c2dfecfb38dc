"""FHIR dates, dateTimes and instants as the time ranges they stand for. The FHIR hub's search
index and the access rules' consent periods read them the same way."""

from __future__ import annotations

import datetime as dt
import re

_DATE = re.compile(
    r"^(?P<year>\d{4})(-(?P<month>\d{2})(-(?P<day>\d{2})"
    r"(T(?P<time>\d{2}:\d{2}(:\d{2}(\.\d+)?)?)(?P<zone>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)


def date_range(value: str) -> tuple[dt.datetime, dt.datetime] | None:
    """The half-open UTC range [low, high) a FHIR date/dateTime/instant stands for, by its
    precision (down to fractions of a second); None if it is not one (including impossible
    dates such as 2026-13-01)."""
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
        return low, low + _precision(found["time"])
    if day is not None:
        low = dt.datetime(year, int(month), int(day), tzinfo=dt.UTC)
        return low, low + dt.timedelta(days=1)
    if month is not None:
        low = dt.datetime(year, int(month), 1, tzinfo=dt.UTC)
        following = dt.datetime(year + (int(month) == 12), int(month) % 12 + 1, 1, tzinfo=dt.UTC)
        return low, following
    return dt.datetime(year, 1, 1, tzinfo=dt.UTC), dt.datetime(year + 1, 1, 1, tzinfo=dt.UTC)


def _precision(time: str) -> dt.timedelta:
    """The unit of a time's last digit: a minute, a second, or a fraction of one
    (`01:54:34.036778` stands for its microsecond, `01:54:34.5` for a tenth of a second);
    a microsecond at the finest, as Python's times go no further."""
    if time.count(":") == 1:
        return dt.timedelta(minutes=1)
    digits = len(time.partition(".")[2])
    return dt.timedelta(microseconds=10 ** (6 - min(digits, 6)))
