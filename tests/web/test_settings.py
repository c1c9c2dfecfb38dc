"""An organisation administrator's settings pages through HTTP: apps and backend services
(register, deactivate), the second-factor policy and the hospital's own login. Bad values
come back next to their field and change nothing; a stale form changes nothing; nobody else
(another organisation's admin, staff) may use them; every change is in the audit trail."""

from __future__ import annotations

from typing import Any

import orjson
from joserfc.jwk import ECKey

from tests.iam.browser import Browser
from tests.support.database import count, rows
from tests.web.conftest import ADMIN, DPO, Ward, csrf_of, sealed_entries

CLIENTS = "/portal/admin/organisations/hospital-b/clients"
SIGN_IN = "/portal/admin/organisations/hospital-b/sign-in"
SECRET = "upstream-secret-4711-do-not-show"


async def _entries(ward: Ward, action: str) -> list[tuple[Any, ...]]:
    """Actor, organisation, target and outcome of the audit entries of `action`."""
    return await sealed_entries(ward, action, "actor, organisation, target, outcome")


async def _user_id(ward: Ward, email: str) -> str:
    [(found,)] = await rows(ward.platform, "SELECT id FROM app_user WHERE email = :e", e=email)
    return str(found)


async def _clients(ward: Ward) -> list[tuple[str, str, bool]]:
    """Name, kind and whether active of every OAuth client, oldest first."""
    found = await rows(
        ward.platform, "SELECT name, kind, active FROM oauth_client ORDER BY created_at"
    )
    return [(name, kind, bool(active)) for name, kind, active in found]


async def _logged_in_admin(admin: Browser, language: str = "de") -> str:
    """Log the admin in; the clients page's text."""
    admin.http.headers["Accept-Language"] = language
    start = await admin.login("/portal")
    assert f'href="{CLIENTS}"' in start.text, "the navigation offers the settings"
    page = await admin.http.get(CLIENTS)
    assert page.status_code == 200
    return page.text


async def test_an_admin_registers_an_app_and_a_backend_service_and_deactivates_one(
    ward: Ward,
) -> None:
    async with ward.browser_of(ADMIN) as admin:
        page = await _logged_in_admin(admin, "en")
        assert "Apps and services of hospital-b" in page
        token = csrf_of(page)
        app = {
            "csrf": token,
            "kind": "public",
            "name": "<script>alert(1)</script> Stationsapp",
            "redirect_uris": "https://app.example/callback\r\nhttp://127.0.0.1:8765/cb",
            "scope": "openid fhirUser user/*.rs",
        }
        registered = await admin.http.post(CLIENTS, data=app)
        assert registered.status_code == 303
        listed = await admin.http.get(registered.headers["location"])
        assert "&lt;script&gt;alert(1)&lt;/script&gt; Stationsapp" in listed.text
        assert "<script>alert(1)" not in listed.text
        [(client_id,)] = await rows(ward.platform, "SELECT client_id FROM oauth_client")
        assert f"Its client_id is {client_id}" in listed.text
        assert "http://127.0.0.1:8765/cb" in listed.text

        key = ECKey.generate_key("P-384", auto_kid=True)
        backend = {
            "csrf": token,
            "kind": "backend",
            "name": "KIS-Konnektor",
            "jwks": orjson.dumps({"keys": [key.as_dict(private=False)]}).decode(),
            "scope": "system/*.rs",
        }
        assert (await admin.http.post(CLIENTS, data=backend)).status_code == 303
        assert await _clients(ward) == [
            ("<script>alert(1)</script> Stationsapp", "public", True),
            ("KIS-Konnektor", "backend", True),
        ]
        deactivated = await admin.http.post(
            f"{CLIENTS}/{client_id}/deactivate", data={"csrf": token}
        )
        assert deactivated.status_code == 303
        assert (await _clients(ward))[0][2] is False
        assert "deactivated" in (await admin.http.get(CLIENTS)).text
        again = await admin.http.post(f"{CLIENTS}/{client_id}/deactivate", data={"csrf": token})
        assert again.status_code == 409
    actor = f"user:{await _user_id(ward, ADMIN)}"
    created = await _entries(ward, "iam.client.create")
    assert [entry[:2] for entry in created] == [(actor, "hospital-b")] * 2
    assert await _entries(ward, "iam.client.deactivate") == [
        (actor, "hospital-b", f"client:{client_id}", "success")
    ]


