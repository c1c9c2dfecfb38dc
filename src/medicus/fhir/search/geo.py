"""Distances on the Earth for Location's `near` (WGS84 latitude and longitude, in degrees).

A position is indexed with its latitude and longitude and with its point on the unit sphere
(x, y, z). A search reads the index for the latitude/longitude box around its circle, then
keeps the points whose straight line to the centre through the sphere (the chord) is at most
the chord of the search distance: the same order as the great-circle (haversine) distance on
a sphere of the Earth's mean radius, and plain arithmetic, which SQLite and PostgreSQL
compute alike (SQLite has trigonometric functions only when compiled with them)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from medicus.fhir.search.units import canonical

EARTH_RADIUS = 6_371_008.8
"""Metres: the Earth's mean radius (IUGG), the sphere great-circle distances are measured on."""
DEFAULT_DISTANCE = 10_000.0
"""Metres: what `near` means without a distance (FHIR leaves it to the server)."""
_LENGTHS = {"[mi_i]": 1609.344, "[nmi_i]": 1852.0, "[yd_i]": 0.9144, "[ft_i]": 0.3048}
"""UCUM's customary lengths in metres; metric ones (m, km, cm...) come from units.py."""
_BOX_MARGIN = 1e-6
"""Degrees (about 10 cm) the box is widened by, so that rounding in its trigonometry never
leaves out a point that the exact test keeps."""


def metres_in(unit: str) -> float | None:
    """The metres in one `unit`, a UCUM length; None if `unit` is no length."""
    if unit in _LENGTHS:
        return _LENGTHS[unit]
    base = canonical(unit)
    return base[0] if base is not None and base[1] == "m" else None


def is_position(latitude: float, longitude: float) -> bool:
    return -90 <= latitude <= 90 and -180 <= longitude <= 180


def on_sphere(latitude: float, longitude: float) -> tuple[float, float, float]:
    """The point at `latitude`, `longitude` on the unit sphere."""
    north, east = math.radians(latitude), math.radians(longitude)
    return math.cos(north) * math.cos(east), math.cos(north) * math.sin(east), math.sin(north)


def distance(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Metres along the Earth's surface between two positions (latitude, longitude)."""
    chord = math.dist(on_sphere(*a), on_sphere(*b))
    return 2 * math.asin(min(chord / 2, 1.0)) * EARTH_RADIUS


@dataclass(frozen=True)
class Circle:
    """The positions within `radius` metres along the Earth's surface of a centre."""

    latitude: float
    longitude: float
    radius: float

    @property
    def angle(self) -> float:
        """The radius as an angle at the Earth's centre, in radians."""
        return self.radius / EARTH_RADIUS

    @property
    def covers_earth(self) -> bool:
        """Whether every position is within the radius (half the circumference or more)."""
        return self.angle >= math.pi

    @property
    def chord(self) -> float:
        """The straight-line distance through the unit sphere from the centre to a point
        `radius` away along the surface."""
        return 2 * math.sin(min(self.angle, math.pi) / 2)

    def latitudes(self) -> tuple[float, float]:
        reach = math.degrees(self.angle) + _BOX_MARGIN
        return max(self.latitude - reach, -90.0), min(self.latitude + reach, 90.0)

    def longitudes(self) -> list[tuple[float, float]]:
        """The ranges of longitude the circle spans: one, two where it crosses the 180th
        meridian, all of them where it contains a pole. A circle not around a pole is
        widest east and west of its centre by asin(sin(angle) / cos(latitude))."""
        low, high = self.latitudes()
        if low <= -90 or high >= 90:
            return [(-180.0, 180.0)]
        half = math.sin(self.angle) / math.cos(math.radians(self.latitude))
        reach = math.degrees(math.asin(min(half, 1.0))) + _BOX_MARGIN
        west, east = self.longitude - reach, self.longitude + reach
        if west < -180:
            return [(west + 360, 180.0), (-180.0, east)]
        if east > 180:
            return [(west, 180.0), (-180.0, east - 360)]
        return [(west, east)]
