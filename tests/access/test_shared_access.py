"""Data held by another hospital, through HTTP: visible while the person's sharing consent
covers the reader and the reader treats the person, on the very next request after either
changes; never writable; never visible to a hospital without both."""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson
import pytest

from tests.access.conftest import Region
from tests.support import clients, resources
from tests.support.clock import MovableClock

PERSON = "A123456780"
"""The KVNR of the person whose records the hospitals hold."""
ROLES = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"


async def _put(region: Region, organisation: str, resource: dict[str, Any]) -> None:
    await clients.put(region.http, await region.token(organisation), resource)


async def _lab(region: Region, organisation: str, patient_id: str) -> str:
    """A haemoglobin value about Patient record `patient_id`, held by `organisation`; its id."""
    return await region.create(organisation, resources.observation(patient_id))


class Story:
    """Hospital A holds a person's record and a lab value; hospital B treats the same person
    (same KVNR) under a record of its own; hospital C only holds a record of the person."""

    def __init__(self, region: Region) -> None:
        self.region = region
        self.ids: dict[str, str] = {}

    async def tell(self, consent: bool = True, treated: bool = True) -> None:
        region, ids = self.region, self.ids
        ids["a1"] = await region.create("hospital-a", resources.patient(PERSON))
        quantity = {"value": 13.2, "unit": "g/dL"}
        ids["lab"] = await region.create(
            "hospital-a", resources.observation(ids["a1"], valueQuantity=quantity)
        )
        ids["b1"] = await region.create("hospital-b", resources.patient(PERSON))
        ids["c1"] = await region.create("hospital-c", resources.patient(PERSON))
        if treated:
            ids["stay"] = await region.create("hospital-b", resources.encounter(ids["b1"]))
        if consent:
            ids["consent"] = await region.consent_during_stay(
                "hospital-a", resources.consent(ids["a1"])
            )

    async def status(self, organisation: str, path: str) -> int:
        response = await self.region.http.get(path, headers=await self.region.token(organisation))
        return response.status_code

    async def found(self, organisation: str, query: str) -> set[str]:
        response = await self.region.http.get(
            f"/fhir/{query}", headers=await self.region.token(organisation)
        )
        assert response.status_code == 200, response.text
        bundle = response.json()
        return {
            f"{e['resource']['resourceType']}/{e['resource']['id']}"
            for e in bundle.get("entry", [])
        }


async def test_a_treating_hospital_reads_what_the_consent_shares(region: Region) -> None:
    story = Story(region)
    await story.tell()
    ids = story.ids
    lab = f"Observation/{ids['lab']}"
    assert await story.status("hospital-b", f"/fhir/{lab}") == 200
    assert await story.status("hospital-b", f"/fhir/{lab}/_history/1") == 200
    assert await story.status("hospital-b", f"/fhir/{lab}/_history") == 200
    assert lab in await story.found("hospital-b", "Observation?code=http://loinc.org|718-7")
    assert lab in await story.found("hospital-b", f"Observation?subject=Patient/{ids['a1']}")
    everything = await story.found("hospital-b", f"Patient/{ids['b1']}/$everything")
    # The consent is the person's, wherever it was recorded: C's record is shared too.
    person = {f"Patient/{ids[record]}" for record in ("a1", "b1", "c1")}
    assert {lab, f"Encounter/{ids['stay']}", *person} <= everything
    with_patient = await story.found(
        "hospital-b", "Observation?code=718-7&_include=Observation:subject"
    )
    assert f"Patient/{ids['a1']}" in with_patient

    # Hospital C holds a record of the person but does not treat them: nothing of A's.
    assert await story.status("hospital-c", f"/fhir/{lab}") == 404
    assert await story.found("hospital-c", "Observation?code=718-7") == set()
    counted = await region.http.get(
        "/fhir/Observation?code=718-7&_summary=count", headers=await region.token("hospital-c")
    )
    assert counted.json()["total"] == 0


async def test_shared_data_is_never_written_by_the_reader(region: Region) -> None:
    """A reader of shared data is told that it is read-only here (403, not "unknown": it has
    just read it); a hospital that cannot see it learns nothing (404)."""
    story = Story(region)
    await story.tell()
    ids = story.ids
    lab = f"Observation/{ids['lab']}"
    assert await story.status("hospital-b", f"/fhir/{lab}") == 200
    headers = await region.token("hospital-b")
    changed = resources.observation(ids["a1"], id=ids["lab"], status="amended")
    update = await region.http.put(f"/fhir/{lab}", content=orjson.dumps(changed), headers=headers)
    delete = await region.http.delete(f"/fhir/{lab}", headers=headers)
    patch = await region.http.patch(
        f"/fhir/{lab}",
        content=b'[{"op": "replace", "path": "/status", "value": "amended"}]',
        headers={**headers, "content-type": "application/json-patch+json"},
    )
    assert (update.status_code, delete.status_code, patch.status_code) == (403, 403, 403)
    assert update.json()["resourceType"] == "OperationOutcome"
    assert "held by another organisation" in update.json()["issue"][0]["diagnostics"]
    stranger = await region.token("hospital-e")
    unseen = await region.http.put(f"/fhir/{lab}", content=orjson.dumps(changed), headers=stranger)
    assert unseen.status_code == 404
    assert await region.decisions(lab, "fhir.update", "fhir.delete") == [
        ("fhir.delete", "held-elsewhere"),
        ("fhir.update", "held-elsewhere"),
        ("fhir.update", "held-elsewhere"),
        ("fhir.update", "other-organisation"),
    ]
    conditional = await region.http.delete(
        f"/fhir/Observation?subject=Patient/{ids['a1']}", headers=headers
    )
    assert conditional.status_code in (200, 204)
    assert await story.status("hospital-a", f"/fhir/{lab}") == 200


