"""Two hospitals' physicians talk through medicus with a standard Matrix client (matrix-nio):
Alice finds Bob listed in the directory, invites him, they exchange text and a large file
(SHA-256 equal), and, in an encrypted room, messages that Synapse keeps only as ciphertext.
Uploads above the limit get M_TOO_LARGE; a suspended user's sessions stop working."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path
from typing import Any

import httpx
import pytest
from nio import (
    AsyncClient,
    JoinResponse,
    RoomCreateResponse,
    RoomMessageText,
    RoomSendResponse,
    UploadResponse,
)

from medicus.core.db import utc_now
from medicus.messenger import repository
from tests.messenger.conftest import Region, run_large
from tests.support.clients import bearer

BIG_FILE_MB = 500


async def _joined_by_invitation(inviter: AsyncClient, invitee: AsyncClient, **room: Any) -> str:
    """A room `inviter` creates with `invitee` invited, once the invitee has joined it."""
    created = await inviter.room_create(invite=[invitee.user_id], **room)
    assert isinstance(created, RoomCreateResponse), created
    await invitee.sync(timeout=5000)
    assert created.room_id in invitee.invited_rooms
    joined = await invitee.join(created.room_id)
    assert isinstance(joined, JoinResponse), joined
    await inviter.sync(timeout=5000)
    return created.room_id


async def _next_text(client: AsyncClient, room_id: str) -> list[str]:
    """The texts that arrive in `room_id` with the client's next sync."""
    texts: list[str] = []
    for _ in range(10):
        answer = await client.sync(timeout=5000)
        for event in (
            answer.rooms.join.get(room_id, None).timeline.events
            if room_id in answer.rooms.join
            else []
        ):
            if isinstance(event, RoomMessageText):
                texts.append(event.body)
        if texts:
            return texts
    return texts


async def test_physicians_of_two_hospitals_exchange_text_and_a_file(region: Region) -> None:
    await region.list_in_directory(region.bob)
    alice, bob = await region.client(region.alice), await region.client(region.bob)
    try:
        await alice.sync(timeout=1000)
        await bob.sync(timeout=1000)
        room_id = await _joined_by_invitation(alice, bob, name="Konsil Herzkatheter")
        sent = await alice.room_send(
            room_id, "m.room.message", {"msgtype": "m.text", "body": "Befund anbei."}
        )
        assert isinstance(sent, RoomSendResponse), sent
        assert await _next_text(bob, room_id) == ["Befund anbei."]

        content = os.urandom(256 * 1024)
        uploaded, _keys = await alice.upload(
            lambda *_: content, "application/dicom", "roentgen.dcm", filesize=len(content)
        )
        assert isinstance(uploaded, UploadResponse), uploaded
        await alice.room_send(
            room_id,
            "m.room.message",
            {"msgtype": "m.file", "body": "roentgen.dcm", "url": uploaded.content_uri},
        )
        downloaded = await _download(region, bob, uploaded.content_uri)
        assert hashlib.sha256(downloaded).digest() == hashlib.sha256(content).digest()
    finally:
        await alice.close()
        await bob.close()


async def _download(region: Region, client: AsyncClient, content_uri: str) -> bytes:
    server, media_id = content_uri.removeprefix("mxc://").split("/", 1)
    answer = await region.http.get(
        f"/_matrix/client/v1/media/download/{server}/{media_id}",
        headers={"Authorization": f"Bearer {client.access_token}"},
    )
    assert answer.status_code == 200, answer.text
    return answer.content


@pytest.mark.skipif(not run_large(), reason="the 500 MB file moves in the SQLite run only")
async def test_a_500_mb_file_arrives_whole(region: Region, tmp_path: Path) -> None:
    source = tmp_path / "ct-serie.zip"
    digest = hashlib.sha256()
    with source.open("wb") as out:
        block = os.urandom(1024 * 1024)
        for n in range(BIG_FILE_MB):
            piece = block[n % 1024 :] + block[: n % 1024]
            digest.update(piece)
            out.write(piece)
    alice = await region.client(region.alice)
    try:
        with source.open("rb") as data:
            uploaded, _keys = await alice.upload(
                data, "application/zip", "ct-serie.zip", filesize=source.stat().st_size
            )
        assert isinstance(uploaded, UploadResponse), uploaded
        server, media_id = uploaded.content_uri.removeprefix("mxc://").split("/", 1)
        received = hashlib.sha256()
        headers = {"Authorization": f"Bearer {alice.access_token}"}
        url = f"{region.base_url}/_matrix/client/v1/media/download/{server}/{media_id}"
        async with (
            httpx.AsyncClient(timeout=300) as http,
            http.stream("GET", url, headers=headers) as answer,
        ):
            assert answer.status_code == 200
            async for piece in answer.aiter_bytes():
                received.update(piece)
        assert received.hexdigest() == digest.hexdigest()
    finally:
        await alice.close()