async def test_bad_client_values_are_shown_next_to_their_field_and_change_nothing(
    ward: Ward,
) -> None:
    async with ward.browser_of(ADMIN) as admin:
        token = csrf_of(await _logged_in_admin(admin))
        app = {"csrf": token, "kind": "public", "name": "App", "scope": "openid user/*.rs"}
        refusals = [
            ({**app, "redirect_uris": "http://app.example/cb"}, "public-redirect_uris"),
            ({**app, "redirect_uris": "https://a.example/cb", "name": "  "}, "public-name"),
            ({**app, "redirect_uris": "https://a.example/cb", "name": "x" * 201}, "public-name"),
            (
                {**app, "redirect_uris": "https://a.example/cb", "scope": "user/Foo.rs"},
                "public-scope",
            ),
        ]
        for fields, field in refusals:
            refused = await admin.http.post(CLIENTS, data=fields)
            assert refused.status_code == 422, field
            assert f'id="{field}-error"' in refused.text, field
            assert 'aria-invalid="true"' in refused.text
        not_json = {
            "csrf": token,
            "kind": "backend",
            "name": "Konnektor <b>",
            "jwks": '{"keys": [ "kaputt',
            "scope": "system/*.rs",
        }
        refused = await admin.http.post(CLIENTS, data=not_json)
        assert refused.status_code == 422
        assert 'id="backend-jwks-error"' in refused.text
        assert "JWKS" in refused.text.split('id="backend-jwks-error"', 1)[1][:300]
        assert "kaputt" not in refused.text, "a refused JWKS is not shown again"
        assert "Konnektor &lt;b&gt;" in refused.text, "the other values are, escaped"
        stale = await admin.http.post(
            CLIENTS, data={**app, "redirect_uris": "https://a.example/cb", "csrf": "stale"}
        )
        assert stale.status_code == 400
        missing = {k: v for k, v in app.items() if k != "csrf"}
        assert (await admin.http.post(CLIENTS, data=missing)).status_code == 400
    assert await count(ward.platform, "oauth_client") == 0


async def test_the_second_factor_policy_and_the_hospitals_login(ward: Ward) -> None:
    async with ward.browser_of(ADMIN) as admin:
        await _logged_in_admin(admin, "en")
        page = await admin.http.get(SIGN_IN)
        assert page.status_code == 200
        assert "Sign-in at hospital-b" in page.text
        assert "Physician" in page.text, "the clinical policy names the roles it covers"
        token = csrf_of(page.text)
        bad = await admin.http.post(
            f"{SIGN_IN}/mfa-policy", data={"csrf": token, "mfa_policy": "sometimes"}
        )
        assert bad.status_code == 422
        assert 'id="e-mfa_policy"' in bad.text
        chosen = await admin.http.post(
            f"{SIGN_IN}/mfa-policy", data={"csrf": token, "mfa_policy": "all"}
        )
        assert chosen.status_code == 303
        upstream = {
            "csrf": token,
            "issuer": "https://idp.hospital-b.example",
            "client_id": "medicus",
            "client_secret": SECRET,
            "trust_upstream_mfa": "on",
        }
        insecure = await admin.http.post(
            f"{SIGN_IN}/upstream", data={**upstream, "issuer": "http://idp.hospital-b.example"}
        )
        assert insecure.status_code == 422
        assert 'id="e-issuer"' in insecure.text
        assert SECRET not in insecure.text, "a typed secret is not shown again"
        assert await count(ward.platform, "upstream_idp") == 0
        saved = await admin.http.post(f"{SIGN_IN}/upstream", data=upstream)
        assert saved.status_code == 303
        shown = await admin.http.get(saved.headers["location"])
        assert "https://idp.hospital-b.example" in shown.text
        assert "stored (never shown)" in shown.text
        assert SECRET not in shown.text
        assert 'value="all" checked' in shown.text
        removed = await admin.http.post(f"{SIGN_IN}/upstream/remove", data={"csrf": token})
        assert removed.status_code == 303
        assert "Not set up" in (await admin.http.get(SIGN_IN)).text
    [(policy,)] = await rows(
        ward.platform, "SELECT mfa_policy FROM organisation WHERE id = 'hospital-b'"
    )
    assert policy == "all"
    actor = f"user:{await _user_id(ward, ADMIN)}"
    target = "Organization/hospital-b"
    assert await _entries(ward, "iam.mfa-policy.update") == [
        (actor, "hospital-b", target, "success")
    ]
    assert await _entries(ward, "iam.upstream.configure") == [
        (actor, "hospital-b", target, "success")
    ]
    assert await _entries(ward, "iam.upstream.remove") == [(actor, "hospital-b", target, "success")]