@pytest.mark.parametrize(
    "change",
    ["consent revoked", "consent deleted", "objection", "treatment ended", "consent for C only"],
)
async def test_access_ends_with_the_very_next_request(region: Region, change: str) -> None:
    story = Story(region)
    await story.tell()
    ids = story.ids
    lab = f"/fhir/Observation/{ids['lab']}"
    assert await story.status("hospital-b", lab) == 200
    if change == "consent revoked":
        await _put(
            region,
            "hospital-a",
            {**resources.consent(ids["a1"]), "id": ids["consent"], "status": "inactive"},
        )
    elif change == "consent deleted":
        deleted = await region.http.delete(
            f"/fhir/Consent/{ids['consent']}", headers=await region.token("hospital-a")
        )
        assert deleted.status_code in (200, 204)
    elif change == "objection":
        await region.create("hospital-a", resources.consent(ids["a1"], "deny"))
    elif change == "treatment ended":
        await _put(
            region, "hospital-b", {**resources.encounter(ids["b1"], "finished"), "id": ids["stay"]}
        )
    else:
        recipient = {"coding": [{"system": ROLES, "code": "IRCP"}]}
        reader = {"role": recipient, "reference": {"reference": "Organization/hospital-c"}}
        only_c = resources.consent(ids["a1"], provision={"type": "permit", "actor": [reader]})
        await _put(region, "hospital-a", {**only_c, "id": ids["consent"]})
    assert await story.status("hospital-b", lab) == 404
    assert await story.found("hospital-b", "Observation?code=718-7") == set()


async def test_without_a_consent_treatment_alone_shows_nothing(region: Region) -> None:
    story = Story(region)
    await story.tell(consent=False)
    assert await story.status("hospital-b", f"/fhir/Observation/{story.ids['lab']}") == 404


async def test_a_consent_held_by_the_reader_about_anothers_record_grants_nothing(
    region: Region,
) -> None:
    story = Story(region)
    await story.tell(consent=False)
    await region.create("hospital-b", resources.consent(story.ids["a1"]))
    assert await story.status("hospital-b", f"/fhir/Observation/{story.ids['lab']}") == 404


async def test_a_bundle_may_name_the_treatment_before_the_record(region: Region) -> None:
    """Entries are stored in the order given: the encounter's fact waits for its record."""
    story = Story(region)
    await story.tell(treated=False)
    patient_url = "urn:uuid:7d2f6b1e-3c4a-4e8b-9f1a-2b3c4d5e6f70"
    encounter = {**resources.encounter("x"), "subject": {"reference": patient_url}}
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": encounter, "request": {"method": "POST", "url": "Encounter"}},
            {
                "fullUrl": patient_url,
                "resource": resources.patient(PERSON),
                "request": {"method": "POST", "url": "Patient"},
            },
        ],
    }
    lab = f"/fhir/Observation/{story.ids['lab']}"
    assert await story.status("hospital-d", lab) == 404
    stored = await region.http.post(
        "/fhir", content=orjson.dumps(bundle), headers=await region.token("hospital-d")
    )
    assert stored.status_code == 200, stored.text
    assert await story.status("hospital-d", lab) == 200


async def test_a_consent_ends_at_its_time_without_a_write(
    region: Region, clock: MovableClock
) -> None:
    """Shares carry their consent's period; every query compares it with its own time."""
    story = Story(region)
    await story.tell(consent=False)
    tomorrow = (clock() + dt.timedelta(days=1)).date().isoformat()
    until_tomorrow = {"type": "permit", "period": {"end": tomorrow}}
    consent = resources.consent(story.ids["a1"], provision=until_tomorrow)
    await region.consent_during_stay("hospital-a", consent)
    lab = f"/fhir/Observation/{story.ids['lab']}"
    assert await story.status("hospital-b", lab) == 200
    clock.advance(dt.timedelta(days=2))
    assert await story.status("hospital-b", lab) == 404
    assert await story.found("hospital-b", "Observation?code=718-7") == set()
    history = await region.http.get(
        "/fhir/Observation/_history", headers=await region.token("hospital-b")
    )
    assert story.ids["lab"] not in history.text


