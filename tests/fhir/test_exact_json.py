"""JSON as received: decimals keep their precision through create, read, `_summary`, search,
patches and bundles (FHIR R4 JSON: a decimal's precision matters), and an object that repeats
a key is refused rather than read as one of its values."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest

from medicus.fhir.resources import ExactDecimal, dump_json, parse_json
from medicus.fhir.search.extract import extract
from medicus.fhir.validation import validate
from tests.fhir.conftest import Hub

# Written as JSON text: a Python float would lose what is tested here before it is sent.
DECIMALS = [
    "1.50",
    "0.10000000000000000000000000000000000001",
    "100000000000000000000000000000000000000000000000000",
    "1e+50",
    "-0.0",
    "6.0221E23",
]


def _observation_json(value: str) -> bytes:
    return (
        b'{"resourceType":"Observation","status":"final",'
        b'"code":{"coding":[{"system":"http://loinc.org","code":"2345-7"}]},'
        b'"valueQuantity":{"value":' + value.encode() + b',"unit":"mg/dL",'
        b'"system":"http://unitsofmeasure.org","code":"mg/dL"}}'
    )


def _value_text(body: bytes) -> bytes:
    """The JSON text of valueQuantity.value in a serialised Observation."""
    start = body.index(b'"value":', body.index(b'"valueQuantity"')) + len(b'"value":')
    return body[start : min(body.index(b",", start), body.index(b"}", start))]


@pytest.mark.parametrize("value", DECIMALS)
async def test_decimals_are_stored_and_returned_as_received(hub: Hub, value: str) -> None:
    headers = await hub.token()
    created = await hub.http.post(
        "/fhir/Observation", content=_observation_json(value), headers=headers
    )
    assert created.status_code == 201, created.text
    assert _value_text(created.content) == value.encode()
    fhir_id = created.json()["id"]
    read = await hub.http.get(f"/fhir/Observation/{fhir_id}", headers=headers)
    assert _value_text(read.content) == value.encode()
    subset = await hub.http.get(
        f"/fhir/Observation/{fhir_id}", params={"_summary": "data"}, headers=headers
    )
    assert _value_text(subset.content) == value.encode()
    found = await hub.http.get("/fhir/Observation", params={"_id": fhir_id}, headers=headers)
    assert _value_text(found.content) == value.encode()


async def test_value_quantity_search_keeps_its_precision_semantics(hub: Hub) -> None:
    """`1.50` stored exactly is still the number 1.5 to search: `value-quantity=1.50` (the
    range 1.495 to 1.505) and `1.5` find it, `1.51` does not."""
    headers = await hub.token()
    created = await hub.http.post(
        "/fhir/Observation", content=_observation_json("1.50"), headers=headers
    )
    fhir_id = created.json()["id"]
    for wanted, found in (("1.50", True), ("1.5", True), ("1.51", False), ("ge1.500", True)):
        answer = await hub.http.get(
            "/fhir/Observation", params={"value-quantity": wanted, "_id": fhir_id}, headers=headers
        )
        assert answer.status_code == 200, answer.text
        assert len(answer.json().get("entry", [])) == int(found), wanted


async def test_patches_keep_decimals(hub: Hub) -> None:
    headers = await hub.token()
    created = await hub.http.post(
        "/fhir/Observation", content=_observation_json("1.50"), headers=headers
    )
    fhir_id = created.json()["id"]
    json_patch = b'[{"op": "replace", "path": "/valueQuantity/value", "value": 2.50}]'
    patched = await hub.http.patch(
        f"/fhir/Observation/{fhir_id}",
        content=json_patch,
        headers={**headers, "content-type": "application/json-patch+json"},
    )
    assert patched.status_code == 200, patched.text
    assert _value_text(patched.content) == b"2.50"
    fhirpath_patch = (
        b'{"resourceType": "Parameters", "parameter": [{"name": "operation", "part": ['
        b'{"name": "type", "valueCode": "add"}, {"name": "path", "valueString": "Observation"},'
        b'{"name": "name", "valueString": "note"},'
        b'{"name": "value", "part": [{"name": "text", "valueMarkdown": "checked"}]}]}]}'
    )
    again = await hub.http.patch(
        f"/fhir/Observation/{fhir_id}", content=fhirpath_patch, headers=headers
    )
    assert again.status_code == 200, again.text
    assert _value_text(again.content) == b"2.50"  # the untouched decimal too


async def test_decimals_in_a_transaction(hub: Hub) -> None:
    entry = (
        b'{"resource":' + _observation_json("7.10") + b',"request":{"method":"POST",'
        b'"url":"Observation"}}'
    )
    bundle = b'{"resourceType":"Bundle","type":"transaction","entry":[' + entry + b"]}"
    headers = await hub.token()
    answer = await hub.http.post(
        "/fhir", content=bundle, headers={**headers, "prefer": "return=representation"}
    )
    assert answer.status_code == 200, answer.text
    assert _value_text(answer.content) == b"7.10"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/fhir/Patient", b'{"resourceType":"Patient","gender":"male","gender":"female"}'),
        (
            "/fhir/Patient",
            b'{"resourceType":"Patient","name":[{"family":"A","given":["B"],"family":"C"}]}',
        ),
        (
            "/fhir",
            b'{"resourceType":"Bundle","type":"batch","entry":[{"request":'
            b'{"method":"POST","url":"Patient"},"resource":{"resourceType":"Patient",'
            b'"active":true,"active":false}}]}',
        ),
    ],
    ids=["top-level", "nested", "in-a-bundle"],
)
async def test_repeated_keys_are_refused(hub: Hub, path: str, body: bytes) -> None:
    headers = await hub.token()
    answer = await hub.http.post(path, content=body, headers=headers)
    assert answer.status_code == 400, answer.text
    assert "twice" in answer.json()["issue"][0]["diagnostics"]
    listed = await hub.http.get("/fhir/Patient", headers=headers)
    assert listed.json().get("entry", []) == []


@pytest.mark.parametrize("text", [b"NaN", b"Infinity", b"1e400"])
async def test_numbers_that_are_no_json_numbers_are_refused(hub: Hub, text: bytes) -> None:
    answer = await hub.http.post(
        "/fhir/Observation", content=_observation_json(text.decode()), headers=await hub.token()
    )
    assert answer.status_code == 400, answer.text


def test_parsed_decimals_validate_index_and_serialise_exactly() -> None:
    resource: dict[str, Any] = parse_json(_observation_json("1.50"))
    value = resource["valueQuantity"]["value"]
    assert isinstance(value, ExactDecimal)
    assert validate(resource) == []
    rows = extract("Observation", resource)
    assert [q.low for code, q in rows.quantities if code == "value-quantity"] == [1.5]
    assert dump_json(resource) == _observation_json("1.50")


def test_integers_stay_integers_and_large_ones_exact() -> None:
    parsed = parse_json(b'{"small": 12, "large": 123456789012345678901234567890}')
    assert parsed["small"] == 12
    assert type(parsed["small"]) is int
    assert dump_json(parsed) == b'{"small":12,"large":123456789012345678901234567890}'
    patient = parse_json(
        b'{"resourceType": "Patient", "multipleBirthInteger": 99999999999999999999}'
    )
    assert [issue.code for issue in validate(patient)] == ["value"]


async def test_a_json_patch_in_a_binary_keeps_decimals(hub: Hub) -> None:
    headers = await hub.token()
    created = await hub.http.post(
        "/fhir/Observation", content=_observation_json("1.50"), headers=headers
    )
    fhir_id = created.json()["id"]
    patch = b'[{"op": "replace", "path": "/valueQuantity/value", "value": 3.250}]'
    binary = {
        "resourceType": "Binary",
        "contentType": "application/json-patch+json",
        "data": base64.b64encode(patch).decode(),
    }
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": binary, "request": {"method": "PATCH", "url": f"Observation/{fhir_id}"}}
        ],
    }
    answer = await hub.http.post("/fhir", content=orjson.dumps(bundle), headers=headers)
    assert answer.status_code == 200, answer.text
    read = await hub.http.get(f"/fhir/Observation/{fhir_id}", headers=headers)
    assert _value_text(read.content) == b"3.250"
