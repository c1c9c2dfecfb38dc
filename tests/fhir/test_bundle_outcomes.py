"""A failed bundle entry answers with the problems themselves, each pointing into the entry's
resource, for transactions and batches alike."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from medicus.fhir.bundles import _within
from tests.fhir.conftest import Hub

INVALID_PATIENT = {"resourceType": "Patient", "birthDate": "1964-13-45", "active": "yes"}


def _bundle(kind: str) -> bytes:
    entries = [
        {"resource": {"resourceType": "Patient"}, "request": {"method": "POST", "url": "Patient"}},
        {"resource": INVALID_PATIENT, "request": {"method": "POST", "url": "Patient"}},
    ]
    return orjson.dumps({"resourceType": "Bundle", "type": kind, "entry": entries})


def _problems(outcome: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {
        issue["expression"][0]: (issue["severity"], issue["code"])
        for issue in outcome["issue"][1:]
        if "diagnostics" in issue
    }


EXPECTED = {
    "Bundle.entry[1].resource.birthDate": ("error", "value"),
    "Bundle.entry[1].resource.active": ("error", "structure"),
}


async def test_a_failed_transaction_lists_the_entry_s_problems(hub: Hub) -> None:
    headers = await hub.token()
    answer = await hub.http.post("/fhir", content=_bundle("transaction"), headers=headers)
    assert answer.status_code == 422, answer.text
    outcome = answer.json()
    assert outcome["issue"][0]["diagnostics"].startswith("Bundle.entry[1]: ")
    assert _problems(outcome) == EXPECTED
    diagnostics = [issue["diagnostics"] for issue in outcome["issue"][1:]]
    assert any("1964-13-45" in text for text in diagnostics)
    listed = await hub.http.get("/fhir/Patient", headers=headers)
    assert listed.json().get("entry", []) == []


async def test_a_failed_batch_entry_lists_its_problems(hub: Hub) -> None:
    answer = await hub.http.post("/fhir", content=_bundle("batch"), headers=await hub.token())
    assert answer.status_code == 200, answer.text
    first, second = answer.json()["entry"]
    assert first["response"]["status"] == "201 Created"
    assert second["response"]["status"] == "422"
    assert _problems(second["response"]["outcome"]) == EXPECTED


@pytest.mark.parametrize(
    ("expression", "within"),
    [
        ("Patient.name[0].family", "Bundle.entry[3].resource.name[0].family"),
        ("Patient", "Bundle.entry[3].resource"),
        ("resourceType", "Bundle.entry[3].resource.resourceType"),
        (None, "Bundle.entry[3].resource"),
    ],
)
def test_expressions_are_moved_into_the_entry(expression: str | None, within: str) -> None:
    assert _within("Bundle.entry[3].resource", expression) == within
