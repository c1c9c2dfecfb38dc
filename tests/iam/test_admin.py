"""The administration API: organisation admins act on their own organisation only (a step
outside is refused and audited), invitations arrive by real SMTP and can be accepted once."""

from __future__ import annotations

import re

import httpx
from sqlalchemy import text

from medicus.iam.tokens import TokenGrant
from tests.iam.browser import Browser
from tests.iam.conftest import PASSWORD, Mailbox, World
from tests.support.database import rows


async def _token(
    world: World, user: str, organisation: str, role: str, scope: str = "openid admin"
) -> dict[str, str]:
    grant = TokenGrant(user, "user", organisation, role, world.app_client_id, scope)
    return {"Authorization": f"Bearer {await world.platform.tokens.issue_access_token(grant)}"}


async def _admin_a(world: World) -> dict[str, str]:
    return await _token(world, world.admin_a, world.hospital_a, "organisation_admin")


async def test_an_admin_lists_the_members_of_their_organisation(world: World) -> None:
    response = await world.http.get(
        f"/api/admin/organisations/{world.hospital_a}/members", headers=await _admin_a(world)
    )
    assert response.status_code == 200
    emails = {member["email"] for member in response.json()}
    assert {"dr.a@klinikum-a.example", "dr.ab@klinikum-a.example"} <= emails


async def test_an_admin_of_a_acting_on_b_is_refused_and_audited(world: World) -> None:
    response = await world.http.get(
        f"/api/admin/organisations/{world.hospital_b}/members", headers=await _admin_a(world)
    )
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"
    await world.platform.audit.seal_all()
    denied = await rows(
        world.platform,
        "SELECT actor, organisation, target FROM audit_entry "
        "WHERE action = 'iam.member.list' AND outcome = 'denied'",
    )
    assert denied == [
        (f"user:{world.admin_a}", world.hospital_a, f"Organization/{world.hospital_b}")
    ]


async def test_non_admins_and_tokens_without_the_admin_scope_are_refused(world: World) -> None:
    url = f"/api/admin/organisations/{world.hospital_a}/members"
    physician = await _token(world, world.physician, world.hospital_a, "physician")
    assert (await world.http.get(url, headers=physician)).status_code == 403
    no_scope = await _token(
        world, world.admin_a, world.hospital_a, "organisation_admin", scope="openid"
    )
    assert (await world.http.get(url, headers=no_scope)).status_code == 403
    assert (await world.http.get(url)).status_code == 401


async def test_only_platform_admins_create_organisations(world: World) -> None:
    body = {"name": "Praxis C", "type": "practice", "iknr": "261100003"}
    refused = await world.http.post(
        "/api/admin/organisations", json=body, headers=await _admin_a(world)
    )
    assert refused.status_code == 403
    operator = await _token(world, world.admin_a, world.hospital_a, "platform_admin")
    created = await world.http.post("/api/admin/organisations", json=body, headers=operator)
    assert created.status_code == 201
    again = await world.http.post("/api/admin/organisations", json=body, headers=operator)
    assert again.status_code == 409
    assert "exists already" in again.json()["detail"]
    no_scope = await _token(world, world.admin_a, world.hospital_a, "platform_admin", "openid")
    refused = await world.http.post("/api/admin/organisations", json=body, headers=no_scope)
    assert refused.status_code == 403
    invalid = await world.http.post(
        "/api/admin/organisations",
        headers=operator,
        json={"name": "X", "type": "castle", "iknr": "12"},
    )
    assert invalid.status_code == 422
    assert {e["pointer"] for e in invalid.json()["errors"]} == {"/type", "/iknr"}


