"""FHIR search on number, quantity, uri and composite parameters, the prefixes with their
precision, the modifiers, the Resource-level parameters (_tag, _profile, _security, _source),
and malformed values answered with an OperationOutcome naming the parameter."""

from __future__ import annotations

import pytest

from tests.fhir.conftest import Hub
from tests.fhir.test_search import assert_refused, create, search_ids
from tests.support.resources import LOINC, UCUM


def _lab(code: str, value: float, unit: str, **extra: object) -> dict[str, object]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": code, "display": "Hemoglobin"}]},
        "valueQuantity": {"value": value, "system": UCUM, "code": unit, "unit": unit},
        **extra,
    }


@pytest.fixture
async def labs(hub: Hub) -> dict[str, str]:
    tagged = {
        "meta": {
            "tag": [{"system": "http://medicus.example/tags", "code": "research"}],
            "security": [
                {"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}
            ],
            "profile": ["https://gematik.de/fhir/isik/StructureDefinition/ISiKLaborbefund"],
            "source": "https://lis.hospital-a.example/fhir",
        }
    }
    pressure = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": "85354-9"}], "text": "Blutdruck"},
        "component": [
            {
                "code": {"coding": [{"system": LOINC, "code": "8480-6"}]},
                "valueQuantity": {"value": 120, "system": UCUM, "code": "mm[Hg]"},
            },
            {
                "code": {"coding": [{"system": LOINC, "code": "8462-4"}]},
                "valueQuantity": {"value": 80, "system": UCUM, "code": "mm[Hg]"},
            },
        ],
    }
    return {
        "high": await create(hub, _lab("718-7", 13.5, "g/dL", **tagged)),
        "low": await create(hub, _lab("718-7", 9.8, "g/dL")),
        "glucose": await create(hub, _lab("2345-7", 100, "mg/dL")),
        "pressure": await create(hub, pressure),
    }


async def _find(hub: Hub, **params: str) -> set[str]:
    return set(await search_ids(hub, "/fhir/Observation", **params))


async def test_quantities_with_prefixes_and_units(hub: Hub, labs: dict[str, str]) -> None:
    assert await _find(hub, **{"value-quantity": "13.5"}) == {labs["high"]}
    assert await _find(hub, **{"value-quantity": "gt10"}) == {labs["high"], labs["glucose"]}
    assert await _find(hub, **{"value-quantity": "le9.8"}) == {labs["low"]}
    assert await _find(hub, **{"value-quantity": "ne13.5", "code": "718-7"}) == {labs["low"]}
    assert await _find(hub, **{"value-quantity": f"13.5|{UCUM}|g/dL"}) == {labs["high"]}
    # in the base unit: 13.5 g/dL is 135 g/L; 100 mg/dL is 1 g/L
    assert await _find(hub, **{"value-quantity": f"135|{UCUM}|g/L"}) == {labs["high"]}
    assert await _find(hub, **{"value-quantity": "ge2000||mg/L"}) == {labs["high"], labs["low"]}
    assert await _find(hub, **{"value-quantity": "13.5|http://other.example|g/dL"}) == set()


async def test_precision_and_approximation(hub: Hub, labs: dict[str, str]) -> None:
    assert await _find(hub, **{"value-quantity": "14"}) == {labs["high"]}  # [13.5, 14.5)
    assert await _find(hub, **{"value-quantity": "14.0"}) == set()  # [13.95, 14.05)
    assert await _find(hub, **{"value-quantity": "1e1"}) == {labs["high"], labs["low"]}
    assert await _find(hub, **{"value-quantity": "ap12.5"}) == {labs["high"]}  # ±1.25
    assert await _find(hub, **{"value-quantity": "ap9"}) == {labs["low"]}  # 8.1-9.9


async def test_numbers(hub: Hub) -> None:
    def sequence(start: int) -> dict[str, object]:
        return {
            "resourceType": "MolecularSequence",
            "coordinateSystem": 0,
            "referenceSeq": {"windowStart": start, "windowEnd": start + 100},
        }

    first, second = await create(hub, sequence(100)), await create(hub, sequence(250))
    path = "/fhir/MolecularSequence"
    assert await search_ids(hub, path, **{"window-start": "100"}) == [first]
    assert set(await search_ids(hub, path, **{"window-start": "ge100"})) == {first, second}
    assert await search_ids(hub, path, **{"window-start": "gt100"}) == [second]
    assert await search_ids(hub, path, **{"window-start": "lt250", "window-end": "200"}) == [first]
    assert await search_ids(hub, path, **{"window-start": "1e2"}) == [first]  # [50, 150)
    assert await search_ids(hub, path, **{"window-start": "ap240"}) == [second]
    coordinate = {"chromosome-window-coordinate": "x$lt300$gt300"}
    assert await search_ids(hub, path, **coordinate) == []


