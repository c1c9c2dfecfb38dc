"""A refusal in the audit trail tells the refused organisation no more than the refusal did.

Hospital B asks for (reads, updates, deletes) hospital A's Condition, which A does not share
with it, and for an id that nothing has: B got the same answers, and B's data protection
officer reads the same entries for both — without A's Patient record. A's DPO, answering
for the record, sees B's attempts with the record and the true reason; so does the platform's
security team."""

from __future__ import annotations

from typing import Any

import orjson

from tests.access.conftest import Region
from tests.access.test_shared_access import Story

FREE = "hospital-a.nothing-here"
INTERACTIONS = ("read", "update", "delete")


async def _attempt(region: Region, fhir_id: str, request_id: str) -> list[int]:
    """Hospital B's read, update and delete of `Condition/{fhir_id}`; their statuses."""
    headers = {**await region.token("hospital-b"), "x-request-id": request_id}
    url = f"/fhir/Condition/{fhir_id}"
    body = orjson.dumps({"resourceType": "Condition", "id": fhir_id, "subject": {"display": "x"}})
    return [
        (await region.http.get(url, headers=headers)).status_code,
        (await region.http.put(url, content=body, headers=headers)).status_code,
        (await region.http.delete(url, headers=headers)).status_code,
    ]


async def _trail(region: Region, query: str, headers: dict[str, str]) -> list[dict[str, Any]]:
    response = await region.http.get(f"/fhir/AuditEvent?{query}", headers=headers)
    assert response.status_code == 200, response.text
    return [entry["resource"] for entry in response.json()["entry"]]


def _of_request(events: list[dict[str, Any]], request_id: str) -> list[dict[str, Any]]:
    return [
        event
        for event in events
        if {"what": {"identifier": {"value": request_id}}}.items()
        <= next((e for e in event["entity"] if e["type"].get("code") == "XrequestId"), {}).items()
    ]


def _patients(event: dict[str, Any]) -> set[str]:
    return {e["what"]["reference"] for e in event["entity"] if e.get("role", {}).get("code") == "1"}


def _alike(event: dict[str, Any], fhir_id: str, request_id: str) -> dict[str, Any]:
    """The event without what differs between two requests anyway: its place and time, the
    id asked for and the request id."""
    text = orjson.dumps(event).decode().replace(fhir_id, "ID").replace(request_id, "REQUEST")
    return {k: v for k, v in orjson.loads(text).items() if k not in ("id", "recorded")}


async def _story(region: Region) -> tuple[str, str]:
    """A's Patient record and its Condition, and B's attempts on the Condition and on a free
    id (sealed); the record's and the Condition's ids."""
    patient = await region.create("hospital-a", {"resourceType": "Patient"})
    condition = await region.create(
        "hospital-a",
        {"resourceType": "Condition", "subject": {"reference": f"Patient/{patient}"}},
    )
    assert await _attempt(region, condition, "b-probe") == await _attempt(region, FREE, "b-free")
    await region.platform.audit.seal_all()
    return patient, condition


async def test_the_refused_organisation_reads_its_refusals_without_the_record(
    region: Region,
) -> None:
    patient, condition = await _story(region)
    dpo_b = await region.token("hospital-b", "data_protection_officer", "")
    response = await region.http.get("/fhir/AuditEvent?_count=1000", headers=dpo_b)
    assert response.status_code == 200
    assert patient not in response.text  # nowhere: no entity, no detail
    events = response.json()["entry"]
    probed = _of_request([e["resource"] for e in events], "b-probe")
    free = _of_request([e["resource"] for e in events], "b-free")
    assert len(probed) == len(free) == len(INTERACTIONS)
    for seen in probed:
        assert seen["outcome"] == "4"
        assert seen["outcomeDesc"] == "not-known"
        assert _patients(seen) == set()
    assert sorted((_alike(e, condition, "b-probe") for e in probed), key=orjson.dumps) == sorted(
        (_alike(e, FREE, "b-free") for e in free), key=orjson.dumps
    )
    # One entry read on its own shows the same.
    one = await region.http.get(f"/fhir/AuditEvent/{probed[0]['id']}", headers=dpo_b)
    assert one.status_code == 200
    assert patient not in one.text
    assert one.json() == probed[0]
    # Nor does asking by the record help: it is not B's to answer for.
    by_record = await region.http.get(f"/fhir/AuditEvent?patient={patient}", headers=dpo_b)
    assert by_record.status_code == 403
    log = await region.http.get(f"/api/patients/{patient}/access-log", headers=dpo_b)
    assert log.status_code == 403


async def test_the_holder_and_the_operator_see_the_attempts_with_the_record(
    region: Region,
) -> None:
    patient, condition = await _story(region)
    dpo_a = await region.token("hospital-a", "data_protection_officer", "")
    probed = _of_request(await _trail(region, f"patient={patient}", dpo_a), "b-probe")
    assert len(probed) == len(INTERACTIONS)
    for seen in probed:
        assert seen["outcomeDesc"] == "other-organisation"
        assert _patients(seen) == {f"Patient/{patient}"}
        assert seen["agent"][1]["who"] == {"reference": "Organization/hospital-b"}
        assert seen["entity"][0]["what"] == {"reference": f"Condition/{condition}"}
    operator = await region.token("platform", "platform_admin")
    everything = await _trail(region, "_count=1000", operator)
    assert {
        (e["outcomeDesc"], frozenset(_patients(e))) for e in _of_request(everything, "b-probe")
    } == {("other-organisation", frozenset({f"Patient/{patient}"}))}
    assert {e["outcomeDesc"] for e in _of_request(everything, "b-free")} == {"not-known"}
    log = await region.http.get(f"/api/patients/{patient}/access-log", headers=dpo_a)
    assert log.status_code == 200, log.text
    refused = [e for e in log.json()["entries"] if e["organisation"] == "Organization/hospital-b"]
    assert sorted(e["did"] for e in refused) == ["changed", "deleted", "looked at"]
    assert {(e["allowed"], e["why"]) for e in refused} == {
        (False, "the data is held by another organisation")
    }


async def test_an_organisations_own_staff_still_see_what_they_were_shown(
    region: Region,
) -> None:
    """The narrowing concerns refusals and others' records: B's DPO sees the record of A's
    whose lab value B's physician was allowed to read (shared with B), and C's DPO — whose
    physician was refused the same lab value — does not."""
    story = Story(region)
    await story.tell()
    lab, a1 = f"/fhir/Observation/{story.ids['lab']}", f"Patient/{story.ids['a1']}"
    assert await story.status("hospital-b", lab) == 200
    assert await story.status("hospital-c", lab) == 404
    await region.platform.audit.seal_all()
    seen = {}
    for hospital in ("hospital-b", "hospital-c"):
        dpo = await region.token(hospital, "data_protection_officer", "")
        (read,) = await _trail(region, "subtype=read", dpo)
        seen[hospital] = (read["outcome"], _patients(read))
    assert seen == {"hospital-b": ("0", {a1}), "hospital-c": ("4", set())}
