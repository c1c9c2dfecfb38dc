"""App passwords: made per device over the REST API (shown once), listed, revoked, and the only
way WebDAV lets anyone in; a revoked one fails with the very next request. Every creation,
revocation and failed login is audited, the password never."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import text

from medicus.collab.app_passwords import WEBDAV_CLIENT
from tests.collab.conftest import Region
from tests.collab.dav_clients import FULL_SCOPE, app_password, basic, dav
from tests.support.clients import bearer
from tests.support.clock import MovableClock
from tests.support.database import rows


async def _token(region: Region, scope: str = FULL_SCOPE) -> dict[str, str]:
    alice = region.alice
    issued = await bearer(region.platform, alice.organisation, subject=alice.user_id, scope=scope)
    return {"Authorization": issued["Authorization"]}


async def _audited(region: Region, action: str) -> list[tuple[str, str, str, str]]:
    await region.platform.audit.seal_all()
    found = await rows(
        region.platform,
        "SELECT actor, outcome, target, detail FROM audit_entry WHERE action = :action "
        "ORDER BY seq",
        action=action,
    )
    return [(actor, outcome, target or "", detail) for actor, outcome, target, detail in found]


async def test_a_password_is_shown_once_listed_and_revoked(region: Region) -> None:
    headers = await _token(region)
    made = await region.http.post(
        "/collab/app-passwords", json={"label": "  Praxis-Laptop "}, headers=headers
    )
    assert made.status_code == 201, made.text
    assert made.headers["cache-control"] == "no-store"
    body = made.json()
    password = body.pop("password")
    assert password.startswith("mdav_")
    assert len(password) >= 5 + 32
    assert body["label"] == "Praxis-Laptop"
    assert body["organisation"] == region.alice.organisation
    listed = await region.http.get("/collab/app-passwords", headers=headers)
    assert listed.json()["appPasswords"] == [body]
    assert "password" not in listed.text.lower().replace("apppasswords", "")
    stored = await rows(region.platform, "SELECT secret_hash FROM collab_app_password")
    assert password not in str(stored)

    alice = basic(region.alice.email, password)
    assert (
        await dav(region.http, "PROPFIND", "", alice, headers={"Depth": "0"})
    ).status_code == 207
    revoked = await region.http.delete(f"/collab/app-passwords/{body['id']}", headers=headers)
    assert revoked.status_code == 204
    refused = await dav(region.http, "PROPFIND", "", alice, headers={"Depth": "0"})
    assert refused.status_code == 401
    assert (await region.http.get("/collab/app-passwords", headers=headers)).json() == {
        "appPasswords": []
    }
    again = await region.http.delete(f"/collab/app-passwords/{body['id']}", headers=headers)
    assert again.status_code == 204

    actor = f"user:{region.alice.user_id}"
    target = f"CollabAppPassword/{body['id']}"
    created = await _audited(region, "collab.app-password.create")
    assert [(a, o, t) for a, o, t, _ in created] == [(actor, "success", target)]
    revocations = await _audited(region, "collab.app-password.revoke")
    assert [(a, o, t) for a, o, t, _ in revocations] == [(actor, "success", target)]
    failures = await _audited(region, "collab.app-password.login")
    assert [(a, o, t) for a, o, t, _ in failures] == [(actor, "denied", target)]
    assert '"reason":"revoked"' in failures[0][3]
    everything = await rows(region.platform, "SELECT detail FROM audit_entry")
    assert password not in str(everything)


async def test_webdav_without_a_working_password_gets_401(region: Region) -> None:
    password = await app_password(region, region.alice)
    attempts = {
        "nothing": {},
        "bearer": region.alice.headers,
        "wrong password": basic(region.alice.email, password + "x"),
        "someone else's login": basic(region.bob.email, password),
        "not base64": {"Authorization": "Basic %%%"},
        "no colon": {"Authorization": "Basic YWxpY2U="},
    }
    for why, headers in attempts.items():
        answer = await dav(region.http, "PROPFIND", "", headers, headers={"Depth": "0"})
        assert answer.status_code == 401, why
        assert answer.headers["www-authenticate"] == 'Basic realm="medicus"', why
        assert answer.headers["content-type"] == "application/problem+json", why
    right = basic(region.alice.email.upper(), password)
    assert (
        await dav(region.http, "PROPFIND", "", right, headers={"Depth": "0"})
    ).status_code == 207
    failures = await _audited(region, "collab.app-password.login")
    reasons = sorted(detail.split('"reason":"')[1].split('"')[0] for _, _, _, detail in failures)
    assert reasons == ["login-mismatch", "not-known"]
    assert all(f'"client":"{WEBDAV_CLIENT}"' in detail for *_, detail in failures)


async def test_a_suspended_membership_or_logging_out_everywhere_ends_it(
    region: Region, clock: MovableClock
) -> None:
    password = await app_password(region, region.alice)
    alice = basic(region.alice.email, password)
    assert (
        await dav(region.http, "PROPFIND", "", alice, headers={"Depth": "0"})
    ).status_code == 207
    async with region.platform.database.transaction() as session:
        await session.execute(
            text("UPDATE membership SET active = :no WHERE user_id = :user"),
            {"no": False, "user": region.alice.user_id},
        )
    assert (
        await dav(region.http, "PROPFIND", "", alice, headers={"Depth": "0"})
    ).status_code == 401
    async with region.platform.database.transaction() as session:
        await session.execute(
            text("UPDATE membership SET active = :yes WHERE user_id = :user"),
            {"yes": True, "user": region.alice.user_id},
        )
        await session.execute(
            text("UPDATE app_user SET sessions_valid_after = :now WHERE id = :user"),
            {"now": clock() + dt.timedelta(seconds=1), "user": region.alice.user_id},
        )
    assert (
        await dav(region.http, "PROPFIND", "", alice, headers={"Depth": "0"})
    ).status_code == 401
    reasons = [detail for *_, detail in await _audited(region, "collab.app-password.login")]
    assert ['"reason":"membership-gone"' in reasons[0], "logged-out" in reasons[1]] == [True, True]


async def test_last_use_is_written_at_most_once_a_minute(
    region: Region, clock: MovableClock
) -> None:
    password = await app_password(region, region.alice)
    passwords = region.platform.collab.app_passwords
    principal = await passwords.authenticate(region.alice.email, password)
    assert principal is not None
    assert (principal.subject, principal.organisation_id, principal.role) == (
        region.alice.user_id,
        region.alice.organisation,
        "physician",
    )
    assert principal.client_id == WEBDAV_CLIENT
    assert principal.kind == "user"
    assert principal.scope_text == "patient/*.cruds user/*.cruds"
    [(first,)] = await rows(region.platform, "SELECT last_used_at FROM collab_app_password")
    assert first is not None
    clock.advance(dt.timedelta(seconds=30))
    await passwords.authenticate(region.alice.email, password)
    assert await rows(region.platform, "SELECT last_used_at FROM collab_app_password") == [(first,)]
    clock.advance(dt.timedelta(seconds=31))
    await passwords.authenticate(region.alice.email, password)
    [(later,)] = await rows(region.platform, "SELECT last_used_at FROM collab_app_password")
    assert later != first


async def test_who_may_make_and_revoke_one(region: Region) -> None:
    narrow = await _token(region, scope="user/*.cruds")
    refused = await region.http.post(
        "/collab/app-passwords", json={"label": "Tablet"}, headers=narrow
    )
    assert refused.status_code == 403, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    for label in ["", "   ", "x" * 101, "Tab\u0000let"]:
        bad = await region.http.post(
            "/collab/app-passwords", json={"label": label}, headers=await _token(region)
        )
        assert bad.status_code == 400, label
    await app_password(region, region.alice)
    [(password_id,)] = await rows(region.platform, "SELECT id FROM collab_app_password")
    bobs = await region.http.delete(
        f"/collab/app-passwords/{password_id}", headers=region.bob.headers
    )
    assert bobs.status_code == 404
    assert (await region.http.get("/collab/app-passwords", headers=region.bob.headers)).json() == {
        "appPasswords": []
    }
    assert (await region.http.get("/collab/app-passwords")).status_code == 401
    denied = await _audited(region, "collab.app-password.create")
    assert (denied[0][1], denied[0][3].split(",")[-1][:-1]) == ("denied", '"reason":"scope"')