async def test_an_organisation_needs_a_unique_telematik_id_and_a_printable_name(
    world: World,
) -> None:
    operator = await _token(world, world.admin_a, world.hospital_a, "platform_admin")
    body = {"name": "Praxis D", "type": "practice", "telematik_id": "1-2-99"}
    created = await world.http.post("/api/admin/organisations", json=body, headers=operator)
    assert created.status_code == 201
    again = await world.http.post(
        "/api/admin/organisations", json={**body, "name": "Praxis E"}, headers=operator
    )
    assert again.status_code == 409
    assert "Telematik-ID" in again.json()["detail"]
    for name in ("Praxis\x00F", "Praxis\nG"):
        refused = await world.http.post(
            "/api/admin/organisations", json={"name": name, "type": "practice"}, headers=operator
        )
        assert refused.status_code == 422, name
        assert refused.json()["errors"][0]["pointer"] == "/name"


async def _invite(world: World, email: str, role: str = "nurse") -> httpx.Response:
    return await world.http.post(
        f"/api/admin/organisations/{world.hospital_a}/invitations",
        json={"email": email, "display_name": "Nora Neu", "role": role},
        headers=await _admin_a(world),
    )


def _link(mailbox: Mailbox) -> str:
    payload = mailbox.messages[-1].get_payload(decode=True)
    assert isinstance(payload, bytes)
    body = payload.decode()
    found = re.search(r"/invitation\?token=([\w-]+)", body)
    assert found is not None, body
    return found.group(0)


async def _accept(world: World, link: str, password: str) -> httpx.Response:
    page = await world.http.get(link)
    csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
    token = link.split("token=")[1]
    return await world.http.post(
        "/invitation", data={"csrf": csrf, "token": token, "password": password}
    )


async def test_an_invitation_arrives_by_mail_and_is_accepted_once(
    world: World, mailbox: Mailbox
) -> None:
    assert (await _invite(world, "nora.neu@klinikum-a.example")).status_code == 201
    assert mailbox.messages[-1]["To"] == "nora.neu@klinikum-a.example"
    link = _link(mailbox)
    weak = await _accept(world, link, "password")
    assert weak.status_code == 422
    accepted = await _accept(world, link, PASSWORD)
    assert accepted.status_code == 200
    assert (await _accept(world, link, PASSWORD)).status_code == 410

    browser = Browser(world.http, "nora.neu@klinikum-a.example", PASSWORD)
    world.http.cookies.clear()
    page = await browser.login()
    assert "Signed in" in page.text
    assert browser.totp_secret is not None


async def test_an_invitation_whose_mail_fails_is_withdrawn(world: World, mailbox: Mailbox) -> None:
    """A 503 that leaves nothing to accept, so that trying again invites once."""
    mailbox.refusing = True
    failed = await _invite(world, "nora.neu@klinikum-a.example")
    assert failed.status_code == 503
    assert "mail relay" in failed.json()["detail"]
    mailbox.refusing = False
    assert (await _invite(world, "nora.neu@klinikum-a.example")).status_code == 201
    await world.platform.audit.seal_all()
    async with world.platform.database.snapshot() as session:
        invited = await session.scalar(
            text("SELECT count(*) FROM invitation WHERE email = 'nora.neu@klinikum-a.example'")
        )
        actions = (
            (
                await session.execute(
                    text(
                        "SELECT action FROM audit_entry "
                        "WHERE action LIKE 'iam.invitation.%' ORDER BY seq"
                    )
                )
            )
            .scalars()
            .all()
        )
    assert invited == 1
    assert actions == ["iam.invitation.create", "iam.invitation.withdraw", "iam.invitation.create"]


async def test_an_invitation_never_replaces_an_existing_password(
    world: World, mailbox: Mailbox
) -> None:
    await _invite(world, "dr.a@klinikum-a.example", role="organisation_admin")
    refused = await _accept(world, _link(mailbox), "a completely different passphrase 9")
    assert refused.status_code == 401


async def test_roles_an_org_admin_cannot_give(world: World) -> None:
    response = await _invite(world, "boss@klinikum-a.example", role="platform_admin")
    assert response.status_code == 422


