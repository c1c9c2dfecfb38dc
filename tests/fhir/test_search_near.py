"""Location's `near` through HTTP: within a distance along the Earth's surface, in any UCUM
length, the default distance, boundaries measured by haversine, across the 180th meridian and
a pole, with other parameters, sorting and paging, Locations without a position, updates and
deletes, other organisations' Locations, and malformed values naming the parameter."""

from __future__ import annotations

import orjson
import pytest

from medicus.fhir.search.geo import DEFAULT_DISTANCE
from tests.fhir.conftest import Hub
from tests.fhir.test_geo import haversine
from tests.fhir.test_search import assert_refused, create, search_ids

CHARITE = (52.5262, 13.3766)
VIRCHOW = (52.5418, 13.3437)  # 2.8 km from the Charité
POTSDAM = (52.3906, 13.0645)  # 25 km
MUNICH = (48.1372, 11.5755)  # 504 km
EAST_OF_180 = (-17.0, 179.95)
WEST_OF_180 = (-17.0, -179.95)  # 10.6 km east of it, across the 180th meridian


def _location(
    name: str, where: tuple[float, float] | None, status: str = "active"
) -> dict[str, object]:
    location: dict[str, object] = {"resourceType": "Location", "name": name, "status": status}
    if where is not None:
        location["position"] = {"latitude": where[0], "longitude": where[1]}
    return location


def _near(where: tuple[float, float], *rest: object) -> str:
    return "|".join(str(part) for part in (*where, *rest))


@pytest.fixture
async def places(hub: Hub) -> dict[str, str]:
    return {
        "charite": await create(hub, _location("Charité Mitte", CHARITE)),
        "virchow": await create(hub, _location("Virchow-Klinikum", VIRCHOW, "inactive")),
        "potsdam": await create(hub, _location("Klinikum Potsdam", POTSDAM)),
        "munich": await create(hub, _location("Klinikum München", MUNICH)),
        "east": await create(hub, _location("Taveuni Ost", EAST_OF_180)),
        "west": await create(hub, _location("Taveuni West", WEST_OF_180)),
        "nowhere": await create(hub, _location("Telemedizin", None)),
        "foreign": await create(hub, _location("Charité (B)", CHARITE), "hospital-b"),
    }


async def _find(hub: Hub, **params: str) -> set[str]:
    return set(await search_ids(hub, "/fhir/Location", **params))


async def test_within_a_distance(hub: Hub, places: dict[str, str]) -> None:
    berlin = {places["charite"], places["virchow"]}
    assert await _find(hub, near=_near(CHARITE, 10, "km")) == berlin
    assert await _find(hub, near=_near(CHARITE, 30, "km")) == berlin | {places["potsdam"]}
    assert await _find(hub, near=_near(CHARITE, 1, "km")) == {places["charite"]}
    assert await _find(hub, near=_near(CHARITE, 0, "km")) == {places["charite"]}
    assert await _find(hub, near=_near(MUNICH, 10)) == {places["munich"]}  # km if no unit
    assert await _find(hub, near=_near(MUNICH, 10, "")) == {places["munich"]}


async def test_without_a_distance_near_is_the_default(hub: Hub, places: dict[str, str]) -> None:
    assert DEFAULT_DISTANCE == 10_000
    berlin = {places["charite"], places["virchow"]}
    assert await _find(hub, near=_near(CHARITE)) == berlin
    assert await _find(hub, near=_near(CHARITE, "", "km")) == berlin
    assert await _find(hub, near=_near(POTSDAM)) == {places["potsdam"]}


async def test_units_and_the_boundary(hub: Hub, places: dict[str, str]) -> None:
    """Potsdam is just inside a circle a hair wider than its haversine distance and just
    outside one a hair narrower, in every unit."""
    metres = haversine(CHARITE, POTSDAM)
    for amount, unit in ((metres / 1000, "km"), (metres, "m"), (metres / 1609.344, "[mi_i]")):
        wider = await _find(hub, near=_near(CHARITE, amount * 1.0001, unit))
        narrower = await _find(hub, near=_near(CHARITE, amount * 0.9999, unit))
        assert places["potsdam"] in wider, unit
        assert places["potsdam"] not in narrower, unit
        assert narrower == {places["charite"], places["virchow"]}


