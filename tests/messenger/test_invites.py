"""The invite rules at the Messenger-Proxy: free within an organisation; across organisations
only to people listed in the directory (or who allowed the inviter), between organisations on
the federation list; never to someone who blocked the inviter; whichever way the invitation is
written."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from nio import AsyncClient, RoomCreateError, RoomCreateResponse, RoomInviteError

from tests.messenger.conftest import Member, Region


async def _token(region: Region, who: Member) -> dict[str, str]:
    login = await region.http.post(
        "/_matrix/client/v3/login",
        json={"type": "org.matrix.login.jwt", "token": (await region.login_token(who))["token"]},
    )
    assert login.status_code == 200, login.text
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


async def _room(region: Region, headers: dict[str, str], **extra: Any) -> str:
    answer = await region.http.post(
        "/_matrix/client/v3/createRoom", json={"preset": "private_chat", **extra}, headers=headers
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["room_id"])


async def _invite(client: AsyncClient, room_id: str, invitee: Member) -> bool:
    answer = await client.room_invite(room_id, invitee.matrix_id)
    return not isinstance(answer, RoomInviteError)


async def test_colleagues_invite_each_other_and_listed_staff_of_other_hospitals(
    region: Region,
) -> None:
    alice = await region.client(region.alice)
    try:
        room = await alice.room_create(name="Konsil")
        assert isinstance(room, RoomCreateResponse), room
        assert await _invite(alice, room.room_id, region.carol)
        refused = await alice.room_invite(room.room_id, region.bob.matrix_id)
        assert isinstance(refused, RoomInviteError)
        assert refused.status_code == "M_FORBIDDEN"
        assert "directory" in refused.message

        await region.list_in_directory(region.bob)
        assert await _invite(alice, room.room_id, region.bob)
        await region.list_in_directory(region.dave)
        assert not await _invite(alice, room.room_id, region.dave), "C is not federated"
    finally:
        await alice.close()


async def test_create_room_with_an_unlisted_invitee_is_refused(region: Region) -> None:
    alice = await region.client(region.alice)
    try:
        answer = await alice.room_create(invite=[region.carol.matrix_id, region.bob.matrix_id])
        assert isinstance(answer, RoomCreateError)
        assert answer.status_code == "M_FORBIDDEN"
    finally:
        await alice.close()


@pytest.mark.parametrize(
    "write",
    ["invite", "invite-r0", "member-state", "member-state-encoded", "third-party"],
)
async def test_every_way_of_inviting_is_checked(region: Region, write: str) -> None:
    headers = await _token(region, region.alice)
    room = await _room(region, headers)
    bob = region.bob.matrix_id
    encoded_room = quote(room, safe="")
    if write == "invite":
        path, method, body = f"/_matrix/client/v3/rooms/{room}/invite", "POST", {"user_id": bob}
    elif write == "invite-r0":
        path, method, body = (
            f"/_matrix/client/r0/rooms/{encoded_room}/invite",
            "POST",
            {"user_id": bob},
        )
    elif write == "member-state":
        path = f"/_matrix/client/v3/rooms/{room}/state/m.room.member/{bob}"
        method, body = "PUT", {"membership": "invite"}
    elif write == "member-state-encoded":
        path = f"/_matrix/client/v3/rooms/{encoded_room}/state/m.room.member/{quote(bob, safe='')}"
        method, body = "PUT", {"membership": "invite"}
    else:
        path, method = f"/_matrix/client/v3/rooms/{room}/invite", "POST"
        body = {"id_server": "example.org", "medium": "email", "address": "bob@example.org"}
    answer = await region.http.request(method, path, json=body, headers=headers)
    assert answer.status_code == 403, answer.text
    assert answer.json()["errcode"] == "M_FORBIDDEN"
    members = await region.http.get(f"/_matrix/client/v3/rooms/{room}/members", headers=headers)
    assert bob not in {event["state_key"] for event in members.json()["chunk"]}


async def test_a_blocked_colleague_cannot_invite_and_an_allowed_one_can(region: Region) -> None:
    bob_rules = f"/messenger/contacts/{quote(region.alice.matrix_id, safe='')}"
    answer = await region.http.put(bob_rules, json={"rule": "allow"}, headers=region.bob.headers)
    assert answer.status_code == 204, answer.text
    headers = await _token(region, region.alice)
    room = await _room(region, headers)
    invite = f"/_matrix/client/v3/rooms/{room}/invite"
    answer = await region.http.post(invite, json={"user_id": region.bob.matrix_id}, headers=headers)
    assert answer.status_code == 200, "Bob allowed Alice although he is not listed"

    carol_rules = f"/messenger/contacts/{quote(region.alice.matrix_id, safe='')}"
    answer = await region.http.put(
        carol_rules, json={"rule": "block"}, headers=region.carol.headers
    )
    assert answer.status_code == 204
    answer = await region.http.post(
        invite, json={"user_id": region.carol.matrix_id}, headers=headers
    )
    assert answer.status_code == 403, "Carol blocked Alice, a colleague of hers"
    listed = await region.http.get("/messenger/contacts", headers=region.carol.headers)
    assert listed.json() == {"contacts": [{"user_id": region.alice.matrix_id, "rule": "block"}]}


async def test_a_foreign_homeserver_is_not_reachable(region: Region) -> None:
    headers = await _token(region, region.alice)
    room = await _room(region, headers)
    answer = await region.http.post(
        f"/_matrix/client/v3/rooms/{room}/invite",
        json={"user_id": "@someone:elsewhere.example"},
        headers=headers,
    )
    assert answer.status_code == 403
    assert answer.json()["errcode"] == "M_FORBIDDEN"


@pytest.mark.parametrize(
    ("room", "days"),
    [
        ({"is_direct": True}, 180),
        ({"name": "Stationsteam"}, 180),
        ({"creation_content": {"type": "de.medicus.case"}}, 365),
        (
            {"initial_state": [{"type": "m.room.retention", "state_key": "", "content": {}}]},
            180,
        ),
    ],
)
async def test_each_new_room_gets_the_retention_of_its_kind(
    region: Region, room: dict[str, Any], days: int
) -> None:
    headers = await _token(region, region.alice)
    room_id = await _room(region, headers, **room)
    state = f"/_matrix/client/v3/rooms/{room_id}/state/m.room.retention/"
    policy = await region.http.get(state, headers=headers)
    assert policy.json() == {"max_lifetime": days * 86_400_000}
    changed = await region.http.put(state, json={"max_lifetime": 1}, headers=headers)
    assert changed.status_code == 403
    assert changed.json()["errcode"] == "M_FORBIDDEN"


@pytest.mark.parametrize(
    "room",
    [
        {"preset": "public_chat"},
        {"visibility": "public"},
        {
            "initial_state": [
                {"type": "m.room.join_rules", "state_key": "", "content": {"join_rule": "public"}}
            ]
        },
    ],
)
async def test_no_room_is_opened_to_everyone(region: Region, room: dict[str, Any]) -> None:
    """A public room would let anyone of any hospital join without an invitation."""
    headers = await _token(region, region.alice)
    answer = await region.http.post("/_matrix/client/v3/createRoom", json=room, headers=headers)
    assert answer.status_code == 403
    assert answer.json()["errcode"] == "M_FORBIDDEN"


async def test_a_room_cannot_be_made_public_later(region: Region) -> None:
    headers = await _token(region, region.alice)
    room_id = await _room(region, headers)
    rules = f"/_matrix/client/v3/rooms/{room_id}/state/m.room.join_rules/"
    answer = await region.http.put(rules, json={"join_rule": "public"}, headers=headers)
    assert answer.status_code == 403
    answer = await region.http.put(rules, json={"join_rule": "knock"}, headers=headers)
    assert answer.status_code == 200, answer.text