async def test_an_upload_above_the_limit_gets_m_too_large_before_its_body(
    region: Region,
) -> None:
    """Only the request's head is sent: the proxy answers from the declared length, without
    waiting for (or passing on) a body beyond the limit."""
    alice = await region.client(region.alice)
    await alice.close()
    limit = region.platform.settings.messenger_max_upload_mb * 1024 * 1024
    host, port = region.base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    head = (
        "POST /_matrix/media/v3/upload?filename=huge.bin HTTP/1.1\r\n"
        f"Host: {host}\r\nAuthorization: Bearer {alice.access_token}\r\n"
        f"Content-Type: application/octet-stream\r\nContent-Length: {limit + 1}\r\n\r\n"
    )
    writer.write(head.encode())
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), 10)
    answer = await asyncio.wait_for(reader.read(4096), 10)
    writer.close()
    assert b" 413 " in status_line
    assert b'"errcode":"M_TOO_LARGE"' in answer


async def test_encrypted_messages_reach_the_colleague_and_synapse_keeps_ciphertext(
    region: Region, tmp_path: Path
) -> None:
    await region.list_in_directory(region.bob)
    (tmp_path / "alice").mkdir()
    (tmp_path / "bob").mkdir()
    alice = await region.client(region.alice, tmp_path / "alice")
    bob = await region.client(region.bob, tmp_path / "bob")
    try:
        for client in (alice, bob):
            await client.keys_upload()
            await client.sync(timeout=1000, full_state=True)
        encryption = {
            "type": "m.room.encryption",
            "state_key": "",
            "content": {"algorithm": "m.megolm.v1.aes-sha2"},
        }
        room_id = await _joined_by_invitation(alice, bob, initial_state=[encryption])
        await alice.sync(timeout=1000)
        sent = await alice.room_send(
            room_id,
            "m.room.message",
            {"msgtype": "m.text", "body": "Vertraulich: Verdacht auf Lungenembolie."},
            ignore_unverified_devices=True,
        )
        assert isinstance(sent, RoomSendResponse), sent
        texts = await _next_text(bob, room_id)
        assert texts == ["Vertraulich: Verdacht auf Lungenembolie."]

        stored = await region.http.get(
            f"/_matrix/client/v3/rooms/{room_id}/event/{sent.event_id}",
            headers={"Authorization": f"Bearer {alice.access_token}"},
        )
        assert stored.json()["type"] == "m.room.encrypted"
        assert "Lungenembolie" not in stored.text
    finally:
        await alice.close()
        await bob.close()


async def test_a_suspended_users_sessions_stop_working(region: Region) -> None:
    alice = await region.client(region.alice)
    try:
        whoami = await region.http.get(
            "/_matrix/client/v3/account/whoami",
            headers={"Authorization": f"Bearer {alice.access_token}"},
        )
        assert whoami.status_code == 200
        await _set_active(region, False)
        await asyncio.sleep(2.1)  # the proxy asks medicus anew after two seconds
        answer = await region.http.get(
            "/_matrix/client/v3/account/whoami",
            headers={"Authorization": f"Bearer {alice.access_token}"},
        )
        assert (answer.status_code, answer.json()["errcode"]) == (401, "M_USER_LOCKED")
        refused = await region.http.post("/messenger/login-token", headers=region.alice.headers)
        assert refused.status_code in (401, 403)

        assert region.platform.messenger is not None
        assert await region.platform.messenger.service.align_accounts() == 1
        synapse_url = region.platform.settings.messenger_synapse_url
        async with httpx.AsyncClient(base_url=synapse_url) as synapse:
            direct = await synapse.get(
                "/_matrix/client/v3/account/whoami",
                headers={"Authorization": f"Bearer {alice.access_token}"},
            )
        assert direct.status_code == 401, "Synapse itself ended the session"

        await _set_active(region, True)
        assert await region.platform.messenger.service.align_accounts() == 1
        await asyncio.sleep(1.1)  # tokens of the second of a revocation count as revoked
        token = await bearer(
            region.platform, region.alice.organisation, subject=region.alice.user_id
        )
        region.alice.headers = {"Authorization": token["Authorization"]}
        again = await region.client(region.alice)
        await again.close()
    finally:
        await alice.close()


async def _set_active(region: Region, active: bool) -> None:
    admin = await region.admin_headers(region.alice.organisation)
    answer = await region.http.patch(
        f"/api/admin/organisations/{region.alice.organisation}/members/{region.alice.user_id}",
        json={"active": active},
        headers=admin,
    )
    assert answer.status_code == 204, answer.text


async def test_an_erased_account_cannot_log_in_again(region: Region) -> None:
    bob = await region.client(region.bob)
    await bob.close()
    assert region.platform.messenger is not None
    service = region.platform.messenger.service
    async with region.platform.database.transaction() as session:
        await repository.put_backup_key(session, region.bob.user_id, "1", "sealed", utc_now())
        await repository.put_backup_key(session, region.bob.user_id, "2", "sealed", utc_now())
    assert await service.erase_account(region.bob.user_id, "test")
    async with region.platform.database.snapshot() as session:
        assert await repository.backup_key(session, region.bob.user_id) is None, "key forgotten"
    login = await region.http.post(
        "/_matrix/client/v3/login",
        json={
            "type": "org.matrix.login.jwt",
            "token": (await region.login_token(region.bob))["token"],
        },
    )
    assert login.status_code == 403
    assert login.json()["errcode"] == "M_USER_DEACTIVATED"
    assert not await service.erase_account(region.carol.user_id, "test"), "Carol has no account"