async def test_across_the_180th_meridian_and_a_pole(hub: Hub, places: dict[str, str]) -> None:
    both = {places["east"], places["west"]}
    assert await _find(hub, near=_near(EAST_OF_180, 20, "km")) == both
    assert await _find(hub, near=_near(WEST_OF_180, 20, "km")) == both
    assert await _find(hub, near=_near(EAST_OF_180, 5, "km")) == {places["east"]}
    polar = {
        await create(hub, _location("Station 0°", (89.9, 0.0))),
        await create(hub, _location("Station 180°", (89.9, 180.0))),  # 22 km over the pole
    }
    assert await _find(hub, near=_near((89.9, 0.0), 30, "km")) == polar
    assert await _find(hub, near=_near((89.9, 90.0), 30, "km")) == polar


async def test_locations_without_a_position(hub: Hub, places: dict[str, str]) -> None:
    everywhere = await _find(hub, near=_near((0, 0), 30_000, "km"))
    assert everywhere == set(places.values()) - {places["nowhere"], places["foreign"]}
    assert await _find(hub, **{"near:missing": "true"}) == {places["nowhere"]}
    assert places["nowhere"] not in await _find(hub, **{"near:missing": "false"})


async def test_with_other_parameters(hub: Hub, places: dict[str, str]) -> None:
    assert await _find(hub, near=_near(CHARITE, 10, "km"), status="active") == {places["charite"]}
    assert await _find(hub, near=_near(CHARITE, 30, "km"), **{"name:contains": "klinikum"}) == {
        places["virchow"],
        places["potsdam"],
    }
    either = f"{_near(CHARITE, 1, 'km')},{_near(MUNICH, 1, 'km')}"
    assert await _find(hub, near=either) == {places["charite"], places["munich"]}
    response = await hub.http.get(
        "/fhir/Location",
        params=[("near", _near(CHARITE, 30, "km")), ("near", _near(POTSDAM, 5, "km"))],
        headers=await hub.token(),
    )
    assert [e["resource"]["id"] for e in response.json()["entry"]] == [places["potsdam"]]


async def test_sorted_by_distance_and_paged(hub: Hub, places: dict[str, str]) -> None:
    centre = (52.45, 13.2)  # between Potsdam and the Charité
    near = _near(centre, 1000, "km")
    where = {"charite": CHARITE, "virchow": VIRCHOW, "potsdam": POTSDAM, "munich": MUNICH}
    ordered = [places[name] for name in sorted(where, key=lambda n: haversine(centre, where[n]))]
    assert ordered[0] == places["potsdam"]
    assert await search_ids(hub, "/fhir/Location", near=near, _sort="near") == ordered
    assert await search_ids(hub, "/fhir/Location", near=near, _sort="-near") == ordered[::-1]
    walked, url = [], f"/fhir/Location?near={near}&_sort=near&_count=1&_total=accurate"
    while url:
        response = await hub.http.get(url, headers=await hub.token())
        bundle = response.json()
        assert bundle["total"] == 4
        walked += [entry["resource"]["id"] for entry in bundle["entry"]]
        url = next((link["url"] for link in bundle["link"] if link["relation"] == "next"), "")
    assert walked == ordered