async def test_suspending_a_member_voids_their_tokens(world: World) -> None:
    physician = await _token(world, world.physician, world.hospital_a, "physician", "openid")
    assert (await world.http.get("/oauth/userinfo", headers=physician)).status_code == 200
    response = await world.http.patch(
        f"/api/admin/organisations/{world.hospital_a}/members/{world.physician}",
        json={"active": False},
        headers=await _admin_a(world),
    )
    assert response.status_code == 204
    assert (await world.http.get("/oauth/userinfo", headers=physician)).status_code == 401


async def test_suspending_at_a_ends_a_shared_member_s_work_for_a_only(world: World) -> None:
    """A consultant of A and B suspended at A: his tokens and sessions for A end at once, his
    tokens for B keep working."""
    browser = Browser(world.http, "dr.ab@klinikum-a.example", PASSWORD)
    browser.organisation = world.hospital_a
    assert "Signed in" in (await browser.login()).text
    for_a = await _token(world, world.consultant, world.hospital_a, "physician", "openid")
    for_b = await _token(world, world.consultant, world.hospital_b, "physician", "openid")
    response = await world.http.patch(
        f"/api/admin/organisations/{world.hospital_a}/members/{world.consultant}",
        json={"active": False},
        headers=await _admin_a(world),
    )
    assert response.status_code == 204
    assert (await world.http.get("/oauth/userinfo", headers=for_a)).status_code == 401
    assert (await world.http.get("/oauth/userinfo", headers=for_b)).status_code == 200
    assert (await world.http.get("/account")).status_code == 303


async def test_a_role_changed_at_a_voids_the_tokens_for_a_only(world: World) -> None:
    for_a = await _token(world, world.consultant, world.hospital_a, "physician", "openid")
    for_b = await _token(world, world.consultant, world.hospital_b, "physician", "openid")
    response = await world.http.patch(
        f"/api/admin/organisations/{world.hospital_a}/members/{world.consultant}",
        json={"role": "nurse"},
        headers=await _admin_a(world),
    )
    assert response.status_code == 204
    assert (await world.http.get("/oauth/userinfo", headers=for_a)).status_code == 401
    assert (await world.http.get("/oauth/userinfo", headers=for_b)).status_code == 200


async def test_only_a_platform_admin_resets_the_second_factor_of_a_shared_member(
    world: World,
) -> None:
    browser = Browser(world.http, "dr.ab@klinikum-a.example", PASSWORD)
    browser.organisation = world.hospital_a
    await browser.login()
    secret = browser.totp_secret
    url = (
        f"/api/admin/organisations/{world.hospital_a}/members/{world.consultant}"
        "/reset-second-factor"
    )
    refused = await world.http.post(url, headers=await _admin_a(world))
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    assert "platform admin" in refused.json()["detail"]
    world.http.cookies.clear()
    await browser.login()
    assert browser.totp_secret == secret
    await world.platform.audit.seal_all()
    denied = await rows(
        world.platform,
        "SELECT actor, target FROM audit_entry "
        "WHERE action = 'iam.mfa.reset' AND outcome = 'denied'",
    )
    assert denied == [(f"user:{world.admin_a}", f"Practitioner/{world.consultant}")]
    operator = await _token(world, world.admin_a, world.hospital_a, "platform_admin")
    assert (await world.http.post(url, headers=operator)).status_code == 204
    world.http.cookies.clear()
    await browser.login()
    assert browser.totp_secret not in (None, secret)


async def test_a_reset_second_factor_means_enrolling_again(world: World) -> None:
    browser = Browser(world.http, "dr.a@klinikum-a.example", PASSWORD)
    await browser.login()
    first_secret = browser.totp_secret
    response = await world.http.post(
        f"/api/admin/organisations/{world.hospital_a}/members/{world.physician}"
        "/reset-second-factor",
        headers=await _admin_a(world),
    )
    assert response.status_code == 204
    world.http.cookies.clear()
    await browser.login()
    assert browser.totp_secret not in (None, first_secret)