async def test_the_pages_speak_german(ward: Ward) -> None:
    async with ward.browser_of(ADMIN) as admin:
        page = await _logged_in_admin(admin)
        assert "Apps und Dienste von hospital-b" in page
        assert "App registrieren" in page
        sign_in = await admin.http.get(SIGN_IN)
        assert "Anmeldung bei hospital-b" in sign_in.text
        assert "Zweiter Faktor" in sign_in.text


async def test_another_organisations_admin_changes_nothing(ward: Ward) -> None:
    async with ward.platform.database.transaction() as session:
        client_of_a = await ward.platform.identity.create_client(
            session,
            "system:test",
            "App of A",
            "hospital-a",
            "openid",
            None,
            ["https://a.example/cb"],
        )
    async with ward.browser_of(ADMIN) as admin:
        token = csrf_of(await _logged_in_admin(admin))
        of_a = "/portal/admin/organisations/hospital-a"
        for path in (f"{of_a}/clients", f"{of_a}/sign-in"):
            page = await admin.http.get(path)
            assert page.status_code == 403, path
            assert "App of A" not in page.text
        attempts = [
            (
                f"{of_a}/clients",
                {
                    "kind": "public",
                    "name": "Mine",
                    "redirect_uris": "https://m.example/cb",
                    "scope": "openid",
                },
            ),
            (f"{of_a}/clients/{client_of_a}/deactivate", {}),
            (f"{of_a}/sign-in/mfa-policy", {"mfa_policy": "none"}),
            (f"{of_a}/sign-in/upstream", {"issuer": "https://evil.example", "client_id": "x"}),
        ]
        for path, fields in attempts:
            refused = await admin.http.post(path, data={"csrf": token, **fields})
            assert refused.status_code == 403, path
        for weird in ("/portal/admin/organisations/%00/clients", f"{CLIENTS}/%00x/deactivate"):
            assert (await admin.http.post(weird, data={"csrf": token})).status_code == 404
        own_path = await admin.http.post(
            f"{CLIENTS}/{client_of_a}/deactivate", data={"csrf": token}
        )
        assert own_path.status_code == 404, "a client of A is not one of B"
    assert await _clients(ward) == [("App of A", "public", True)]
    assert await count(ward.platform, "upstream_idp") == 0
    [(policy,)] = await rows(
        ward.platform, "SELECT mfa_policy FROM organisation WHERE id = 'hospital-a'"
    )
    assert policy == "clinical"
    await ward.platform.audit.seal_all()
    denied = await rows(
        ward.platform,
        "SELECT action, organisation, target FROM audit_entry WHERE outcome = 'denied' "
        "ORDER BY seq",
    )
    target = "Organization/hospital-a"
    assert denied == [
        ("iam.client.list", "hospital-b", target),
        ("iam.sign-in.read", "hospital-b", target),
        ("iam.client.create", "hospital-b", target),
        ("iam.client.deactivate", "hospital-b", target),
        ("iam.mfa-policy.update", "hospital-b", target),
        ("iam.upstream.configure", "hospital-b", target),
    ]


async def test_staff_may_not_use_the_settings(ward: Ward) -> None:
    await ward.physician.login("/portal")
    for path in (CLIENTS, SIGN_IN):
        page = await ward.http.get(path)
        assert page.status_code == 403, path
        assert "Das dürfen Sie nicht sehen" in page.text
        assert f'href="{CLIENTS}"' not in page.text, "not in the navigation"
    async with ward.browser_of(DPO) as dpo:
        await dpo.login("/portal")
        page = await dpo.http.get(SIGN_IN)
        assert page.status_code == 403
        token = csrf_of(page.text)
        refused = await dpo.http.post(
            f"{SIGN_IN}/mfa-policy", data={"csrf": token, "mfa_policy": "none"}
        )
        assert refused.status_code == 403
    [(policy,)] = await rows(
        ward.platform, "SELECT mfa_policy FROM organisation WHERE id = 'hospital-b'"
    )
    assert policy == "clinical"
