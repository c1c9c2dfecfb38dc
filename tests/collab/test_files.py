"""Files and folders of a space through HTTP: names that cannot be used, moves that cannot
be made, versions and their restore, copies, preconditions and locks for concurrent edits,
writers racing for one name, quota counted against the space's organisation, patient-linked
files decided by access, and the audit trail of it all."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import unquote

import httpx
import pytest

from tests.collab.conftest import HOSPITAL_A, Region
from tests.support import clients, resources
from tests.support.database import rows


async def _folder(region: Region, space_id: str, name: str, parent: str = "root") -> str:
    answer = await region.http.post(
        f"/collab/spaces/{space_id}/nodes/{parent}/folders",
        json={"name": name},
        headers=region.alice.headers,
    )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def _problem(answer: httpx.Response, status: int) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    problem: dict[str, Any] = answer.json()
    return problem


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("%2E%2E", "stands for a folder"),
        ("a%01b.txt", "control characters"),
        ("x" * 10_000, "more than 255"),
        ("CON.txt", "device name"),
        ("aux", "device name"),
        ("report.", "ends with"),
        ("what%3F.txt", "Windows does not allow"),
        ("rechnung%E2%80%AEfdp.exe", "control characters"),
    ],
)
async def test_names_that_cannot_be_used_are_refused(
    region: Region, name: str, reason: str
) -> None:
    space = await region.space()
    answer = await region.http.put(
        f"/collab/content/{space['id']}/root/{name}", content=b"x", headers=region.alice.headers
    )
    assert reason in _problem(answer, 400)["detail"]
    folder = await region.http.post(
        f"/collab/spaces/{space['id']}/nodes/root/folders",
        json={"name": unquote(name)},
        headers=region.alice.headers,
    )
    assert folder.status_code == 400, folder.text
    listing = await region.http.get(
        f"/collab/spaces/{space['id']}/nodes/root/children", headers=region.alice.headers
    )
    assert listing.json()["children"] == []


async def test_names_differing_in_case_or_normalisation_are_one_name(region: Region) -> None:
    space = await region.space()
    first = await region.upload(region.alice, space["id"], "Befund%C3%BC.txt", b"one")
    same = await region.upload(region.alice, space["id"], "BEFUNDu%CC%88.TXT", b"two")
    assert same.json()["id"] == first.json()["id"]
    assert same.json()["version"] == 2
    folder = await region.http.post(
        f"/collab/spaces/{space['id']}/nodes/root/folders",
        json={"name": "befundü.txt"},
        headers=region.alice.headers,
    )
    assert "already something named" in _problem(folder, 409)["detail"]


async def test_a_folder_cannot_move_into_its_own_subfolder(region: Region) -> None:
    space = await region.space()
    outer = await _folder(region, space["id"], "Protokolle")
    inner = await _folder(region, space["id"], "2026", outer)
    moved = await region.http.patch(
        f"/collab/spaces/{space['id']}/nodes/{outer}",
        json={"parent": inner},
        headers=region.alice.headers,
    )
    assert "into itself" in _problem(moved, 409)["detail"]
    into_itself = await region.http.patch(
        f"/collab/spaces/{space['id']}/nodes/{outer}",
        json={"parent": outer},
        headers=region.alice.headers,
    )
    _problem(into_itself, 409)
    listing = await region.http.get(
        f"/collab/spaces/{space['id']}/nodes/{outer}/children", headers=region.alice.headers
    )
    assert [child["name"] for child in listing.json()["children"]] == ["2026"]


async def test_move_rename_and_replace(region: Region) -> None:
    space = await region.space()
    folder = await _folder(region, space["id"], "Archiv")
    a = (await region.upload(region.alice, space["id"], "a.txt", b"a")).json()
    await region.upload(region.alice, space["id"], "b.txt", b"b", folder=folder)
    taken = await region.http.patch(
        f"/collab/spaces/{space['id']}/nodes/{a['id']}",
        json={"parent": folder, "name": "b.txt"},
        headers=region.bob.headers,
    )
    _problem(taken, 409)
    replaced = await region.http.patch(
        f"/collab/spaces/{space['id']}/nodes/{a['id']}",
        json={"parent": folder, "name": "b.txt", "replace": True},
        headers=region.bob.headers,
    )
    assert replaced.status_code == 200, replaced.text
    listing = await region.http.get(
        f"/collab/spaces/{space['id']}/nodes/{folder}/children", headers=region.bob.headers
    )
    [kept] = listing.json()["children"]
    assert kept["id"] == a["id"]
    trash = await region.http.get(f"/collab/spaces/{space['id']}/trash", headers=region.bob.headers)
    assert [node["name"] for node in trash.json()["trash"]] == ["b.txt"]


async def test_versions_are_kept_and_an_old_one_restored(region: Region) -> None:
    space = await region.space()
    for text in (b"first", b"second", b"third"):
        written = await region.upload(region.bob, space["id"], "SOP.txt", text)
    file_id = written.json()["id"]
    restored = await region.http.post(
        f"/collab/spaces/{space['id']}/nodes/{file_id}/versions/1/restore",
        headers=region.alice.headers,
    )
    assert restored.status_code == 200, restored.text
    assert restored.json()["version"] == 4
    current = await region.http.get(
        f"/collab/content/{space['id']}/{file_id}", headers=region.alice.headers
    )
    assert current.content == b"first"
    versions = await region.http.get(
        f"/collab/spaces/{space['id']}/nodes/{file_id}/versions", headers=region.alice.headers
    )
    numbers = [(v["number"], v["restoredFrom"]) for v in versions.json()["versions"]]
    assert numbers == [(4, 1), (3, None), (2, None), (1, None)]


async def test_a_folder_is_copied_with_what_it_holds(region: Region) -> None:
    space = await region.space()
    folder = await _folder(region, space["id"], "Vorlagen")
    await region.upload(region.alice, space["id"], "Brief.txt", b"Sehr geehrte", folder=folder)
    copied = await region.http.post(
        f"/collab/spaces/{space['id']}/nodes/{folder}/copy",
        json={"name": "Vorlagen 2027"},
        headers=region.bob.headers,
    )
    assert copied.status_code == 201, copied.text
    inside = await region.http.get(
        f"/collab/spaces/{space['id']}/nodes/{copied.json()['id']}/children",
        headers=region.bob.headers,
    )
    [letter] = inside.json()["children"]
    content = await region.http.get(
        f"/collab/content/{space['id']}/{letter['id']}", headers=region.bob.headers
    )
    assert content.content == b"Sehr geehrte"


async def test_a_stale_if_match_is_412_and_loses_nothing(region: Region) -> None:
    space = await region.space()
    first = await region.upload(region.alice, space["id"], "Plan.txt", b"alice's")
    etag = first.headers["etag"]
    await region.upload(region.bob, space["id"], "Plan.txt", b"bob's", **{"If-Match": etag})
    stale = await region.upload(
        region.alice, space["id"], "Plan.txt", b"alice's again", **{"If-Match": etag}
    )
    assert "changed by someone else" in _problem(stale, 412)["detail"]
    content = await region.http.get(
        f"/collab/content/{space['id']}/{first.json()['id']}", headers=region.alice.headers
    )
    assert content.content == b"bob's"


async def test_a_lock_keeps_others_from_writing_moving_and_deleting(region: Region) -> None:
    space = await region.space()
    file_id = (await region.upload(region.alice, space["id"], "Dienstplan.txt", b"v1")).json()["id"]
    base = f"/collab/spaces/{space['id']}/nodes/{file_id}"
    locked = await region.http.post(f"{base}/lock", json={}, headers=region.alice.headers)
    assert locked.status_code == 200, locked.text
    _problem(await region.upload(region.bob, space["id"], "Dienstplan.txt", b"v2"), 423)
    _problem(await region.http.delete(base, headers=region.bob.headers), 423)
    _problem(await region.http.patch(base, json={"name": "x.txt"}, headers=region.bob.headers), 423)
    _problem(await region.http.delete(f"{base}/lock", headers=region.bob.headers), 423)
    mine = await region.upload(region.alice, space["id"], "Dienstplan.txt", b"v2 by alice")
    assert mine.status_code == 200
    unlocked = await region.http.delete(f"{base}/lock", headers=region.alice.headers)
    assert unlocked.status_code == 204
    assert (
        await region.upload(region.bob, space["id"], "Dienstplan.txt", b"v3")
    ).status_code == 200


async def test_writers_racing_for_one_name_lose_nothing(region: Region) -> None:
    space = await region.space()
    bodies = [f"writer {n}".encode() for n in range(8)]
    answers = await asyncio.gather(
        *(region.upload(region.alice, space["id"], "Protokoll.txt", body) for body in bodies)
    )
    assert all(answer.status_code in (200, 201) for answer in answers), [a.text for a in answers]
    assert {answer.json()["id"] for answer in answers} == {answers[0].json()["id"]}
    versions = await region.http.get(
        f"/collab/spaces/{space['id']}/nodes/{answers[0].json()['id']}/versions",
        headers=region.alice.headers,
    )
    assert sorted(v["number"] for v in versions.json()["versions"]) == list(range(1, 9))


async def test_files_count_against_the_space_organisations_quota(region: Region) -> None:
    space = await region.space()
    await region.upload(region.bob, space["id"], "groß.bin", b"\0" * 5000)
    [(used,)] = await rows(
        region.platform,
        "SELECT used_bytes FROM storage_usage WHERE organisation_id = :org",
        org=HOSPITAL_A,
    )
    assert used == 5000
    objects = await rows(
        region.platform, "SELECT organisation_id, owner FROM stored_object WHERE size = 5000"
    )
    assert [organisation for organisation, _ in objects] == [HOSPITAL_A]
    direct = await region.http.get(
        f"/storage/objects/{(await rows(region.platform, 'SELECT id FROM stored_object'))[0][0]}",
        headers=region.alice.headers,
    )
    assert direct.status_code == 404


async def test_a_patient_linked_file_is_seen_only_where_access_allows(region: Region) -> None:
    space = await region.space()
    fhir = {**region.alice.headers, **resources.FHIR_JSON}
    patient_id = await clients.create(region.http, fhir, resources.patient("Erika", "Muster"))
    file_id = (await region.upload(region.alice, space["id"], "Arztbrief.txt", b"Befund")).json()[
        "id"
    ]
    linked = await region.http.put(
        f"/collab/spaces/{space['id']}/nodes/{file_id}/patient",
        json={"patient": patient_id},
        headers=region.alice.headers,
    )
    assert linked.status_code == 200, linked.text
    content = f"/collab/content/{space['id']}/{file_id}"
    assert (await region.http.get(content, headers=region.alice.headers)).content == b"Befund"
    assert (await region.http.get(content, headers=region.bob.headers)).status_code == 404
    listing = await region.http.get(
        f"/collab/spaces/{space['id']}/nodes/root/children", headers=region.bob.headers
    )
    assert listing.json()["children"] == []
    feed = f"/collab/spaces/{space['id']}/activity"
    seen_by_bob = (await region.http.get(feed, headers=region.bob.headers)).text
    assert "Arztbrief" not in seen_by_bob, "a patient file's name is patient data"
    assert "Arztbrief" in (await region.http.get(feed, headers=region.alice.headers)).text
    newest = await region.http.get(feed, params={"limit": 1}, headers=region.bob.headers)
    assert [entry["action"] for entry in newest.json()["activity"]] == ["member.added"], (
        "a page of hidden entries is followed by the next"
    )
    await region.platform.audit.seal_all()
    entries = await rows(
        region.platform,
        "SELECT action, outcome, actor FROM audit_entry WHERE target = :target ORDER BY seq",
        target=f"CollabFile/{file_id}",
    )
    assert ("collab.read", "success", f"user:{region.alice.user_id}") in entries
    assert ("collab.read", "denied", f"user:{region.bob.user_id}") in entries
    patients = await rows(
        region.platform,
        "SELECT COUNT(*) FROM audit_entry WHERE target = :target AND patients LIKE :patient",
        target=f"CollabFile/{file_id}",
        patient=f"%{patient_id}%",
    )
    assert patients[0][0] >= 2


async def test_a_viewer_reads_but_does_not_write(region: Region) -> None:
    space = await region.space()
    changed = await region.http.put(
        f"/collab/spaces/{space['id']}/members",
        json={"email": region.bob.email, "role": "viewer"},
        headers=region.alice.headers,
    )
    assert changed.status_code == 200
    await region.upload(region.alice, space["id"], "a.txt", b"a")
    refused = await region.upload(region.bob, space["id"], "b.txt", b"b")
    assert "does not allow" in _problem(refused, 403)["detail"]
    invite = await region.http.put(
        f"/collab/spaces/{space['id']}/members",
        json={"email": region.carol.email, "role": "manager"},
        headers=region.bob.headers,
    )
    _problem(invite, 403)


async def test_the_last_manager_stays(region: Region) -> None:
    space = await region.space()
    leave = await region.http.delete(
        f"/collab/spaces/{space['id']}/members/{region.alice.user_id}",
        headers=region.alice.headers,
    )
    assert "at least one manager" in _problem(leave, 409)["detail"]


async def test_folders_of_one_name_created_at_once_are_one_folder(region: Region) -> None:
    space = await region.space()
    answers = await asyncio.gather(
        *(
            region.http.post(
                f"/collab/spaces/{space['id']}/nodes/root/folders",
                json={"name": "Leitlinien"},
                headers=(region.alice if n % 2 else region.bob).headers,
            )
            for n in range(6)
        )
    )
    assert sorted(answer.status_code for answer in answers) == [201] + [409] * 5


async def test_one_lock_wins_when_two_are_asked_at_once(region: Region) -> None:
    space = await region.space()
    file_id = (await region.upload(region.alice, space["id"], "OP-Plan.txt", b"v1")).json()["id"]
    answers = await asyncio.gather(
        *(
            region.http.post(
                f"/collab/spaces/{space['id']}/nodes/{file_id}/lock", json={}, headers=who.headers
            )
            for who in (region.alice, region.bob, region.alice, region.bob)
        )
    )
    assert sorted(answer.status_code for answer in answers) == [200, 423, 423, 423]
