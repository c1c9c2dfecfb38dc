"""The trash of a space through HTTP: a folder comes back with what it held, a name taken
meanwhile keeps the old one in the trash (409), and the platform's background work deletes
what lay there past the space's retention, with the stored objects of all its versions; a
file keeps its newest `VERSIONS_KEPT` versions."""

from __future__ import annotations

import datetime as dt
from typing import Any

from medicus.collab import repository
from medicus.collab.nodes import VERSIONS_KEPT
from tests.collab.conftest import Colleague, Region
from tests.support.clock import MovableClock


async def _folder(region: Region, who: Colleague, space_id: str, parent: str, name: str) -> str:
    created = await region.http.post(
        f"/collab/spaces/{space_id}/nodes/{parent}/folders",
        json={"name": name},
        headers=who.headers,
    )
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def _children(region: Region, space_id: str, folder: str) -> list[str]:
    listed = await region.http.get(
        f"/collab/spaces/{space_id}/nodes/{folder}/children", headers=region.alice.headers
    )
    assert listed.status_code == 200, listed.text
    return [child["name"] for child in listed.json()["children"]]


async def _trash(region: Region, space_id: str) -> list[dict[str, Any]]:
    listed = await region.http.get(f"/collab/spaces/{space_id}/trash", headers=region.alice.headers)
    assert listed.status_code == 200, listed.text
    trash: list[dict[str, Any]] = listed.json()["trash"]
    return trash


async def _objects(region: Region, node_ids: list[str]) -> list[str]:
    async with region.platform.database.snapshot() as session:
        return await repository.objects_of(session, node_ids)


async def _a_folder_with_files(region: Region, space_id: str) -> tuple[str, list[str]]:
    """Folder "Befunde" with two files and a subfolder with one; its id and its nodes' ids."""
    folder = await _folder(region, region.alice, space_id, "root", "Befunde")
    inner = await _folder(region, region.bob, space_id, folder, "2026")
    ids = [folder, inner]
    for who, parent, name in (
        (region.alice, folder, "Arztbrief.txt"),
        (region.bob, folder, "Labor.csv"),
        (region.bob, inner, "Verlauf.md"),
    ):
        written = await region.upload(who, space_id, name, name.encode(), folder=parent)
        assert written.status_code == 201, written.text
        ids.append(written.json()["id"])
    again = await region.upload(region.alice, space_id, "Arztbrief.txt", b"v2", folder=folder)
    assert again.json()["version"] == 2
    return folder, ids


async def test_a_folder_comes_back_from_the_trash_with_what_it_held(region: Region) -> None:
    space = (await region.space())["id"]
    folder, ids = await _a_folder_with_files(region, space)
    deleted = await region.http.delete(
        f"/collab/spaces/{space}/nodes/{folder}", headers=region.bob.headers
    )
    assert deleted.status_code == 204, deleted.text
    assert await _children(region, space, "root") == []
    assert [node["name"] for node in await _trash(region, space)] == ["Befunde"]
    restored = await region.http.post(
        f"/collab/spaces/{space}/trash/{folder}/restore", headers=region.alice.headers
    )
    assert restored.status_code == 200, restored.text
    assert await _trash(region, space) == []
    assert await _children(region, space, folder) == ["2026", "Arztbrief.txt", "Labor.csv"]
    assert await _children(region, space, ids[1]) == ["Verlauf.md"]
    read = await region.http.get(f"/collab/content/{space}/{ids[2]}", headers=region.bob.headers)
    assert read.content == b"v2"


async def test_the_background_work_empties_the_trash_after_the_retention(
    region: Region, clock: MovableClock
) -> None:
    space = (await region.space())["id"]
    folder, ids = await _a_folder_with_files(region, space)
    objects = await _objects(region, ids)
    assert len(objects) == 4  # the three files, one of them in two versions
    await region.http.delete(f"/collab/spaces/{space}/nodes/{folder}", headers=region.bob.headers)
    work = region.platform.storage_work

    clock.advance(dt.timedelta(days=29))
    await work.round()
    assert [node["id"] for node in await _trash(region, space)] == [folder]
    assert all([await region.platform.storage.describe(found) for found in objects])

    clock.advance(dt.timedelta(days=2))
    await work.round()
    assert await _trash(region, space) == []
    assert await _objects(region, ids) == []
    for found in objects:
        assert await region.platform.storage.describe(found) is None
    for node in ids:
        gone = await region.http.get(
            f"/collab/spaces/{space}/nodes/{node}", headers=region.alice.headers
        )
        assert gone.status_code == 404
    restored = await region.http.post(
        f"/collab/spaces/{space}/trash/{folder}/restore", headers=region.alice.headers
    )
    assert restored.status_code == 404


