"""Patients' accounts in identity: invited for a Patient record (not through the members API,
which gives staff roles only), kept a patient's (no role change makes one staff), a patient's
token names their record as `fhirUser` and grants no FHIR scopes, and an existing staff
account of the organisation is not turned into a patient's."""

from __future__ import annotations

import re
import secrets

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from medicus.core.errors import ApiError
from medicus.iam.tokens import Principal, TokenGrant
from tests.iam.browser import Browser
from tests.iam.conftest import PASSWORD, Mailbox, World
from tests.iam.test_oidc_flow import _code, _exchange


async def _token(world: World, role: str, user: str | None = None) -> dict[str, str]:
    grant = TokenGrant(
        user or world.admin_a, "user", world.hospital_a, role, world.app_client_id, "openid admin"
    )
    return {"Authorization": f"Bearer {await world.platform.tokens.issue_access_token(grant)}"}


async def _principal(world: World, role: str, user: str | None = None) -> Principal:
    header = (await _token(world, role, user))["Authorization"].removeprefix("Bearer ")
    return await world.platform.tokens.validate(header)


async def _accept(world: World, mailbox: Mailbox) -> httpx.Response:
    payload = mailbox.messages[-1].get_payload(decode=True)
    assert isinstance(payload, bytes)
    found = re.search(r"/invitation\?token=([\w-]+)", payload.decode())
    assert found is not None
    page = await world.http.get(found.group(0))
    csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
    return await world.http.post(
        "/invitation", data={"csrf": csrf, "token": found.group(1), "password": PASSWORD}
    )


async def test_the_members_api_does_not_invite_patients(world: World) -> None:
    refused = await world.http.post(
        f"/api/admin/organisations/{world.hospital_a}/invitations",
        json={"email": "anna@patient.example", "display_name": "Anna", "role": "patient"},
        headers=await _token(world, "organisation_admin"),
    )
    assert refused.status_code == 422


async def test_a_patient_stays_a_patient_and_their_token_names_their_record(
    world: World, mailbox: Mailbox
) -> None:
    physician = await _principal(world, "physician", world.physician)
    await world.platform.admin.invite_patient(physician, "rec-1", "anna@patient.example", "Anna")
    assert (await _accept(world, mailbox)).status_code == 200
    members = await world.http.get(
        f"/api/admin/organisations/{world.hospital_a}/members",
        headers=await _token(world, "organisation_admin"),
    )
    patient = next(m for m in members.json() if m["email"] == "anna@patient.example")
    assert patient["role"] == "patient"
    changed = await world.http.patch(
        f"/api/admin/organisations/{world.hospital_a}/members/{patient['user_id']}",
        json={"role": "physician"},
        headers=await _token(world, "organisation_admin"),
    )
    assert changed.status_code == 422
    verifier = secrets.token_urlsafe(48)
    browser = Browser(world.http, "anna@patient.example", PASSWORD)
    asking_for_data = await _code(world, browser, verifier)
    assert asking_for_data["error"] == "invalid_scope", "no FHIR API for patients yet"
    query = await _code(world, browser, verifier, scope="openid fhirUser offline_access")
    assert browser.totp_secret is not None, "a patient enrols a second factor"
    tokens = await _exchange(world, query["code"], verifier)
    assert sorted(str(tokens["scope"]).split()) == ["fhirUser", "offline_access", "openid"]
    jwks = KeySet.import_key_set((await world.http.get("/oauth/jwks")).json())
    claims = jwt.decode(str(tokens["id_token"]), jwks, algorithms=["ES256"]).claims
    assert str(claims["fhirUser"]).endswith("/Patient/rec-1")
    fhir = await world.http.get(
        "/fhir/Patient/rec-1", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert fhir.status_code == 403


async def test_a_staff_account_is_not_made_a_patients(world: World, mailbox: Mailbox) -> None:
    physician = await _principal(world, "physician", world.physician)
    await world.platform.admin.invite_patient(
        physician, "rec-2", "dr.a@klinikum-a.example", "Dr. A as a patient"
    )
    conflict = await _accept(world, mailbox)
    assert conflict.status_code == 409


async def test_only_clinical_staff_and_admins_invite_patients(world: World) -> None:
    researcher = await _principal(world, "researcher")
    with pytest.raises(ApiError) as refused:
        await world.platform.admin.invite_patient(researcher, "rec-3", "x@patient.example", "X")
    assert refused.value.status == 403
