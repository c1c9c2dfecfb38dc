"""Search across one's spaces through HTTP (`GET /collab/search`): by words of a name or of a
document's text (PDF, Word, Excel), by type, creator and time of change; nothing of spaces
one is not a member of, and no file of a patient whom `access` keeps from the caller."""

from __future__ import annotations

import datetime as dt
from typing import Any

from tests.collab.conftest import Colleague, Region
from tests.collab.documents import pdf, word, workbook
from tests.support.clients import create
from tests.support.clock import MovableClock
from tests.support.resources import FHIR_JSON, patient

PNG = b"\x89PNG\r\n\x1a\n" + bytes(64)


async def _found(region: Region, who: Colleague, **query: str) -> list[str]:
    answer = await region.http.get("/collab/search", params=query, headers=who.headers)
    assert answer.status_code == 200, answer.text
    results: list[dict[str, Any]] = answer.json()["results"]
    return sorted(result["name"] for result in results)


async def _uploaded(region: Region, who: Colleague, space_id: str, name: str, data: bytes) -> str:
    written = await region.upload(who, space_id, name, data)
    assert written.status_code == 201, written.text
    return str(written.json()["id"])


async def test_files_are_found_by_the_words_of_their_names(region: Region) -> None:
    space = (await region.space())["id"]
    await _uploaded(region, region.alice, space, "SOP Thrombolyse Schlaganfall.txt", b"x")
    await _uploaded(region, region.bob, space, "Dienstplan Größe März.csv", b"x")
    folder = await region.http.post(
        f"/collab/spaces/{space}/nodes/root/folders",
        json={"name": "Thrombolyse Fälle"},
        headers=region.alice.headers,
    )
    assert folder.status_code == 201
    assert await _found(region, region.bob, q="thrombolyse") == [
        "SOP Thrombolyse Schlaganfall.txt",
        "Thrombolyse Fälle",
    ]
    assert await _found(region, region.bob, q="SCHLAGANFALL sop") == [
        "SOP Thrombolyse Schlaganfall.txt"
    ]
    assert await _found(region, region.alice, q="GRÖSSE märz") == ["Dienstplan Größe März.csv"]
    assert await _found(region, region.alice, q="thrombolyse dienstplan") == []
    assert await _found(region, region.alice, q="100%_") == []


async def test_search_by_type_creator_and_time_of_change(
    region: Region, clock: MovableClock
) -> None:
    space = (await region.space())["id"]
    await _uploaded(region, region.alice, space, "Befund.txt", b"x")
    await _uploaded(region, region.bob, space, "Aufnahme.png", PNG)
    clock.advance(dt.timedelta(days=2))
    since = (clock() - dt.timedelta(days=1)).isoformat()
    await _uploaded(region, region.bob, space, "Kontrolle.png", PNG)
    assert await _found(region, region.alice, type="image/") == ["Aufnahme.png", "Kontrolle.png"]
    assert await _found(region, region.alice, owner=region.alice.user_id) == ["Befund.txt"]
    assert await _found(region, region.alice, owner=region.bob.user_id, since=since) == [
        "Kontrolle.png"
    ]
    assert await _found(region, region.alice, since=since, type="text/") == []


async def test_documents_are_found_by_a_word_of_their_text(region: Region) -> None:
    space = (await region.space())["id"]
    await _uploaded(
        region,
        region.alice,
        space,
        "scan-0815.pdf",
        pdf("Entlassbrief", "Diagnose: Hirninfarkt rechts, Lyse mit ALTEPLASE"),
    )
    await _uploaded(
        region, region.bob, space, "Brief.docx", word("Sehr geehrte Kollegin,", "Rivaroxaban")
    )
    await _uploaded(
        region,
        region.bob,
        space,
        "Werte.xlsx",
        workbook({"Labor": [["Troponin", 0.04], ["Alteplase", "50 mg"]]}),
    )
    assert await _found(region, region.bob, q="alteplase") == ["Werte.xlsx", "scan-0815.pdf"]
    assert await _found(region, region.bob, q="Hirninfarkt lyse") == ["scan-0815.pdf"]
    assert await _found(region, region.alice, q="rivaroxaban") == ["Brief.docx"]
    assert await _found(region, region.alice, q="troponin 0.04") == ["Werte.xlsx"]
    assert await _found(region, region.carol, q="alteplase") == []
    assert await _found(region, region.carol, type="application/") == []


async def test_a_patients_file_is_found_only_by_whom_access_lets_see_it(region: Region) -> None:
    space = (await region.space())["id"]
    file_id = await _uploaded(
        region, region.alice, space, "Verlauf.pdf", pdf("Verlauf nach Thrombektomie")
    )
    assert await _found(region, region.bob, q="thrombektomie") == ["Verlauf.pdf"]
    patient_id = await create(
        region.http,
        {**region.alice.headers, **FHIR_JSON},
        patient("A123456780", "Kowalski", "Jan", "1961-04-02"),
    )
    linked = await region.http.put(
        f"/collab/spaces/{space}/nodes/{file_id}/patient",
        json={"patient": patient_id},
        headers=region.alice.headers,
    )
    assert linked.status_code == 200, linked.text
    # Bob of hospital B is a member of the space, but the patient did not consent to
    # sharing with other hospitals: he finds the file neither by its text nor its name.
    assert await _found(region, region.bob, q="thrombektomie") == []
    assert await _found(region, region.bob, q="verlauf") == []
    assert await _found(region, region.alice, q="thrombektomie") == ["Verlauf.pdf"]
