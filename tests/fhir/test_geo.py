"""The distance math of `near` against the haversine formula: the chord test keeps exactly
the points within the great-circle distance, and the latitude/longitude box around a circle
holds all of it (across the 180th meridian and around the poles too)."""

from __future__ import annotations

import math

import pytest

from medicus.fhir.search.geo import EARTH_RADIUS, Circle, metres_in, on_sphere

BERLIN = (52.5200, 13.4050)
MUNICH = (48.1372, 11.5755)


def haversine(a: tuple[float, float], b: tuple[float, float]) -> float:
    """The great-circle distance in metres, by the haversine formula."""
    (north_a, east_a), (north_b, east_b) = map(math.radians, a), map(math.radians, b)
    h = (
        math.sin((north_b - north_a) / 2) ** 2
        + math.cos(north_a) * math.cos(north_b) * math.sin((east_b - east_a) / 2) ** 2
    )
    return 2 * EARTH_RADIUS * math.asin(math.sqrt(h))


def destination(start: tuple[float, float], bearing: float, metres: float) -> tuple[float, float]:
    """The point `metres` from `start` along the great circle leaving it at `bearing`."""
    north, east = map(math.radians, start)
    angle, course = metres / EARTH_RADIUS, math.radians(bearing)
    arrival = math.asin(
        math.sin(north) * math.cos(angle) + math.cos(north) * math.sin(angle) * math.cos(course)
    )
    east += math.atan2(
        math.sin(course) * math.sin(angle) * math.cos(north),
        math.cos(angle) - math.sin(north) * math.sin(arrival),
    )
    longitude = (math.degrees(east) + 540) % 360 - 180
    return math.degrees(arrival), longitude


def _squared_chord(a: tuple[float, float], b: tuple[float, float]) -> float:
    return sum((p - q) ** 2 for p, q in zip(on_sphere(*a), on_sphere(*b), strict=True))


def test_the_oracle_knows_berlin_to_munich() -> None:
    assert 503_000 < haversine(BERLIN, MUNICH) < 505_000


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (BERLIN, MUNICH),
        (BERLIN, (52.52001, 13.40501)),  # about a metre and a half
        ((-17.0, 179.95), (-17.0, -179.95)),  # across the 180th meridian
        ((89.9, 0.0), (89.9, 180.0)),  # across the north pole
        ((0.0, 0.0), (0.0, 179.0)),  # nearly opposite
        ((-33.8688, 151.2093), (51.5072, -0.1276)),  # Sydney to London
    ],
)
def test_the_chord_test_agrees_with_haversine(
    a: tuple[float, float], b: tuple[float, float]
) -> None:
    """A point is within a circle exactly when its chord is within the circle's: just
    beyond its haversine distance it is in, just short of it out."""
    distance = haversine(a, b)
    assert _squared_chord(a, b) <= Circle(*a, distance * (1 + 1e-6)).chord ** 2
    assert _squared_chord(a, b) > Circle(*a, distance * (1 - 1e-6)).chord ** 2


@pytest.mark.parametrize(
    ("centre", "radius"),
    [
        (BERLIN, 25_000.0),
        (BERLIN, 2_000_000.0),
        ((-17.0, 179.95), 20_000.0),  # reaches across the 180th meridian, eastwards
        ((-17.0, -179.95), 20_000.0),  # and westwards
        ((89.9, 45.0), 30_000.0),  # contains the north pole
        ((-80.0, 0.0), 1_200_000.0),  # contains the south pole
        ((70.0, 10.0), 1_000_000.0),  # widest east-west away from its centre's latitude
        ((0.0, 0.0), 1.0),
    ],
)
def test_the_box_holds_the_whole_circle(centre: tuple[float, float], radius: float) -> None:
    circle = Circle(*centre, radius)
    south, north = circle.latitudes()
    for bearing in range(0, 360, 5):
        for share in (0.5, 1 - 1e-9):
            latitude, longitude = destination(centre, bearing, radius * share)
            assert south <= latitude <= north, (bearing, latitude)
            assert any(west <= longitude <= east for west, east in circle.longitudes())


def test_the_box_is_narrow_where_it_can_be() -> None:
    """Not the whole band of latitudes: about 25 km around Berlin is 0.23° north-south and
    0.37° east-west."""
    circle = Circle(*BERLIN, 25_000.0)
    south, north = circle.latitudes()
    assert north - south == pytest.approx(0.4497, abs=1e-3)
    [(west, east)] = circle.longitudes()
    assert east - west == pytest.approx(0.7384, abs=1e-3)


def test_boxes_across_the_180th_meridian_and_around_a_pole() -> None:
    assert len(Circle(-17.0, 179.95, 20_000.0).longitudes()) == 2
    assert len(Circle(-17.0, -179.95, 20_000.0).longitudes()) == 2
    assert Circle(89.9, 45.0, 30_000.0).longitudes() == [(-180.0, 180.0)]
    assert Circle(89.9, 45.0, 30_000.0).latitudes()[1] == 90.0


def test_half_the_circumference_covers_the_earth() -> None:
    assert not Circle(0.0, 0.0, math.pi * EARTH_RADIUS * 0.99).covers_earth
    assert Circle(0.0, 0.0, math.pi * EARTH_RADIUS).covers_earth
    assert Circle(0.0, 0.0, math.pi * EARTH_RADIUS * 3).chord == pytest.approx(2.0)


@pytest.mark.parametrize(
    ("unit", "factor"),
    [
        ("m", 1.0),
        ("km", 1000.0),
        ("cm", 0.01),
        ("[mi_i]", 1609.344),
        ("[nmi_i]", 1852.0),
        ("[ft_i]", 0.3048),
    ],
)
def test_lengths_in_metres(unit: str, factor: float) -> None:
    assert metres_in(unit) == pytest.approx(factor)


@pytest.mark.parametrize("unit", ["parsec", "mi", "mg", "min", "m/s", "mol", ""])
def test_what_is_no_length(unit: str) -> None:
    assert metres_in(unit) is None
