"""Probabilistic matching: records that look alike are proposed to the MPI stewards, never
linked; a steward's "different persons" or link takes a pair off the list."""

from __future__ import annotations

from typing import Any

import pytest

from medicus.access.matching import THRESHOLD, Traits, folded, likeness, traits_of
from tests.access.conftest import Region
from tests.support import resources


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("Müller", "Mueller"),
        ("MÜLLER", "müller"),
        ("Łukasz", "Lukasz"),
        ("Søren", "Soren"),
        ("Groß", "Gross"),
    ],
)
def test_spellings_of_one_name_fold_to_one(one: str, other: str) -> None:
    assert folded(one) == folded(other)


def test_traits_come_from_the_official_name_a_full_birth_date_and_the_first_address() -> None:
    patient = {
        "name": [
            {"use": "maiden", "family": "Schmidt", "given": ["Anna"]},
            {"use": "official", "family": "Müller-Lüdenscheidt", "given": ["Anna", "Maria"]},
        ],
        "birthDate": "1970-01-02",
        "address": [{"postalCode": " 10115 "}, {"postalCode": "20095"}],
    }
    assert traits_of(patient) == Traits(
        "muellerluedenscheidt", "anna", "1970-01-02", "10115", family_sound="65752682"
    )
    assert traits_of({"birthDate": "1970", "name": [{"text": "A"}]}) == Traits()
    assert traits_of({"name": "not a list", "address": [3]}) == Traits()


@pytest.mark.parametrize(
    ("one", "other", "proposed"),
    [
        (("mueller", "anna", "10115"), ("mueller", "anna", None), True),
        (("schmidt", "anna", None), ("schmitt", "anna", None), True),
        (("mueller", "anna", None), ("anna", "mueller", None), True),  # swapped
        (("mueller", "anna", "10115"), ("schmidt", "anna", "20095"), False),
        (("mueller", "anna", None), ("mueller", None, None), False),
        (("meier", "anna", None), ("mayer", "anna", None), True),  # they sound alike
        (("maik", "anna", None), ("meik", "anna", None), True),
        (("meier", "anna", None), ("maurer", "anna", None), False),
    ],
)
def test_likeness(one: tuple[Any, ...], other: tuple[Any, ...], proposed: bool) -> None:
    a = Traits(one[0], one[1], "1970-01-02", one[2])
    b = Traits(other[0], other[1], "1970-01-02", other[2])
    assert (likeness(a, b).score >= THRESHOLD) is proposed
    assert likeness(a, b) == likeness(b, a)


def _patient(family: str, given: str, born: str, **more: Any) -> dict[str, Any]:
    """A record that names its person and their birth date, the traits matching compares."""
    return resources.patient(None, family, given, born, **more)


async def _pairs(region: Region, query: str = "") -> set[frozenset[str]]:
    """Every proposed pair, following `next`."""
    steward = await region.token("platform", "platform_admin")
    found: list[frozenset[str]] = []
    after: str | None = None
    while True:
        suffix = f"&after={after}" if after else ""
        response = await region.http.get(f"/api/mpi/candidates?{query}{suffix}", headers=steward)
        assert response.status_code == 200, response.text
        page = response.json()
        found += [frozenset({c["patient"], c["other"]}) for c in page["candidates"]]
        after = page["next"]
        if after is None:
            break
    assert len(found) == len(set(found)), "a pair came twice"
    return set(found)


def _pair(*ids: str) -> frozenset[str]:
    return frozenset(f"Patient/{fhir_id}" for fhir_id in ids)


async def test_look_alikes_are_proposed_and_never_linked(region: Region) -> None:
    ids = {
        "a": await region.create("hospital-a", _patient("Müller", "Anna", "1970-01-02")),
        "b": await region.create("hospital-b", _patient("Mueller", "Anna", "1970-01-02")),
        "swapped": await region.create("hospital-c", _patient("Anna", "Müller", "1970-01-02")),
        "sister": await region.create("hospital-b", _patient("Schmidt", "Anna", "1970-01-02")),
        "older": await region.create("hospital-b", _patient("Müller", "Anna", "1969-01-02")),
        "k1": await region.create(
            "hospital-a",
            resources.patient("A123456780", "Weber", "Jan", "1980-05-05"),
        ),
        "k2": await region.create(
            "hospital-b",
            resources.patient("B123456780", "Weber", "Jan", "1980-05-05"),
        ),
    }
    expected = {
        _pair(ids["a"], ids["b"]),
        _pair(ids["a"], ids["swapped"]),
        _pair(ids["b"], ids["swapped"]),
    }
    assert await _pairs(region) == expected
    assert await _pairs(region, "limit=1") == expected  # a page each
    assert await _pairs(region, f"patient={ids['a']}") == {
        p for p in expected if f"Patient/{ids['a']}" in p
    }
    # Proposed, not linked: each is still a person of its own.
    steward = await region.token("platform", "platform_admin")
    person = await region.http.get(f"/api/mpi/persons/{ids['a']}", headers=steward)
    assert person.json()["records"] == [
        {"patient": f"Patient/{ids['a']}", "organisation": "hospital-a"}
    ]
    # Why, without the names.
    response = await region.http.get(f"/api/mpi/candidates?patient={ids['b']}", headers=steward)
    candidate = response.json()["candidates"][0]
    assert set(candidate["traits"]) == {"birth_date", "family", "given", "postal_code"}
    assert "Müller" not in response.text
    assert "mueller" not in response.text


