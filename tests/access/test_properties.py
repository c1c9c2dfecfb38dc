"""Property: whatever organisations, persons, records, consents, treatment relations and lab
values there are, no search, include, history or count shows an organisation a resource that
the rules deny it (checked against an oracle written from docs/access.md), and every resource
they allow it is found.

Each example lives in organisations and KVNRs of its own, so that examples share a database
without seeing each other."""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.access.conftest import Region

ORGANISATIONS = 3
PRIVACY = {
    "coding": [
        {"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}
    ]
}
ROLE = {
    "coding": [
        {"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}
    ]
}


@dataclass(frozen=True)
class Record:
    person: int
    holder: int
    labs: tuple[int, ...]
    """The organisations holding a lab value about this record (not always its holder)."""
    consent: str  # none, permit-all, permit-one, deny, inactive
    named: int  # the organisation a permit-one consent names
    treating: bool


record = st.builds(
    Record,
    person=st.integers(0, 2),
    holder=st.integers(0, ORGANISATIONS - 1),
    labs=st.lists(st.integers(0, ORGANISATIONS - 1), max_size=2).map(tuple),
    consent=st.sampled_from(["none", "permit-all", "permit-one", "deny", "inactive"]),
    named=st.integers(0, ORGANISATIONS - 1),
    treating=st.booleans(),
)


@dataclass
class World:
    records: list[Record]
    prefix: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    ids: dict[int, str] = field(default_factory=dict)  # record number -> Patient id
    labs: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Observation id -> (record number, holding organisation)."""

    def organisation(self, number: int) -> str:
        return f"{self.prefix}-org{number}"

    def kvnr(self, person: int) -> str:
        return f"K{int(self.prefix, 16) % 10**8:08d}{person}"

    def may_see(self, organisation: int, number: int, holder: int | None = None) -> bool:
        """The oracle: may `organisation` see what `holder` (by default the record's own
        holder) holds about record `number`?"""
        mine = self.records[number]
        if (mine.holder if holder is None else holder) == organisation:
            return True
        person = [r for r in self.records if r.person == mine.person]
        consents = [r for r in person if r.consent != "none"]
        if any(r.consent == "deny" for r in consents):
            return False
        covered = any(
            r.consent == "permit-all" or (r.consent == "permit-one" and r.named == organisation)
            for r in consents
        )
        treats = any(r.treating and r.holder == organisation for r in person)
        return covered and treats


def _consent(patient: str, world: World, mine: Record) -> dict[str, Any]:
    provision: dict[str, Any] = {"type": "deny" if mine.consent == "deny" else "permit"}
    if mine.consent == "permit-one":
        reference = {"reference": f"Organization/{world.organisation(mine.named)}"}
        provision["actor"] = [{"role": ROLE, "reference": reference}]
    return {
        "resourceType": "Consent",
        "status": "inactive" if mine.consent == "inactive" else "active",
        "scope": PRIVACY,
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": f"Patient/{patient}"},
        "provision": provision,
    }


async def _build(region: Region, world: World) -> None:
    for number, mine in enumerate(world.records):
        holder = world.organisation(mine.holder)
        patient = {
            "resourceType": "Patient",
            "identifier": [
                {"system": "http://fhir.de/sid/gkv/kvid-10", "value": world.kvnr(mine.person)}
            ],
        }
        world.ids[number] = patient_id = await region.create(holder, patient)
        for lab_holder in mine.labs:
            lab = {
                "resourceType": "Observation",
                "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": world.prefix}]},
                "subject": {"reference": f"Patient/{patient_id}"},
            }
            lab_id = await region.create(world.organisation(lab_holder), lab)
            world.labs[lab_id] = (number, lab_holder)
        if mine.treating:
            encounter = {
                "resourceType": "Encounter",
                "status": "in-progress",
                "class": {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                    "code": "IMP",
                },
                "subject": {"reference": f"Patient/{patient_id}"},
            }
            await region.create(holder, encounter)
        if mine.consent != "none":
            await region.create(holder, _consent(patient_id, world, mine))


async def _found(region: Region, organisation: str, path: str) -> dict[str, Any]:
    response = await region.http.get(f"/fhir/{path}", headers=await region.token(organisation))
    assert response.status_code == 200, response.text
    return dict(response.json())


def _resources(bundle: dict[str, Any], kind: str) -> set[str]:
    return {
        entry["resource"]["id"]
        for entry in bundle.get("entry", [])
        if entry.get("resource", {}).get("resourceType") == kind
    }


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(records=st.lists(record, min_size=1, max_size=5))
async def test_nothing_denied_is_ever_shown(region: Region, records: list[Record]) -> None:
    world = World(records)
    await _build(region, world)
    patients = {world.ids[n]: n for n in world.ids}
    for organisation in range(ORGANISATIONS):
        name = world.organisation(organisation)
        visible_labs = {
            lab for lab, (n, holder) in world.labs.items() if world.may_see(organisation, n, holder)
        }
        visible_patients = {p for p, n in patients.items() if world.may_see(organisation, n)}
        code = f"http://loinc.org|{world.prefix}"

        searched = await _found(region, name, f"Observation?code={code}&_count=100")
        assert _resources(searched, "Observation") == visible_labs
        counted = await _found(region, name, f"Observation?code={code}&_summary=count")
        assert counted["total"] == len(visible_labs)
        included = await _found(
            region, name, f"Observation?code={code}&_include=Observation:subject&_count=100"
        )
        subjects = {world.ids[world.labs[lab][0]] for lab in visible_labs}
        assert _resources(included, "Patient") == subjects & visible_patients
        revincluded = await _found(
            region,
            name,
            "Patient?identifier="
            + ",".join(f"http://fhir.de/sid/gkv/kvid-10|{world.kvnr(p)}" for p in range(3))
            + "&_revinclude=Observation:subject&_count=100",
        )
        assert _resources(revincluded, "Observation") == {
            lab for lab in visible_labs if world.ids[world.labs[lab][0]] in visible_patients
        }
        history = await _found(region, name, "Observation/_history?_count=1000")
        shown = {lab for lab in _resources(history, "Observation") if lab in world.labs}
        assert shown == visible_labs
        by_kvnr = await _found(
            region,
            name,
            "Patient?identifier="
            + ",".join(f"http://fhir.de/sid/gkv/kvid-10|{world.kvnr(p)}" for p in range(3))
            + "&_count=100",
        )
        assert _resources(by_kvnr, "Patient") == visible_patients
        for patient_id, number in itertools.islice(patients.items(), 3):
            read = await region.http.get(
                f"/fhir/Patient/{patient_id}", headers=await region.token(name)
            )
            assert read.status_code == (200 if world.may_see(organisation, number) else 404)
