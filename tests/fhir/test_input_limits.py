"""Bad and outsized input: strings beyond FHIR's 1 MB, index values of bounded length, a body
that names no resource type, and a client that hangs up mid-body."""

from __future__ import annotations

import base64
import re
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from medicus.app import create_app
from medicus.core.logging import configure_logging
from medicus.fhir.search.extract import INDEXED_STRING, extract, normalise
from medicus.fhir.validation import MAX_STRING, _schema, validate
from tests.conftest import hang_up_mid_body
from tests.fhir.conftest import Hub


def _patient(family: str) -> dict[str, Any]:
    return {"resourceType": "Patient", "name": [{"family": family, "given": ["Erika"]}]}


async def test_a_string_beyond_one_megabyte_is_422_naming_its_element(hub: Hub) -> None:
    headers = await hub.token()
    body = orjson.dumps(_patient("M" * (MAX_STRING + 1)))
    answer = await hub.http.post("/fhir/Patient", content=body, headers=headers)
    assert answer.status_code == 422, answer.text[:300]
    issue = answer.json()["issue"][1]
    assert issue["code"] == "too-long"
    assert issue["expression"] == ["Patient.name[0].family"]
    assert (await hub.http.get("/fhir/Patient", headers=headers)).json().get("entry", []) == []


async def test_a_string_of_one_megabyte_is_stored_and_found_by_its_start(hub: Hub) -> None:
    headers = await hub.token()
    family = "Müller" + "x" * (MAX_STRING - 6)
    created = await hub.http.post(
        "/fhir/Patient", content=orjson.dumps(_patient(family)), headers=headers
    )
    assert created.status_code == 201, created.text[:300]
    for parameter, value in (("family", "muller"), ("family:contains", "LLERxx")):
        found = await hub.http.get("/fhir/Patient", params={parameter: value}, headers=headers)
        assert [e["resource"]["id"] for e in found.json()["entry"]] == [created.json()["id"]]


async def test_base64_data_is_not_held_to_the_string_limit(hub: Hub) -> None:
    """Attachments and Binary data are bounded by the body limit only. (Those of a
    DocumentReference, a Media and a Binary move to storage: tests/fhir/test_attachments.py;
    other types keep theirs inline.)"""
    data = base64.b64encode(b"%PDF" * (MAX_STRING // 2)).decode()
    message = {
        "resourceType": "Communication",
        "status": "completed",
        "payload": [{"contentAttachment": {"contentType": "application/pdf", "data": data}}],
    }
    answer = await hub.http.post(
        "/fhir/Communication", content=orjson.dumps(message), headers=await hub.token()
    )
    assert answer.status_code == 201, answer.text[:300]
    assert answer.json()["payload"][0]["contentAttachment"]["data"] == data


def test_index_values_are_cut_to_the_indexed_length() -> None:
    family = "Ärztin-" + "é" * (3 * MAX_STRING // 4)
    resource = {**_patient(family), "address": [{"city": "Ödenwald " * 100}]}
    strings = extract("Patient", resource).strings
    assert strings
    assert all(len(value) <= INDEXED_STRING for _, value, _ in strings)
    assert all(len(exact) <= INDEXED_STRING for _, _, exact in strings)
    city = "Ödenwald " * 100
    assert ("family", normalise(family)[:INDEXED_STRING], family[:INDEXED_STRING]) in strings
    assert ("address-city", normalise(city)[:INDEXED_STRING], city[:INDEXED_STRING]) in strings


_SPEC_BASE64 = re.compile(r"(\s*([0-9a-zA-Z\+/=]){4}\s*)+", re.ASCII | re.DOTALL)


@given(st.text(alphabet="Ab9+/= \n", max_size=14))
def test_base64_check_accepts_what_the_spec_regex_accepts(text: str) -> None:
    """The spec's regex backtracks for seconds per megabyte; its replacement must accept
    exactly the same strings."""
    primitive = _schema().structures["Attachment"].elements["data"].primitive
    assert primitive is not None
    assert primitive.match is not None
    assert (primitive.match(text) is not None) == (_SPEC_BASE64.fullmatch(text) is not None)


def test_large_base64_data_validates() -> None:
    data = base64.b64encode(bytes(range(256)) * 40_000).decode()
    binary = {"resourceType": "Binary", "contentType": "application/pdf", "data": data}
    assert validate(binary) == []
    assert [issue.code for issue in validate({**binary, "data": data + "A"})] == ["value"]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"name": [{"family": "Musterfrau"}]}, 400, "resourceType is missing"),
        ({"resourceType": 7, "gender": "female"}, 400, "resourceType must be a string"),
        ({"resourceType": "Observation", "status": "final"}, 422, "is a Observation"),
    ],
    ids=["missing", "not-a-string", "another-type"],
)
async def test_a_body_without_its_resource_type_says_so(
    hub: Hub, body: dict[str, Any], status: int, message: str
) -> None:
    answer = await hub.http.post(
        "/fhir/Patient", content=orjson.dumps(body), headers=await hub.token()
    )
    assert answer.status_code == status, answer.text
    outcome = answer.json()
    assert message in outcome["issue"][0]["diagnostics"]
    assert "None" not in outcome["issue"][0]["diagnostics"]
    assert outcome["issue"][1]["expression"] == ["resourceType"]


@pytest.mark.parametrize("kind", ["transaction", "batch"])
async def test_a_bundle_entry_without_resource_type_says_so(hub: Hub, kind: str) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": kind,
        "entry": [
            {"resource": {"gender": "female"}, "request": {"method": "POST", "url": "Patient"}}
        ],
    }
    answer = await hub.http.post("/fhir", content=orjson.dumps(bundle), headers=await hub.token())
    if kind == "transaction":
        assert answer.status_code == 400, answer.text
        outcome = answer.json()
    else:
        response = answer.json()["entry"][0]["response"]
        assert response["status"] == "400"
        outcome = response["outcome"]
    assert "resourceType is missing" in outcome["issue"][0]["diagnostics"]
    assert outcome["issue"][1]["expression"] == ["Bundle.entry[0].resource.resourceType"]


async def test_a_client_hanging_up_mid_body_is_no_server_error(
    hub: Hub, capsys: pytest.CaptureFixture[str]
) -> None:
    """The ASGI server reports the hang-up as `http.disconnect` while the body is read: no
    500 is logged or sent, and nothing is written."""
    configure_logging("INFO", json_lines=True)
    app = create_app(hub.platform.settings, hub.platform)
    headers = await hub.token()
    body = orjson.dumps(_patient("Musterfrau"))
    sent = await hang_up_mid_body(
        app,
        "/fhir/Patient",
        [
            (b"host", b"hub"),
            (b"content-length", str(len(body)).encode()),
            *((key.lower().encode(), value.encode()) for key, value in headers.items()),
        ],
        body[:20],
    )
    logged = capsys.readouterr()
    lines = [orjson.loads(line) for line in logged.out.splitlines() + logged.err.splitlines()]
    requests = [line for line in lines if line.get("event") == "request"]
    assert [line["status"] for line in requests] == [499]
    assert not [line for line in lines if line.get("event") == "unhandled error"]
    assert [m["status"] for m in sent if m["type"] == "http.response.start"] == []
    listed = await hub.http.get("/fhir/Patient", headers=headers)
    assert listed.json().get("entry", []) == []