async def test_the_retention_is_the_spaces(region: Region, clock: MovableClock) -> None:
    short, long = (await region.space("Short"))["id"], (await region.space("Long"))["id"]
    changed = await region.http.patch(
        f"/collab/spaces/{short}", json={"trashDays": 1}, headers=region.alice.headers
    )
    assert changed.status_code == 200, changed.text
    for space in (short, long):
        written = await region.upload(region.alice, space, "Notiz.txt", b"note")
        await region.http.delete(
            f"/collab/spaces/{space}/nodes/{written.json()['id']}", headers=region.alice.headers
        )
    clock.advance(dt.timedelta(days=2))
    await region.platform.storage_work.round()
    assert await _trash(region, short) == []
    assert [node["name"] for node in await _trash(region, long)] == ["Notiz.txt"]


async def test_things_not_yet_due_never_hold_up_those_due(
    region: Region, clock: MovableClock
) -> None:
    """Many older things in a space that keeps its trash long came before a due one of a
    space that keeps it a day, and it was never purged (the due check came after a limit)."""
    short, long = (await region.space("Short"))["id"], (await region.space("Long"))["id"]
    await region.http.patch(
        f"/collab/spaces/{short}", json={"trashDays": 1}, headers=region.alice.headers
    )
    for space, count in ((long, 6), (short, 1)):
        for n in range(count):
            written = await region.upload(region.alice, space, f"Notiz {n}.txt", b"note")
            await region.http.delete(
                f"/collab/spaces/{space}/nodes/{written.json()['id']}",
                headers=region.alice.headers,
            )
            clock.advance(dt.timedelta(minutes=1))
    clock.advance(dt.timedelta(days=2))
    assert await region.platform.collab.tree.purge_expired(limit=1) == 1
    assert await _trash(region, short) == []
    assert len(await _trash(region, long)) == 6


async def test_a_name_taken_meanwhile_keeps_the_old_file_in_the_trash(region: Region) -> None:
    space = (await region.space())["id"]
    old = (await region.upload(region.alice, space, "SOP.txt", b"old")).json()["id"]
    await region.http.delete(f"/collab/spaces/{space}/nodes/{old}", headers=region.alice.headers)
    new = await region.upload(region.bob, space, "sop.TXT", b"new")
    assert new.status_code == 201, new.text
    restored = await region.http.post(
        f"/collab/spaces/{space}/trash/{old}/restore", headers=region.alice.headers
    )
    assert restored.status_code == 409, restored.text
    assert restored.headers["content-type"] == "application/problem+json"
    assert [node["id"] for node in await _trash(region, space)] == [old]
    assert await _children(region, space, "root") == ["sop.TXT"]


async def test_versions_beyond_those_kept_are_deleted_with_their_objects(region: Region) -> None:
    space = (await region.space())["id"]
    file_id = (await region.upload(region.alice, space, "Dienstplan.csv", b"1")).json()["id"]
    await region.upload(region.alice, space, "Dienstplan.csv", b"2")
    first_two = await _objects(region, [file_id])
    for number in range(3, VERSIONS_KEPT + 3):
        written = await region.upload(region.alice, space, "Dienstplan.csv", f"{number}".encode())
        assert written.status_code == 200, written.text
    versions = await region.http.get(
        f"/collab/spaces/{space}/nodes/{file_id}/versions", headers=region.bob.headers
    )
    numbers = [version["number"] for version in versions.json()["versions"]]
    assert numbers == list(range(VERSIONS_KEPT + 2, 2, -1))
    for found in first_two:
        assert await region.platform.storage.describe(found) is None
    kept = await _objects(region, [file_id])
    assert len(kept) == VERSIONS_KEPT
    assert set(kept).isdisjoint(first_two)
    oldest = await region.http.get(
        f"/collab/content/{space}/{file_id}?version=3", headers=region.alice.headers
    )
    assert oldest.content == b"3"
    gone = await region.http.get(
        f"/collab/content/{space}/{file_id}?version=2", headers=region.alice.headers
    )
    assert gone.status_code == 404