async def test_each_match_carries_its_distance(hub: Hub, places: dict[str, str]) -> None:
    """The `location-distance` extension on `entry.search`, in km; a search with several
    points has none (a distance to which of them?)."""
    near = _near(CHARITE, 30, "km")
    response = await hub.http.get(
        "/fhir/Location", params={"near": near, "_sort": "near"}, headers=await hub.token()
    )
    distances = {}
    for entry in response.json()["entry"]:
        (extension,) = entry["search"]["extension"]
        assert extension["url"] == "http://hl7.org/fhir/StructureDefinition/location-distance"
        assert extension["valueDistance"]["code"] == "km"
        distances[entry["resource"]["id"]] = extension["valueDistance"]["value"]
    expected = {
        places[name]: haversine(CHARITE, where) / 1000
        for name, where in (("charite", CHARITE), ("virchow", VIRCHOW), ("potsdam", POTSDAM))
    }
    assert distances.keys() == expected.keys()
    for fhir_id, kilometres in expected.items():
        assert distances[fhir_id] == pytest.approx(kilometres, abs=0.001)
    assert distances[places["charite"]] == 0
    both = await hub.http.get(
        "/fhir/Location",
        params={"near": f"{near},{_near(MUNICH, 1, 'km')}"},
        headers=await hub.token(),
    )
    assert [entry["search"] for entry in both.json()["entry"]] == [{"mode": "match"}] * 4


async def test_moved_and_deleted_locations(hub: Hub, places: dict[str, str]) -> None:
    moved = {**_location("Klinikum Potsdam", MUNICH), "id": places["potsdam"]}
    response = await hub.http.put(
        f"/fhir/Location/{places['potsdam']}",
        content=orjson.dumps(moved),
        headers=await hub.token(),
    )
    assert response.status_code == 200, response.text
    assert places["potsdam"] not in await _find(hub, near=_near(POTSDAM, 5, "km"))
    assert await _find(hub, near=_near(MUNICH, 5)) == {places["munich"], places["potsdam"]}
    await hub.http.delete(f"/fhir/Location/{places['munich']}", headers=await hub.token())
    assert await _find(hub, near=_near(MUNICH, 5)) == {places["potsdam"]}


async def test_a_chain_into_locations(hub: Hub, places: dict[str, str]) -> None:
    encounter = await create(
        hub,
        {
            "resourceType": "Encounter",
            "status": "finished",
            "class": {"code": "IMP"},
            "location": [{"location": {"reference": f"Location/{places['potsdam']}"}}],
        },
    )
    path = "/fhir/Encounter"
    assert await search_ids(hub, path, **{"location.near": _near(POTSDAM, 1)}) == [encounter]
    assert await search_ids(hub, path, **{"location.near": _near(CHARITE, 1)}) == []


@pytest.mark.parametrize(
    ("query", "expression"),
    [
        ("near=abc|13.4", "near"),
        ("near=52.5", "near"),
        ("near=52.5|13.4|5|km|x", "near"),
        ("near=91|13.4", "near"),
        ("near=-90.5|13.4|5|km", "near"),
        ("near=52.5|180.1", "near"),
        ("near=52.5|13.4|5|parsec", "near"),
        ("near=52.5|13.4|5|mg", "near"),
        ("near=52.5|13.4|-5|km", "near"),
        ("near=52.5|13.4|nan|km", "near"),
        ("near=52.5|13.4|1e400|km", "near"),  # infinite: not a distance
        ("near=52.5|13.4|five|km", "near"),
        ("near=1e999999999|13.4", "near"),
        ("near=52.5|13.4|1e-999999999|km", "near"),
        ("near=", "near"),
        ("near:exact=52.5|13.4", "near:exact"),
        ("_sort=near", "_sort"),
        ("near=52.5|13.4,52.4|13.1&_sort=near", "_sort"),
    ],
)
async def test_malformed_values_name_the_parameter(hub: Hub, query: str, expression: str) -> None:
    await assert_refused(hub, f"/fhir/Location?{query}", expression)


async def test_near_is_only_a_parameter_of_locations(hub: Hub) -> None:
    response = await hub.http.get("/fhir/Patient?near=52.5|13.4", headers=await hub.token())
    assert response.status_code == 400


async def test_the_capability_statement_describes_near(hub: Hub) -> None:
    statement = (await hub.http.get("/fhir/metadata")).json()
    location = next(r for r in statement["rest"][0]["resource"] if r["type"] == "Location")
    near = next(p for p in location["searchParam"] if p["name"] == "near")
    assert near["type"] == "special"
    assert "10 km" in near["documentation"]