async def test_uris_with_above_and_below(hub: Hub) -> None:
    base = "http://example.org/fhir/ValueSet"
    first = await create(hub, {"resourceType": "ValueSet", "status": "active", "url": f"{base}/a"})
    await create(hub, {"resourceType": "ValueSet", "status": "active", "url": "urn:x"})
    path = "/fhir/ValueSet"
    assert await search_ids(hub, path, url=f"{base}/a") == [first]
    assert await search_ids(hub, path, url=f"{base}") == []
    assert await search_ids(hub, path, **{"url:below": base}) == [first]
    assert await search_ids(hub, path, **{"url:above": f"{base}/a/_history/2"}) == [first]
    assert await search_ids(hub, path, **{"url:contains": "ValueSet/"}) == [first]


async def test_composites_pair_values_of_the_same_element(hub: Hub, labs: dict[str, str]) -> None:
    hb = {"code-value-quantity": f"{LOINC}|718-7$gt10"}
    assert await _find(hub, **hb) == {labs["high"]}
    systolic = {"component-code-value-quantity": f"{LOINC}|8480-6$ge120"}
    assert await _find(hub, **systolic) == {labs["pressure"]}
    crossed = {"component-code-value-quantity": f"{LOINC}|8462-4$ge120"}
    assert await _find(hub, **crossed) == set()
    either = {"combo-code-value-quantity": "8462-4$80,718-7$9.8"}
    assert await _find(hub, **either) == {labs["pressure"], labs["low"]}


async def test_a_composite_without_all_its_components_has_no_value(
    hub: Hub, labs: dict[str, str]
) -> None:
    """The labs carry quantities, none a coded value: code-value-concept is missing on all
    of them, code-value-quantity only on the blood pressure (its values are components)."""
    everything = set(labs.values())
    assert await _find(hub, **{"code-value-concept:missing": "true"}) == everything
    assert await _find(hub, **{"code-value-quantity:missing": "true"}) == {labs["pressure"]}
    assert await _find(hub, **{"code-value-quantity:missing": "false"}) == everything - {
        labs["pressure"]
    }


async def test_token_modifiers(hub: Hub, labs: dict[str, str]) -> None:
    everything = set(labs.values())
    assert await _find(hub, **{"code:not": "718-7"}) == everything - {labs["high"], labs["low"]}
    assert await _find(hub, **{"code:text": "hemo"}) == everything - {labs["pressure"]}
    assert await _find(hub, **{"code:text": "blutdr"}) == {labs["pressure"]}
    assert await _find(hub, **{"value-quantity:missing": "true"}) == {labs["pressure"]}
    assert await _find(hub, **{"component-code:missing": "false"}) == {labs["pressure"]}
    assert await _find(hub, **{"_id:not": labs["high"]}) == everything - {labs["high"]}


async def test_resource_level_parameters(hub: Hub, labs: dict[str, str]) -> None:
    high = {labs["high"]}
    assert await _find(hub, _tag="http://medicus.example/tags|research") == high
    assert await _find(hub, _security="R") == high
    profile = "https://gematik.de/fhir/isik/StructureDefinition/ISiKLaborbefund"
    assert await _find(hub, _profile=profile) == high
    assert await _find(hub, _source="https://lis.hospital-a.example/fhir") == high
    assert await _find(hub, **{"_source:below": "https://lis.hospital-a.example"}) == high
    assert await _find(hub, **{"_tag:missing": "true"}) == set(labs.values()) - high


