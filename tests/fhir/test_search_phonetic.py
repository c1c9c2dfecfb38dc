"""Patient `phonetic`: names found by how they sound in German (Kölner Phonetik,
search/phonetics.py), from rows of their own (one per distinct code of a Patient's name
words), through the same access filter as every search; bad values are a 400."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from typing import Any

import pytest
from sqlalchemy import text

from medicus import migrations
from medicus.core.db import Database
from medicus.fhir.models import RESOURCES
from medicus.fhir.search.extract import extract
from medicus.fhir.search.parameters import parameters_of
from medicus.fhir.search.phonetics import MAX_CODES, codes, name_codes, search_codes
from tests.access.conftest import Region
from tests.conftest import DatabaseFactory
from tests.fhir.conftest import Hub
from tests.fhir.test_search import assert_refused, create, search_ids
from tests.support import resources

NAMES = {
    "meier": ("Meier", "Hans"),
    "mayer": ("Mayer", "Erika"),
    "meyer": ("Meyer", "Petra"),
    "maier": ("Maier", "Jürgen"),
    "schmidt": ("Schmidt", "Anna"),
    "mueller": ("Müller", "Anna"),
    "muller": ("Mueller", "Karl"),
    "moeller": ("Möller", "Karl"),
    "double": ("Müller-Lüdenscheidt", "Hans-Peter"),
    "weiss": ("Weiß", "Ida"),
    "obrien": ("O'Brien", "Seán"),
}


@pytest.fixture
async def people(hub: Hub) -> dict[str, str]:
    ids = {}
    for key, (family, given) in NAMES.items():
        ids[key] = await create(hub, resources.patient(None, family, given, "1970-01-01"))
    ids["nameless"] = await create(hub, resources.patient(None, None, None, "1970-01-01"))
    ids["foreign"] = await create(
        hub, resources.patient(None, "Maier", "Hans", "1970-01-01"), organisation="hospital-b"
    )
    return ids


async def _found(hub: Hub, **params: str) -> set[str]:
    return set(await search_ids(hub, "/fhir/Patient", _count="100", **params))


def test_what_the_koelner_phonetik_makes_of_names() -> None:
    """The codes the tests below rely on, as cologne_phonetics computes them (after the
    MPI's folding of umlauts and ß)."""
    assert {name: codes(name)[0] for name in ("Meier", "Mayer", "Meyer", "Maier", "Mayr")} == {
        name: "67" for name in ("Meier", "Mayer", "Meyer", "Maier", "Mayr")
    }
    assert codes("Schmitt") == codes("Schmidt") == codes("Schmid") == ["862"]
    assert codes("Müller") == codes("Mueller") == codes("Muller") == codes("Möller") == ["657"]
    assert codes("Miller") == ["657"], "the Kölner Phonetik is coarse: vowels do not count"
    assert codes("Weiß") == codes("Weiss") == ["38"]
    assert codes("Müller-Lüdenscheidt") == ["657", "52682"]
    assert codes("O'Brien") == ["0176"], "one word"
    assert codes("Łukasz") == codes("Lukasz") == ["548"], "ł as l, as the MPI folds it"
    assert codes("Mu\u0308ller") == ["657"], "a decomposed umlaut is one word too"
    for nothing in ("H.", "4711", "张伟"):
        assert codes(nothing) == [], nothing
    assert codes("Mai") == ["6"], "a word's start: another code"
    assert codes("Schm") == ["86"]


def test_one_row_per_distinct_code_and_only_for_patients() -> None:
    patient = {
        "resourceType": "Patient",
        "name": [
            {"family": "Meier", "given": ["Hans", "Hanz"]},
            {"family": "Mayer-Schmidt", "given": ["Hans"], "prefix": ["Dr."]},
        ],
    }
    rows = [row for row in extract("Patient", patient).strings if row[0] == "phonetic"]
    assert rows == [
        ("phonetic", "67", "67"),
        ("phonetic", "068", "068"),
        ("phonetic", "862", "862"),
    ]
    practitioner = {"resourceType": "Practitioner", "name": [{"family": "Meier"}]}
    assert "phonetic" not in {row[0] for row in extract("Practitioner", practitioner).strings}
    assert parameters_of("Practitioner")["phonetic"].members == ("name",)
    letters = "bdfglmrs"  # eight different codes; a vowel between keeps them apart
    many = [{"family": "a".join(letters[int(d)] for d in f"{n:03o}")} for n in range(99)]
    assert len(set(name_codes(many))) == len(name_codes(many)) == MAX_CODES


def test_a_name_of_a_megabyte_is_indexed_by_its_start_quickly() -> None:
    started = time.perf_counter()
    found = name_codes([{"family": "Müller " + "xy " * 500_000, "given": ["a" * 1_000_000]}])
    assert time.perf_counter() - started < 0.5
    assert found[:2] == ["657", "48"]
    assert all(len(code) <= 255 for code in found)


async def test_names_that_sound_alike_are_found(hub: Hub, people: dict[str, str]) -> None:
    maiers = {people[key] for key in ("meier", "mayer", "meyer", "maier")}
    for spelt in ("Maier", "Meier", "Mayer", "Meyer", "mayr", "MEIER"):
        assert await _found(hub, phonetic=spelt) == maiers, spelt
    assert await _found(hub, phonetic="Schmitt") == {people["schmidt"]}
    muellers = {people[key] for key in ("mueller", "muller", "moeller", "double")}
    for spelt in ("Müller", "Mueller", "Muller", "Möller", "MÜLLER"):
        assert await _found(hub, phonetic=spelt) == muellers, spelt
    assert await _found(hub, phonetic="Luedenscheidt") == {people["double"]}
    assert await _found(hub, phonetic="Weiss") == {people["weiss"]}
    assert await _found(hub, phonetic="Obrian") == {people["obrien"]}
    # Given names too; each word of a hyphenated one.
    assert await _found(hub, phonetic="Hanz") == {people["meier"], people["double"]}
    peters = {people["meyer"], people["double"]}
    assert await _found(hub, phonetic="Peter") == peters, "Petra and Hans-Peter"
    assert await _found(hub, phonetic="Petr") == peters, "vowels do not count after the first"
    # Every word of a value: in any name part, in any order.
    assert await _found(hub, phonetic="Hans Mayer") == {people["meier"]}
    assert await _found(hub, phonetic="Mayer\\, Hans") == {people["meier"]}, "an escaped comma"
    assert await _found(hub, phonetic="Hans-Peter Möller") == {people["double"]}
    assert await _found(hub, phonetic="H. Maier") == maiers, "a word without a code counts not"
    # Comma: either; repeated: both.
    either = await _found(hub, phonetic="Schmitt,Weiss")
    assert either == {people["schmidt"], people["weiss"]}
    assert await _found(hub, phonetic="Schmitt,Hans Maier") == {people["schmidt"], people["meier"]}
    both = await search_ids(hub, "/fhir/Patient", phonetic=["Müller", "Karl"])  # type: ignore[arg-type]
    assert set(both) == {people["muller"], people["moeller"]}
    # Equal codes only: a word's start is no prefix match.
    assert await _found(hub, phonetic="Mai") == set()
    assert await _found(hub, phonetic="Lüdensch") == set()
    assert await _found(hub, phonetic="Schm") == {people["obrien"]}, "Seán: 86, as Schm"
    # With other parameters, and missing.
    assert await _found(hub, phonetic="Maier", given="Erika") == {people["mayer"]}
    assert await _found(hub, phonetic="Maier", birthdate="1970-01-01") == maiers
    assert await _found(hub, **{"phonetic:missing": "true"}) == {people["nameless"]}


async def test_pages_of_one_code_hold_each_patient_once(hub: Hub, people: dict[str, str]) -> None:
    """A search of one code is read in the order of its rows (ordering.py); pages follow on."""
    headers = await hub.token()
    seen: list[str] = []
    response = await hub.http.get(
        "/fhir/Patient", params={"phonetic": "Maier", "_count": "3"}, headers=headers
    )
    while True:
        bundle = response.json()
        seen += [entry["resource"]["id"] for entry in bundle.get("entry", [])]
        following = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
        if not following:
            break
        response = await hub.http.get(following[0], headers=headers)
    assert seen == [people[key] for key in ("meier", "mayer", "meyer", "maier")]
    assert await search_ids(hub, "/fhir/Patient", phonetic="Maier", _sort="-birthdate")


async def test_an_update_replaces_the_sounds(hub: Hub, people: dict[str, str]) -> None:
    headers = await hub.token()
    renamed = resources.patient(None, "Schmitt", "Hans", "1970-01-01", id=people["meier"])
    answer = await hub.http.put(f"/fhir/Patient/{people['meier']}", json=renamed, headers=headers)
    assert answer.status_code == 200, answer.text
    assert people["meier"] not in await _found(hub, phonetic="Maier")
    assert await _found(hub, phonetic="Schmidt") == {people["schmidt"], people["meier"]}


async def test_chains_search_by_sound(hub: Hub, people: dict[str, str]) -> None:
    lab = await create(hub, resources.observation(people["meier"], "718-7", "2026-11-01T10:00:00Z"))
    found = await search_ids(hub, "/fhir/Observation", **{"subject:Patient.phonetic": "Mayer"})
    assert found == [lab]


@pytest.mark.parametrize(
    "query",
    [
        "phonetic=",
        "phonetic=Maier,",
        "phonetic=" + "Maier" * 2_000,
        "phonetic=" + "%20".join(["Maier"] * 9),
        "phonetic=4711",
        "phonetic=H.",
        "phonetic=%E5%BC%A0%E4%BC%9F",
        "phonetic:exact=Maier",
        "phonetic:contains=aier",
        "phonetic:not=Maier",
    ],
)
async def test_values_that_are_no_name_are_refused(hub: Hub, query: str) -> None:
    name = query.partition("=")[0]
    await assert_refused(hub, f"/fhir/Patient?{query}", name)


async def test_another_hospitals_patients_are_found_only_once_shared(
    hub: Hub, people: dict[str, str]
) -> None:
    """Hospital B's Maier is not found by hospital A (nor counted); B finds its own. Once
    the person's consent and a stay at hospital A share B's record with A, A finds it too."""
    response = await hub.http.get(
        "/fhir/Patient",
        params={"phonetic": "Meier", "_total": "accurate"},
        headers=await hub.token(),
    )
    bundle = response.json()
    assert bundle["total"] == 4
    assert people["foreign"] not in {entry["resource"]["id"] for entry in bundle["entry"]}
    answer = await hub.http.get(
        "/fhir/Patient", params={"phonetic": "Meier"}, headers=await hub.token("hospital-b")
    )
    assert [entry["resource"]["id"] for entry in answer.json()["entry"]] == [people["foreign"]]

    async def organisation(organisation_id: str, kind: str) -> None:
        raise AssertionError("not needed")

    region = Region(hub.platform, hub.http, hub.token, organisation)
    kvnr = "A123456780"
    own = await region.create("hospital-a", resources.patient(kvnr, "Meyer", "Hans", "1970-01-01"))
    shared = await region.create(
        "hospital-b", resources.patient(kvnr, "Mayer", "Hans", "1970-01-01")
    )
    assert shared not in await _found(hub, phonetic="Hans Maier")
    await region.stay("hospital-a", own)
    await region.consent_during_stay("hospital-b", resources.consent(shared))
    assert await _found(hub, phonetic="Hans Maier") == {people["meier"], own, shared}


def test_search_values_limits() -> None:
    assert search_codes("Hans Maier") == ["068", "67"]
    assert search_codes("Maier Meier Mayer") == ["67"]
    for bad, reason in (
        ("x" * 256, "at most 255 characters"),
        ("a b c d e f g h i", "at most 8 words"),
        ("", "letters that sound"),
        ("123", "letters that sound"),
        ("h", "letters that sound"),
    ):
        with pytest.raises(ValueError, match=reason):
            search_codes(bad)


async def test_patients_stored_before_get_their_sounds(database_factory: DatabaseFactory) -> None:
    """Migration 0029 has the background update `fhir.patient_search_index` restate the
    index of every current Patient (which `medicus migrate` runs inline on a small database);
    other types are left alone."""
    url = await asyncio.to_thread(database_factory.new_url, False)
    await asyncio.to_thread(migrations.upgrade, url, "0028")
    await migrations.run_updates(url, None)  # those of earlier revisions, on no data
    database = Database(url)
    at = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    stored: list[tuple[int, str, dict[str, Any], bool]] = [
        (1, "Patient", {"name": [{"family": "Meier", "given": ["Hans"]}]}, False),
        (2, "Patient", {"name": [{"family": "Schmidt"}]}, True),
        (3, "Practitioner", {"name": [{"family": "Meier"}]}, False),
    ]
    try:
        async with database.transaction() as session:
            for rid, kind, content, deleted in stored:
                await session.execute(
                    RESOURCES.insert().values(
                        rid=rid,
                        resource_type=kind,
                        fhir_id=f"r{rid}",
                        version=1,
                        last_updated=at,
                        deleted=deleted,
                        organisation_id="hospital-a",
                        content=None if deleted else json.dumps({"resourceType": kind, **content}),
                        patient_id=f"r{rid}" if kind == "Patient" else None,
                    )
                )
        await asyncio.to_thread(migrations.upgrade, url)
        async with database.snapshot() as session:
            found = await session.execute(
                text(
                    "SELECT rid, param, value FROM fhir_string"
                    " WHERE param IN ('phonetic', 'family') ORDER BY rid, param, value"
                )
            )
            rows = [tuple(row) for row in found]
            left = await session.scalar(text("SELECT count(*) FROM background_update"))
        assert rows == [(1, "family", "meier"), (1, "phonetic", "068"), (1, "phonetic", "67")]
        assert left == 0
    finally:
        await database.dispose()
