"""The collaboration API through HTTP: a space of hospital A with a member of hospital B,
files with versions, moves, the trash, locks and preconditions; hospital C sees nothing."""

from __future__ import annotations

import hashlib

from tests.collab.conftest import Region
from tests.support.clients import bearer
from tests.support.database import rows


async def test_a_member_of_another_hospital_writes_and_reads_files(region: Region) -> None:
    space = await region.space()
    written = await region.upload(region.bob, space["id"], "SOP Lyse.txt", b"version one")
    assert written.status_code == 201, written.text
    file_id = written.json()["id"]
    again = await region.upload(region.alice, space["id"], "sop lyse.txt", b"version two!")
    assert again.status_code == 200, again.text
    assert again.json()["id"] == file_id
    assert again.json()["version"] == 2
    read = await region.http.get(
        f"/collab/content/{space['id']}/{file_id}", headers=region.bob.headers
    )
    assert read.status_code == 200
    assert read.content == b"version two!"
    assert read.headers["etag"] == f'"{hashlib.sha256(b"version two!").hexdigest()}"'
    old = await region.http.get(
        f"/collab/content/{space['id']}/{file_id}?version=1", headers=region.bob.headers
    )
    assert old.content == b"version one"


async def test_another_hospital_without_membership_gets_404_everywhere(region: Region) -> None:
    space = await region.space()
    written = await region.upload(region.alice, space["id"], "a.txt", b"secret")
    file_id = written.json()["id"]
    base = f"/collab/spaces/{space['id']}"
    for path in (
        base,
        f"{base}/members",
        f"{base}/activity",
        f"{base}/nodes/root/children",
        f"{base}/nodes/{file_id}",
        f"{base}/trash",
        f"/collab/content/{space['id']}/{file_id}",
    ):
        answer = await region.http.get(path, headers=region.carol.headers)
        assert answer.status_code == 404, (path, answer.text)
    upload = await region.upload(region.carol, space["id"], "b.txt", b"x")
    assert upload.status_code == 404
    listed = await region.http.get("/collab/spaces", headers=region.carol.headers)
    assert listed.json() == {"spaces": []}


async def test_a_manager_renames_and_deletes_a_space_with_its_files(region: Region) -> None:
    space = await region.space()
    written = await region.upload(region.bob, space["id"], "a.txt", b"bytes")
    renamed = await region.http.patch(
        f"/collab/spaces/{space['id']}",
        json={"name": "Tumorzentrum", "trashDays": 7},
        headers=region.alice.headers,
    )
    assert (renamed.json()["name"], renamed.json()["trashDays"]) == ("Tumorzentrum", 7)
    refused = await region.http.delete(f"/collab/spaces/{space['id']}", headers=region.bob.headers)
    assert refused.status_code == 403
    [(object_id,)] = await rows(region.platform, "SELECT id FROM stored_object")
    deleted = await region.http.delete(
        f"/collab/spaces/{space['id']}", headers=region.alice.headers
    )
    assert deleted.status_code == 204
    gone = await region.http.get(f"/collab/spaces/{space['id']}", headers=region.alice.headers)
    assert gone.status_code == 404
    assert written.status_code == 201
    assert await region.platform.storage.describe(object_id) is None
    listed = await region.http.get("/collab/spaces", headers=region.bob.headers)
    assert listed.json() == {"spaces": []}


async def test_an_app_without_document_scopes_does_not_reach_the_users_spaces(
    region: Region,
) -> None:
    """A third-party app the user granted laboratory values alone acts with those scopes:
    it neither lists, reads nor writes the user's spaces."""
    space = await region.space()
    written = await region.upload(region.alice, space["id"], "SOP.txt", b"sop")
    issued = await bearer(
        region.platform,
        region.alice.organisation,
        scope="user/Observation.rs",
        subject=region.alice.user_id,
    )
    app = {"Authorization": issued["Authorization"]}
    listed = await region.http.get("/collab/spaces", headers=app)
    assert listed.json() == {"spaces": []}
    read = await region.http.get(
        f"/collab/content/{space['id']}/{written.json()['id']}", headers=app
    )
    assert read.status_code == 403
    assert "user/DocumentReference" in read.json()["detail"]
    found = await region.http.get("/collab/search?q=SOP", headers=app)
    assert found.json() == {"results": []}
    created = await region.http.post("/collab/spaces", json={"name": "x"}, headers=app)
    assert created.status_code == 403