@pytest.mark.parametrize(
    ("query", "expression"),
    [
        ("value-quantity=abc", "value-quantity"),
        ("value-quantity=1|2", "value-quantity"),
        ("value-quantity=gt", "value-quantity"),
        ("value-quantity=1e999999999", "value-quantity"),
        ("code:sounds-like=1", "code:sounds-like"),
        ("code:below=1", "code:below"),
        ("code-value-quantity=718-7", "code-value-quantity"),
        ("code-value-quantity:exact=718-7$1", "code-value-quantity:exact"),
        ("subject:missing=maybe", "subject:missing"),
        ("_text=fever", "_text"),
        ("_content=fever", "_content"),
        ("_list=$current-problems", "_list"),
        ("date=ap2026-13", "date"),
        ("code=", "code"),
        ("identifier:of-type=x|y", "identifier:of-type"),
        ("_sort=shoe-size", "_sort"),
        ("_total=maybe", "_total"),
    ],
)
async def test_malformed_values_name_the_parameter(hub: Hub, query: str, expression: str) -> None:
    await assert_refused(hub, f"/fhir/Observation?{query}", expression)


async def test_lenient_handling_still_refuses_malformed_values(hub: Hub) -> None:
    headers = {**await hub.token(), "Prefer": "handling=lenient"}
    ignored = await hub.http.get("/fhir/Observation?shoe-size=1", headers=headers)
    assert ignored.status_code == 200
    refused = await hub.http.get("/fhir/Observation?value-quantity=abc", headers=headers)
    assert refused.status_code == 400


async def test_combo_parameters_search_the_resource_and_its_components(
    hub: Hub, labs: dict[str, str]
) -> None:
    """`combo-*` parameters have no index rows of their own: they are answered from
    `code` + `component-code` and the like, with every modifier and `:missing`."""
    assert await _find(hub, **{"combo-code": "8480-6"}) == {labs["pressure"]}
    assert await _find(hub, **{"combo-code": "85354-9"}) == {labs["pressure"]}
    assert await _find(hub, **{"combo-code": "2345-7,8462-4"}) == {
        labs["glucose"],
        labs["pressure"],
    }
    assert await _find(hub, **{"combo-code:text": "hemo"}) == {
        labs["high"],
        labs["low"],
        labs["glucose"],
    }
    assert await _find(hub, **{"combo-code:not": "718-7"}) == {labs["glucose"], labs["pressure"]}
    assert await _find(hub, **{"combo-value-quantity": "ge100"}) == {
        labs["glucose"],
        labs["pressure"],
    }
    assert await _find(hub, **{"combo-value-quantity": "gt110", "combo-code": "8480-6"}) == {
        labs["pressure"]
    }
    assert await _find(hub, **{"combo-value-concept:missing": "true"}) == set(labs.values())
    assert await _find(hub, **{"combo-code-value-quantity:missing": "false"}) == set(labs.values())
    ordered = await search_ids(hub, "/fhir/Observation", _sort="-combo-value-quantity")
    assert ordered[:2] == [labs["pressure"], labs["glucose"]]


_AROUND_100 = (89.99, 90, 99.5, 100, 100.5, 110, 110.01)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("100", {99.5, 100}),  # [99.5, 100.5)
        ("ne100", {89.99, 90, 100.5, 110, 110.01}),
        ("gt100", {100.5, 110, 110.01}),
        ("ge100", {100, 100.5, 110, 110.01}),
        ("lt100", {89.99, 90, 99.5}),
        ("le100", {89.99, 90, 99.5, 100}),
        ("sa100", {100.5, 110, 110.01}),
        ("eb100", {89.99, 90, 99.5}),
        ("ap100", {90, 99.5, 100, 100.5, 110}),  # [90, 110], both ends included
        (f"ap100|{UCUM}|g/L", {90, 99.5, 100, 100.5, 110}),
        (f"ap0.100|{UCUM}|kg/L", {90, 99.5, 100, 100.5, 110}),  # in the base unit
    ],
)
async def test_quantity_prefixes_at_their_boundaries(
    hub: Hub, value: str, expected: set[float]
) -> None:
    ids = {await create(hub, _lab("718-7", number, "g/L")): number for number in _AROUND_100}
    found = await _find(hub, **{"value-quantity": value})
    assert {ids[fhir_id] for fhir_id in found} == expected


async def test_number_approximation_is_symmetric(hub: Hub) -> None:
    """`ap100` on a number is [90, 110]: 110 is as near as 90."""
    path = "/fhir/MolecularSequence"
    ids = {
        await create(
            hub,
            {
                "resourceType": "MolecularSequence",
                "coordinateSystem": 0,
                "referenceSeq": {"windowStart": start, "windowEnd": start + 1},
            },
        ): start
        for start in (89, 90, 100, 110, 111)
    }
    found = await search_ids(hub, path, **{"window-start": "ap100"})
    assert {ids[fhir_id] for fhir_id in found} == {90, 100, 110}
