"""The directory (TIM VZD-FHIR-Directory inside medicus): FHIR resources of the members and
services that federated organisations list, searchable by staff at /directory/fhir, gone when
unlisted; the addresses found there are the ones the invite rules let through."""

from __future__ import annotations

from typing import Any

from tests.messenger.conftest import HOSPITAL_B, Member, Region
from tests.support.clients import bearer


async def _search(region: Region, who: Member, query: str) -> dict[str, Any]:
    answer = await region.http.get(f"/directory/fhir/{query}", headers=who.headers)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def _of_type(bundle: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [
        entry["resource"]
        for entry in bundle.get("entry", [])
        if entry["resource"]["resourceType"] == kind
    ]


async def _invite_status(region: Region, inviter: Member, matrix_id: str) -> int:
    login = await region.http.post(
        "/_matrix/client/v3/login",
        json={
            "type": "org.matrix.login.jwt",
            "token": (await region.login_token(inviter))["token"],
        },
    )
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    room = await region.http.post("/_matrix/client/v3/createRoom", json={}, headers=headers)
    answer = await region.http.post(
        f"/_matrix/client/v3/rooms/{room.json()['room_id']}/invite",
        json={"user_id": matrix_id},
        headers=headers,
    )
    return answer.status_code


async def test_a_listed_colleague_is_found_with_a_tim_address_and_can_be_invited(
    region: Region,
) -> None:
    found = await _search(region, region.alice, f"PractitionerRole?organization.name={HOSPITAL_B}")
    assert _of_type(found, "PractitionerRole") == []

    await region.list_in_directory(region.bob)
    found = await _search(
        region,
        region.alice,
        f"PractitionerRole?organization.name={HOSPITAL_B}"
        "&_include=PractitionerRole:endpoint&_include=PractitionerRole:practitioner",
    )
    (role,) = _of_type(found, "PractitionerRole")
    assert role["code"][0]["coding"][0]["code"] == "physician"
    (person,) = _of_type(found, "Practitioner")
    assert person["name"][0]["text"] == "bob"
    (endpoint,) = _of_type(found, "Endpoint")
    assert endpoint["connectionType"]["code"] == "tim"
    assert endpoint["address"] == f"matrix:u/{region.bob.matrix_id}"
    assert await _invite_status(region, region.alice, endpoint["address"][9:]) == 200
    assert region.platform.messenger is not None
    directory = region.platform.messenger.service.directory
    assert await directory.sync_organisation(HOSPITAL_B) == 0, "a rebuild writes only changes"

    answer = await region.http.put(
        f"/messenger/organisations/{HOSPITAL_B}/listing/{region.bob.user_id}",
        json={"listed": False},
        headers=await region.admin_headers(HOSPITAL_B),
    )
    assert answer.status_code == 204
    found = await _search(region, region.alice, "Endpoint?connection-type=tim")
    assert _of_type(found, "Endpoint") == []
    assert await _invite_status(region, region.alice, region.bob.matrix_id) == 403


async def test_a_service_on_call_is_found_by_name_and_reached_at_its_account(
    region: Region,
) -> None:
    answer = await region.http.post(
        f"/messenger/organisations/{HOSPITAL_B}/services",
        json={
            "name": "Kardiologie Rufdienst",
            "specialty": "Kardiologie",
            "user_id": region.bob.user_id,
        },
        headers=await region.admin_headers(HOSPITAL_B),
    )
    assert answer.status_code == 201, answer.text
    found = await _search(
        region,
        region.alice,
        "HealthcareService?name:contains=kardio&_include=HealthcareService:endpoint"
        "&_include=HealthcareService:organization",
    )
    (service,) = _of_type(found, "HealthcareService")
    assert service["name"] == "Kardiologie Rufdienst"
    (organisation,) = _of_type(found, "Organization")
    assert organisation["name"] == HOSPITAL_B
    (endpoint,) = _of_type(found, "Endpoint")
    assert endpoint["address"] == f"matrix:u/{region.bob.matrix_id}"
    assert await _invite_status(region, region.alice, region.bob.matrix_id) == 200


async def test_an_organisation_off_the_federation_list_is_not_in_the_directory(
    region: Region,
) -> None:
    await region.list_in_directory(region.dave)
    found = await _search(region, region.alice, "PractitionerRole")
    assert _of_type(found, "PractitionerRole") == []


async def test_the_directory_is_for_staff_and_holds_only_its_five_types(region: Region) -> None:
    await region.list_in_directory(region.bob)
    patient = await bearer(region.platform, HOSPITAL_B, role="patient", scope="patient/*.rs")
    answer = await region.http.get(
        "/directory/fhir/Endpoint", headers={"Authorization": patient["Authorization"]}
    )
    assert answer.status_code == 403
    answer = await region.http.get("/directory/fhir/Patient", headers=region.alice.headers)
    assert answer.status_code == 404
    answer = await region.http.get("/directory/fhir/Endpoint")
    assert answer.status_code == 401
    own = await region.http.get("/fhir/Endpoint", headers=region.alice.headers)
    assert own.status_code == 200
    assert own.json().get("entry", []) == [], "the directory is not the hospital's FHIR data"


async def test_only_the_organisations_admin_lists_its_members(region: Region) -> None:
    answer = await region.http.put(
        f"/messenger/organisations/{HOSPITAL_B}/listing/{region.bob.user_id}",
        json={"listed": True},
        headers=await region.admin_headers(region.alice.organisation),
    )
    assert answer.status_code == 403
    answer = await region.http.put(
        f"/messenger/organisations/{HOSPITAL_B}/listing/{region.alice.user_id}",
        json={"listed": True},
        headers=await region.admin_headers(HOSPITAL_B),
    )
    assert answer.status_code == 404, "Alice is not staff of Klinikum B"


async def test_whom_an_organisation_took_off_the_directory_stays_hidden(region: Region) -> None:
    await region.list_in_directory(region.bob)
    found = await _search(region, region.alice, "Endpoint?connection-type=tim")
    (endpoint,) = _of_type(found, "Endpoint")
    answer = await region.http.put(
        f"/messenger/organisations/{HOSPITAL_B}/listing/{region.bob.user_id}",
        json={"listed": False},
        headers=await region.admin_headers(HOSPITAL_B),
    )
    assert answer.status_code == 204
    history = await region.http.get(
        "/directory/fhir/Endpoint/_history", headers=region.alice.headers
    )
    assert history.status_code == 404
    assert region.bob.matrix_id not in history.text
    removed = await region.http.get(
        f"/directory/fhir/Endpoint/{endpoint['id']}", headers=region.alice.headers
    )
    assert removed.status_code == 404
