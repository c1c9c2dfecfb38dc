"""The master patient index: records with the same KVNR, or linked by an MPI steward, are one
person; it follows every write of a Patient; only stewards link, and every link is audited."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from medicus.access.patients import kvnr_of, merged_with, persons
from tests.access.conftest import Region
from tests.support import resources
from tests.support.database import rows

GKV = resources.KVNR
PKV = "http://fhir.de/sid/pkv/kvid-10"


def test_kvnr_of_takes_the_first_well_formed_kvnr() -> None:
    def patient(*identifiers: tuple[str, str]) -> dict[str, Any]:
        return {"identifier": [{"system": s, "value": v} for s, v in identifiers]}

    assert kvnr_of(patient(("urn:mrn", "123"), (GKV, " a123456780 "))) == "A123456780"
    assert kvnr_of(patient((PKV, "B987654321"))) == "B987654321"
    assert kvnr_of(patient((GKV, "12345"), (GKV, "C111111111"))) == "C111111111"
    assert kvnr_of(patient(("urn:other", "A123456780"))) is None
    assert kvnr_of({"identifier": "not a list"}) is None
    assert kvnr_of({}) is None


def test_persons_join_by_kvnr_and_by_link() -> None:
    records = [("d", "K1"), ("b", "K1"), ("c", None), ("a", None), ("e", "K2")]
    assert persons(records, []) == {"d": "b", "b": "b", "c": "c", "a": "a", "e": "e"}
    linked = persons(records, [("c", "d"), ("a", "e"), ("e", "unknown")])
    assert linked == {"d": "b", "b": "b", "c": "b", "a": "a", "e": "a"}
    assert persons(records, [("c", "d"), ("a", "c")])["e"] == "e"
    assert set(persons(records, [("c", "d"), ("a", "c")]).values()) == {"a", "e"}


async def _create(region: Region, organisation: str, kvnr: str | None = None) -> str:
    return await region.create(organisation, resources.patient(kvnr))


async def _person(region: Region, patient_id: str) -> set[tuple[str, str]]:
    response = await region.http.get(
        f"/api/mpi/persons/{patient_id}", headers=await region.token("operator", "platform_admin")
    )
    assert response.status_code == 200, response.text
    return {(r["patient"], r["organisation"]) for r in response.json()["records"]}


async def test_the_same_kvnr_in_two_hospitals_is_one_person(region: Region) -> None:
    in_a = await _create(region, "hospital-a", "A123456780")
    in_b = await _create(region, "hospital-b", "A123456780")
    other = await _create(region, "hospital-b", "B123456780")
    both = {(f"Patient/{in_a}", "hospital-a"), (f"Patient/{in_b}", "hospital-b")}
    assert await _person(region, in_a) == both
    assert await _person(region, in_b) == both
    assert await _person(region, other) == {(f"Patient/{other}", "hospital-b")}


async def test_the_person_follows_updates_and_deletes(region: Region) -> None:
    in_a = await _create(region, "hospital-a", "A123456780")
    in_b = await _create(region, "hospital-b", "A123456780")
    in_c = await _create(region, "hospital-c", "A123456780")
    changed = {**resources.patient("Z999999999"), "id": in_b}
    response = await region.http.put(
        f"/fhir/Patient/{in_b}",
        content=orjson.dumps(changed),
        headers=await region.token("hospital-b"),
    )
    assert response.status_code == 200, response.text
    assert await _person(region, in_a) == {
        (f"Patient/{in_a}", "hospital-a"),
        (f"Patient/{in_c}", "hospital-c"),
    }
    assert await _person(region, in_b) == {(f"Patient/{in_b}", "hospital-b")}
    deleted = await region.http.delete(f"/fhir/Patient/{in_a}", headers=await region.token())
    assert deleted.status_code in (200, 204)
    assert await _person(region, in_c) == {(f"Patient/{in_c}", "hospital-c")}
    gone = await region.http.get(
        f"/api/mpi/persons/{in_a}", headers=await region.token("operator", "platform_admin")
    )
    assert gone.status_code == 404


async def test_a_steward_links_and_unlinks_records(region: Region) -> None:
    in_a = await _create(region, "hospital-a", "A123456780")
    in_b = await _create(region, "hospital-b", "A123456780")
    without = await _create(region, "practice-c")
    steward = await region.token("operator", "platform_admin")
    linked = await region.http.post(
        "/api/mpi/links", json={"patient": without, "other": in_b}, headers=steward
    )
    assert linked.status_code == 200, linked.text
    everyone = {
        (f"Patient/{in_a}", "hospital-a"),
        (f"Patient/{in_b}", "hospital-b"),
        (f"Patient/{without}", "practice-c"),
    }
    assert {(r["patient"], r["organisation"]) for r in linked.json()["records"]} == everyone
    assert await _person(region, in_a) == everyone
    again = await region.http.post(
        "/api/mpi/links", json={"patient": in_b, "other": without}, headers=steward
    )
    assert again.status_code == 409
    await region.platform.audit.seal_all()

    unlinked = await region.http.delete(f"/api/mpi/links/{in_b}/{without}", headers=steward)
    assert unlinked.status_code == 200, unlinked.text
    assert await _person(region, without) == {(f"Patient/{without}", "practice-c")}
    assert await _person(region, in_a) == everyone - {(f"Patient/{without}", "practice-c")}
    missing = await region.http.delete(f"/api/mpi/links/{in_b}/{without}", headers=steward)
    assert missing.status_code == 404

    # Pending or sealed: a sealer may run at any time (here, between the link and the unlink).
    audited = await rows(
        region.platform,
        "SELECT action, actor, target, outcome FROM audit_pending "
        "WHERE action LIKE 'access.mpi.%link' UNION ALL "
        "SELECT action, actor, target, outcome FROM audit_entry "
        "WHERE action LIKE 'access.mpi.%link'",
    )
    first = min(without, in_b)
    assert sorted(audited) == [
        ("access.mpi.link", "user:operator-platform_admin", f"Patient/{first}", "success"),
        ("access.mpi.unlink", "user:operator-platform_admin", f"Patient/{first}", "success"),
    ]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"patient": "nobody", "other": "KNOWN"}, 404),
        ({"patient": "KNOWN", "other": "KNOWN"}, 422),
        ({"patient": "KNOWN", "other": "a/b"}, 422),
        ({"patient": "KNOWN"}, 422),
    ],
)
async def test_bad_links_are_refused(region: Region, body: dict[str, str], status: int) -> None:
    known = await _create(region, "hospital-a")
    filled = {key: value.replace("KNOWN", known) for key, value in body.items()}
    response = await region.http.post(
        "/api/mpi/links", json=filled, headers=await region.token("operator", "platform_admin")
    )
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize("role", ["physician", "organisation_admin"])
async def test_only_stewards_see_and_link_persons(region: Region, role: str) -> None:
    in_a = await _create(region, "hospital-a", "A123456780")
    in_b = await _create(region, "hospital-b")
    caller = await region.token("hospital-a", role)
    linked = await region.http.post(
        "/api/mpi/links", json={"patient": in_a, "other": in_b}, headers=caller
    )
    seen = await region.http.get(f"/api/mpi/persons/{in_a}", headers=caller)
    assert (linked.status_code, seen.status_code) == (403, 403)
    assert await _person(region, in_b) == {(f"Patient/{in_b}", "hospital-b")}
    audited = sorted(
        await rows(
            region.platform,
            "SELECT action, outcome FROM audit_pending WHERE action LIKE 'access.mpi.%' "
            "UNION ALL SELECT action, outcome FROM audit_entry WHERE action LIKE 'access.mpi.%'",
        )
    )
    denied = [("access.mpi.link", "denied"), ("access.mpi.read", "denied")]
    assert [entry for entry in audited if entry[1] == "denied"] == denied


async def test_concurrent_records_with_one_kvnr_become_one_person(region: Region) -> None:
    created = await asyncio.gather(
        *(_create(region, f"hospital-{n}", "A123456780") for n in range(6))
    )
    assert len(await _person(region, created[0])) == 6


@pytest.mark.parametrize(
    ("links", "merged"),
    [
        ([{"other": {"reference": "Patient/a"}, "type": "replaced-by"}], {"a"}),
        ([{"other": {"reference": "Patient/a"}, "type": "replaces"}], {"a"}),
        ([{"other": {"reference": "Patient/a"}, "type": "seealso"}], set()),
        ([{"other": {"reference": "Patient/a"}, "type": "refer"}], set()),
        ([{"other": {"reference": "RelatedPerson/a"}, "type": "replaces"}], set()),
        ([{"other": {"reference": "https://elsewhere/Patient/a"}, "type": "replaces"}], set()),
        ([{"other": "Patient/a", "type": "replaces"}, "nonsense"], set()),
        (None, set()),
    ],
)
def test_which_links_merge(links: Any, merged: set[str]) -> None:
    """Only a hospital's merges (`replaced-by`, `replaces`) of records on this platform."""
    assert merged_with({"resourceType": "Patient", "link": links}) == merged