async def test_names_that_sound_alike_are_a_block_of_their_own(region: Region) -> None:
    """Written down over the phone: a family name spelt another way, a given name shortened,
    another address; they sound alike and share the birth date."""
    meier = await region.create(
        "hospital-a",
        _patient("Meier", "Anna", "1970-01-02", address=[{"postalCode": "10115"}]),
    )
    mayer = await region.create(
        "hospital-b",
        _patient("Mayer", "Ana", "1970-01-02", address=[{"postalCode": "20095"}]),
    )
    await region.create("hospital-b", _patient("Maurer", "Ana", "1970-01-02"))
    assert await _pairs(region) == {_pair(meier, mayer)}


async def test_a_stewards_decision_takes_a_pair_off_the_list(region: Region) -> None:
    a = await region.create("hospital-a", _patient("Müller", "Anna", "1970-01-02"))
    b = await region.create("hospital-b", _patient("Mueller", "Anna", "1970-01-02"))
    c = await region.create("hospital-c", _patient("Muller", "Anna", "1970-01-02"))
    steward = await region.token("platform", "platform_admin")
    assert await _pairs(region) == {_pair(a, b), _pair(a, c), _pair(b, c)}

    distinct = await region.http.post(
        "/api/mpi/distinct", json={"patient": c, "other": a}, headers=steward
    )
    assert distinct.status_code == 204
    again = await region.http.post(
        "/api/mpi/distinct", json={"patient": a, "other": c}, headers=steward
    )
    assert again.status_code == 409
    assert await _pairs(region) == {_pair(a, b), _pair(b, c)}

    linked = await region.http.post(
        "/api/mpi/links", json={"patient": a, "other": b}, headers=steward
    )
    assert linked.status_code == 200
    # A and B are one person now; C stays a candidate of B only (distinct from A).
    assert await _pairs(region) == {_pair(b, c)}

    # A record's new name is matched as written.
    renamed = {**_patient("Meier", "Berta", "1970-01-02"), "id": c}
    response = await region.http.put(
        f"/fhir/Patient/{c}", json=renamed, headers=await region.token("hospital-c")
    )
    assert response.status_code == 200, response.text
    assert await _pairs(region) == set()


async def test_only_stewards_see_candidates_and_every_look_is_audited(region: Region) -> None:
    a = await region.create("hospital-a", _patient("Müller", "Anna", "1970-01-02"))
    b = await region.create("hospital-b", _patient("Mueller", "Anna", "1970-01-02"))
    for role in ("physician", "organisation_admin"):
        headers = await region.token("hospital-a", role)
        assert (await region.http.get("/api/mpi/candidates", headers=headers)).status_code == 403
        refused = await region.http.post(
            "/api/mpi/distinct", json={"patient": a, "other": b}, headers=headers
        )
        assert refused.status_code == 403
    assert await _pairs(region) == {_pair(a, b)}
    platform = region.platform
    await platform.audit.seal_all()
    operator = await region.token("platform", "platform_admin")
    response = await region.http.get(
        f"/fhir/AuditEvent?patient={a}&subtype=access.mpi.candidates,access.mpi.distinct",
        headers=operator,
    )
    outcomes = sorted(entry["resource"]["outcome"] for entry in response.json()["entry"])
    # The list shown (it named A), and the two refused "distinct" (the refused lists named
    # no record).
    assert outcomes == ["0", "4", "4"]


@pytest.mark.parametrize(
    "query",
    ["after=nonsense", "after=a,b,c", "limit=0", "limit=501", "patient=bad$id"],
)
async def test_bad_candidate_queries_are_refused(region: Region, query: str) -> None:
    steward = await region.token("platform", "platform_admin")
    response = await region.http.get(f"/api/mpi/candidates?{query}", headers=steward)
    assert response.status_code in (400, 422), response.text
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_candidates_of_an_unknown_record_are_a_404(region: Region) -> None:
    steward = await region.token("platform", "platform_admin")
    response = await region.http.get("/api/mpi/candidates?patient=nobody", headers=steward)
    assert response.status_code == 404