async def test_a_referral_makes_the_receiving_hospital_a_treating_one(region: Region) -> None:
    """Hospital A refers its patient to hospital D, which holds no record of the person: D
    reads what the consent shares while the referral is active, and not after."""
    story = Story(region)
    await story.tell(treated=False)
    ids = story.ids
    lab = f"/fhir/Observation/{ids['lab']}"
    assert await story.status("hospital-d", lab) == 404
    referral = await region.create("hospital-a", resources.referral(ids["a1"], "hospital-d"))
    assert await story.status("hospital-d", lab) == 200
    assert f"Observation/{ids['lab']}" in await story.found("hospital-d", "Observation?code=718-7")
    assert await story.status("hospital-e", lab) == 404
    await _put(
        region,
        "hospital-a",
        {**resources.referral(ids["a1"], "hospital-d", "completed"), "id": referral},
    )
    assert await story.status("hospital-d", lab) == 404


@pytest.mark.parametrize("link_type", ["seealso", "replaced-by", "replaces"])
async def test_a_link_to_another_hospitals_record_joins_no_one(
    region: Region, link_type: str
) -> None:
    """Hospital D writes a `Patient.link` from a record of its own to hospital A's record,
    whose person consented to share with every participant, and treats its record: it reads
    nothing of A's, as only MPI stewards link records of different hospitals."""
    a1 = await region.create("hospital-a", {"resourceType": "Patient"})
    lab = await _lab(region, "hospital-a", a1)
    await region.consent_during_stay("hospital-a", resources.consent(a1))
    d1 = await region.create(
        "hospital-d",
        {
            "resourceType": "Patient",
            "link": [{"other": {"reference": f"Patient/{a1}"}, "type": link_type}],
        },
    )
    await region.create("hospital-d", resources.encounter(d1))
    story = Story(region)
    assert await story.status("hospital-d", f"/fhir/Observation/{lab}") == 404
    everything = await story.found("hospital-d", f"Patient/{d1}/$everything")
    assert f"Patient/{d1}" in everything
    assert {f"Patient/{a1}", f"Observation/{lab}"}.isdisjoint(everything)
    # The same link made by a steward does join them.
    steward = await region.token("platform", "platform_admin")
    linked = await region.http.post(
        "/api/mpi/links", json={"patient": d1, "other": a1}, headers=steward
    )
    assert linked.status_code in (200, 201), linked.text
    assert await story.status("hospital-d", f"/fhir/Observation/{lab}") == 200


async def test_a_hospital_merging_its_own_duplicates_joins_them(region: Region) -> None:
    """Hospital A kept a duplicate record (no KVNR) with a lab value; hospital B treats the
    person under its own record. Once A merges the duplicate into its main record
    (`replaced-by`), B reads the duplicate's lab; when A takes the merge back, no longer."""
    story = Story(region)
    await story.tell()
    duplicate = {"resourceType": "Patient", "active": False}
    a2 = await region.create("hospital-a", duplicate)
    lab = await _lab(region, "hospital-a", a2)
    path = f"/fhir/Observation/{lab}"
    assert await story.status("hospital-b", path) == 404
    merge = [{"other": {"reference": f"Patient/{story.ids['a1']}"}, "type": "replaced-by"}]
    await _put(region, "hospital-a", {**duplicate, "id": a2, "link": merge})
    assert await story.status("hospital-b", path) == 200
    everything = await story.found("hospital-b", f"Patient/{story.ids['b1']}/$everything")
    assert f"Observation/{lab}" in everything
    await _put(region, "hospital-a", {**duplicate, "id": a2})
    assert await story.status("hospital-b", path) == 404


async def test_a_teleconsultation_assigns_each_invited_hospital(region: Region) -> None:
    """A tumour board: hospital A asks hospitals D and E for their opinion, one consultation
    request each. Both read what the consent shares; revoking D's request ends D's access
    alone, with the next request."""
    story = Story(region)
    await story.tell(treated=False)
    for hospital in ("hospital-d", "hospital-e"):
        await region.organisation(hospital, "hospital")
    ids = story.ids
    lab = f"/fhir/Observation/{ids['lab']}"
    consultation = {
        "category": [{"coding": [{"system": "http://snomed.info/sct", "code": "11429006"}]}]
    }
    requests = {
        hospital: await region.create(
            "hospital-a", {**resources.referral(ids["a1"], hospital), **consultation}
        )
        for hospital in ("hospital-d", "hospital-e")
    }
    assert [await story.status(h, lab) for h in ("hospital-d", "hospital-e")] == [200, 200]
    revoked = {**resources.referral(ids["a1"], "hospital-d", "revoked"), **consultation}
    await _put(region, "hospital-a", {**revoked, "id": requests["hospital-d"]})
    assert [await story.status(h, lab) for h in ("hospital-d", "hospital-e")] == [404, 200]


async def test_a_referral_to_itself_about_anothers_record_grants_nothing(region: Region) -> None:
    story = Story(region)
    await story.tell(treated=False)
    await region.create("hospital-d", resources.referral(story.ids["a1"], "hospital-d"))
    assert await story.status("hospital-d", f"/fhir/Observation/{story.ids['lab']}") == 404
