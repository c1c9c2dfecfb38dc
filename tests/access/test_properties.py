"""Property: whatever organisations (hospitals, practices, app vendors), persons, records,
consents (with or without their source document), treatment relations and lab values there
are, no search, include, history or count shows an organisation a resource that
the rules deny it (checked against an oracle written from docs/access.md), and every resource
they allow it is found.

Each example lives in organisations and KVNRs of its own, so that examples share a database
without seeing each other."""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.access.conftest import Region
from tests.support import resources

ORGANISATIONS = 3
TYPES = ("hospital", "practice", "app_vendor")
CARE_PROVIDERS = frozenset({"hospital", "practice"})
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
    source: bool  # whether the consent names its source document


record = st.builds(
    Record,
    person=st.integers(0, 2),
    holder=st.integers(0, ORGANISATIONS - 1),
    labs=st.lists(st.integers(0, ORGANISATIONS - 1), max_size=2).map(tuple),
    consent=st.sampled_from(["none", "permit-all", "permit-one", "deny", "inactive"]),
    named=st.integers(0, ORGANISATIONS - 1),
    treating=st.booleans(),
    source=st.booleans(),
)


@dataclass
class World:
    records: list[Record]
    types: tuple[str, ...]
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
        treating = {r.holder for r in person if r.treating and self.cares(r.holder)}
        consents = [r for r in person if self.recorded(r)]
        if any(r.consent == "deny" for r in consents):
            return False
        # A permit counts once its recorder treats the person (vouched for).
        covered = any(
            r.holder in treating
            and (
                r.consent == "permit-all" or (r.consent == "permit-one" and r.named == organisation)
            )
            for r in consents
        )
        return covered and organisation in treating

    def cares(self, organisation: int) -> bool:
        return self.types[organisation] in CARE_PROVIDERS

    def recorded(self, mine: Record) -> bool:
        """Whether the consent of a record was accepted: only care providers record one,
        and a permit names its source."""
        if mine.consent in ("none", "inactive"):
            return mine.consent == "inactive"
        return self.cares(mine.holder) and (mine.consent == "deny" or mine.source)

    def answer(self, mine: Record, kind: str) -> int:
        """The status a write of the record's treatment relation or consent gets."""
        if kind == "Consent" and mine.consent == "inactive":
            return 201
        if not self.cares(mine.holder):
            return 403
        return 201 if kind == "Encounter" or self.recorded(mine) else 422


def _consent(patient: str, world: World, mine: Record) -> dict[str, Any]:
    provision: dict[str, Any] = {"type": "deny" if mine.consent == "deny" else "permit"}
    if mine.consent == "permit-one":
        reference = {"reference": f"Organization/{world.organisation(mine.named)}"}
        provision["actor"] = [{"role": ROLE, "reference": reference}]
    return resources.consent(
        patient,
        signed=mine.source,
        status="inactive" if mine.consent == "inactive" else "active",
        provision=provision,
    )


async def _written(region: Region, organisation: str, resource: dict[str, Any]) -> int:
    response = await region.http.post(
        f"/fhir/{resource['resourceType']}",
        content=orjson.dumps(resource),
        headers=await region.token(organisation),
    )
    return response.status_code


async def _build(region: Region, world: World) -> None:
    for organisation, kind in enumerate(world.types):
        await region.organisation(world.organisation(organisation), kind)
    for number, mine in enumerate(world.records):
        holder = world.organisation(mine.holder)
        patient = resources.patient(world.kvnr(mine.person))
        world.ids[number] = patient_id = await region.create(holder, patient)
        for lab_holder in mine.labs:
            lab = resources.observation(patient_id, world.prefix)
            lab_id = await region.create(world.organisation(lab_holder), lab)
            world.labs[lab_id] = (number, lab_holder)
        if mine.treating:
            encounter = resources.encounter(patient_id)
            assert await _written(region, holder, encounter) == world.answer(mine, "Encounter")
        if mine.consent != "none":
            consent = _consent(patient_id, world, mine)
            assert await _written(region, holder, consent) == world.answer(mine, "Consent")


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
@given(
    records=st.lists(record, min_size=1, max_size=5),
    types=st.tuples(*[st.sampled_from(TYPES)] * ORGANISATIONS),
)
async def test_nothing_denied_is_ever_shown(
    region: Region, records: list[Record], types: tuple[str, ...]
) -> None:
    world = World(records, types)
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
