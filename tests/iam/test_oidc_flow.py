"""The authorization code flow with PKCE through HTTP: login with second factor, codes, tokens,
refresh rotation, revocation, and every way a client or an attacker can get it wrong."""

from __future__ import annotations

import base64
import secrets

import orjson
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from medicus.iam.oauth import pkce_challenge
from medicus.iam.roles import Role
from tests.iam.browser import Browser, query_of
from tests.iam.conftest import PASSWORD, REDIRECT_URI, World, add_user


def _authorize_params(world: World, verifier: str, **overrides: str) -> dict[str, str]:
    params = {
        "response_type": "code",
        "client_id": world.app_client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": "openid fhirUser offline_access patient/Observation.rs user/*.rs",
        "state": "st-" + secrets.token_hex(4),
        "nonce": "n-" + secrets.token_hex(4),
        "code_challenge": pkce_challenge(verifier),
        "code_challenge_method": "S256",
        "aud": world.platform.endpoints.fhir_base_url,
    }
    params.update(overrides)
    return params


async def _code(world: World, browser: Browser, verifier: str, **overrides: str) -> dict[str, str]:
    """Run the browser through authorize and login; returns the redirect's query."""
    params = _authorize_params(world, verifier, **overrides)
    response = await world.http.get("/oauth/authorize", params=params)
    response = await browser.follow(response)
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(REDIRECT_URI)
    query = query_of(location)
    assert query.get("state") == params["state"]
    return query


async def _token(world: World, **form: str) -> tuple[int, dict[str, object]]:
    response = await world.http.post("/oauth/token", data=form)
    assert response.headers["cache-control"] == "no-store"
    return response.status_code, response.json()


async def _exchange(world: World, code: str, verifier: str) -> dict[str, object]:
    status, body = await _token(
        world,
        grant_type="authorization_code",
        code=code,
        redirect_uri=REDIRECT_URI,
        client_id=world.app_client_id,
        code_verifier=verifier,
    )
    assert status == 200, body
    return body


def _browser(world: World, email: str = "dr.a@klinikum-a.example") -> Browser:
    return Browser(world.http, email, PASSWORD)


async def _logged_in_tokens(world: World) -> tuple[Browser, dict[str, object]]:
    browser = _browser(world)
    verifier = secrets.token_urlsafe(48)
    query = await _code(world, browser, verifier)
    return browser, await _exchange(world, query["code"], verifier)


async def test_discovery_documents_describe_the_provider(world: World) -> None:
    oidc = (await world.http.get("/.well-known/openid-configuration")).json()
    assert oidc["issuer"] == world.platform.settings.public_url
    assert oidc["code_challenge_methods_supported"] == ["S256"]
    smart = (await world.http.get("/fhir/.well-known/smart-configuration")).json()
    assert smart["token_endpoint"] == oidc["token_endpoint"]
    assert "permission-v2" in smart["capabilities"]
    jwks = (await world.http.get(oidc["jwks_uri"].removeprefix(oidc["issuer"]))).json()
    assert all("d" not in key for key in jwks["keys"])


async def test_code_flow_with_enrolment_gives_working_tokens(world: World) -> None:
    browser, tokens = await _logged_in_tokens(world)
    assert browser.totp_secret is not None
    assert len(browser.recovery_codes) == 10
    assert tokens["token_type"] == "Bearer"
    assert set(str(tokens["scope"]).split()) == {
        "openid",
        "fhirUser",
        "offline_access",
        "patient/Observation.rs",
        "user/*.rs",
    }
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    info = (await world.http.get("/oauth/userinfo", headers=bearer)).json()
    assert info["sub"] == world.physician
    assert info["org"] == world.hospital_a
    assert info["fhirUser"].endswith(f"/fhir/Practitioner/{world.physician}")

    jwks = KeySet.import_key_set((await world.http.get("/oauth/jwks")).json())
    id_token = jwt.decode(str(tokens["id_token"]), jwks, algorithms=["ES256"])
    assert id_token.claims["aud"] == world.app_client_id
    assert id_token.claims["sub"] == world.physician
    assert id_token.claims["nonce"].startswith("n-")


async def test_second_login_asks_for_the_second_factor(world: World) -> None:
    browser, _ = await _logged_in_tokens(world)
    world.http.cookies.clear()
    page = await browser.login()
    assert page.status_code == 200
    assert "Signed in" in page.text


async def test_a_recovery_code_works_once(world: World) -> None:
    browser, _ = await _logged_in_tokens(world)
    code = browser.recovery_codes[0]
    for attempt in range(2):
        world.http.cookies.clear()
        page = await world.http.get("/login")
        csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
        response = await world.http.post(
            "/login",
            data={"email": browser.email, "password": PASSWORD, "csrf": csrf, "next": "/account"},
        )
        page = await world.http.get(response.headers["location"])
        response = await world.http.post(
            "/login/second-factor",
            data={"code": code.upper().replace("-", " "), "csrf": csrf, "next": "/account"},
        )
        assert response.status_code == (303 if attempt == 0 else 401)


async def test_pkce_mismatch_is_refused(world: World) -> None:
    verifier = secrets.token_urlsafe(48)
    query = await _code(world, _browser(world), verifier)
    status, body = await _token(
        world,
        grant_type="authorization_code",
        code=query["code"],
        redirect_uri=REDIRECT_URI,
        client_id=world.app_client_id,
        code_verifier=secrets.token_urlsafe(48),
    )
    assert (status, body["error"]) == (400, "invalid_grant")


def _bearer(tokens: dict[str, object]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


async def _refused_at_once(world: World, tokens: dict[str, object]) -> None:
    """The access token no longer works, without waiting for a poll of the revocation feed."""
    refused = await world.http.get("/api/me", headers=_bearer(tokens))
    assert refused.status_code == 401
    assert "revoked" in refused.headers["www-authenticate"]


async def test_a_replayed_code_is_refused_and_revokes_what_it_issued(world: World) -> None:
    verifier = secrets.token_urlsafe(48)
    query = await _code(world, _browser(world), verifier)
    first = await _exchange(world, query["code"], verifier)
    assert (await world.http.get("/api/me", headers=_bearer(first))).status_code == 200
    status, body = await _token(
        world,
        grant_type="authorization_code",
        code=query["code"],
        redirect_uri=REDIRECT_URI,
        client_id=world.app_client_id,
        code_verifier=verifier,
    )
    assert (status, body["error"]) == (400, "invalid_grant")
    await _refused_at_once(world, first)
    status, body = await _token(
        world,
        grant_type="refresh_token",
        refresh_token=str(first["refresh_token"]),
        client_id=world.app_client_id,
    )
    assert (status, body["error"]) == (400, "invalid_grant")


async def test_a_platform_client_signs_in_staff_of_any_organisation(world: World) -> None:
    """The messenger's single sign-on client belongs to no organisation: the consultant signs
    in for Klinikum B through it, and the id_token names that organisation."""
    async with world.platform.database.transaction() as session:
        changed = await world.platform.identity.register_platform_client(
            session, "medicus-messenger", "medicus Messenger", REDIRECT_URI, "openid profile"
        )
    assert changed
    verifier = secrets.token_urlsafe(48)
    browser = _browser(world, "dr.ab@klinikum-a.example")
    browser.organisation = world.hospital_b
    query = await _code(
        world, browser, verifier, client_id="medicus-messenger", scope="openid profile"
    )
    status, tokens = await _token(
        world,
        grant_type="authorization_code",
        code=query["code"],
        redirect_uri=REDIRECT_URI,
        client_id="medicus-messenger",
        code_verifier=verifier,
    )
    assert status == 200, tokens
    jwks = KeySet.import_key_set((await world.http.get("/oauth/jwks")).json())
    claims = jwt.decode(str(tokens["id_token"]), jwks, algorithms=["ES256"]).claims
    assert (claims["aud"], claims["org"]) == ("medicus-messenger", world.hospital_b)
    info = (await world.http.get("/oauth/userinfo", headers=_bearer(tokens))).json()
    assert info["sub"] == claims["sub"]
    assert info["name"]


async def test_redirect_uri_mismatch_is_shown_not_redirected(world: World) -> None:
    params = _authorize_params(
        world, secrets.token_urlsafe(48), redirect_uri="https://evil.example/cb"
    )
    response = await world.http.get("/oauth/authorize", params=params)
    assert response.status_code == 400
    assert "not registered" in response.text
    assert "location" not in response.headers


@pytest.mark.parametrize(
    ("override", "error"),
    [
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge": ""}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"scope": "patient/Observation.rc"}, "invalid_scope"),
        ({"scope": "openid user/Foo.rs"}, "invalid_scope"),
        ({"scope": "admin system/Patient.rs"}, "invalid_scope"),
        ({"scope": ""}, "invalid_scope"),
        ({"aud": "https://other.example/fhir"}, "invalid_request"),
    ],
)
async def test_bad_authorization_requests_go_back_to_the_client(
    world: World, override: dict[str, str], error: str
) -> None:
    params = _authorize_params(world, secrets.token_urlsafe(48), **override)
    response = await world.http.get("/oauth/authorize", params=params)
    assert response.status_code == 302
    query = query_of(response.headers["location"])
    assert query["error"] == error
    assert query["state"] == params["state"]


async def test_refresh_tokens_rotate_and_reuse_revokes_the_family(world: World) -> None:
    _, tokens = await _logged_in_tokens(world)
    first_refresh = str(tokens["refresh_token"])
    status, rotated = await _token(
        world,
        grant_type="refresh_token",
        refresh_token=first_refresh,
        client_id=world.app_client_id,
    )
    assert status == 200
    assert rotated["refresh_token"] != first_refresh
    status, body = await _token(
        world,
        grant_type="refresh_token",
        refresh_token=first_refresh,
        client_id=world.app_client_id,
    )
    assert (status, body["error"]) == (400, "invalid_grant")
    await _refused_at_once(world, tokens)
    await _refused_at_once(world, rotated)
    status, body = await _token(
        world,
        grant_type="refresh_token",
        refresh_token=str(rotated["refresh_token"]),
        client_id=world.app_client_id,
    )
    assert (status, body["error"]) == (400, "invalid_grant")


async def test_revoking_a_refresh_token_voids_the_access_tokens_of_its_grant(
    world: World,
) -> None:
    """RFC 7009 §2.1: the access tokens issued under the same grant end with it; those of
    another grant of the same user do not."""
    _, tokens = await _logged_in_tokens(world)
    _, other = await _logged_in_tokens(world)
    response = await world.http.post(
        "/oauth/revoke",
        data={"token": str(tokens["refresh_token"]), "client_id": world.app_client_id},
    )
    assert response.status_code == 200
    await _refused_at_once(world, tokens)
    assert (await world.http.get("/api/me", headers=_bearer(other))).status_code == 200


async def _data_protection_officer(world: World) -> Browser:
    """A browser of hospital A's data protection officer, not yet logged in."""
    async with world.platform.database.transaction() as session:
        await add_user(
            world.platform,
            session,
            "dpo@klinikum-a.example",
            [(world.hospital_a, Role.DATA_PROTECTION_OFFICER)],
        )
    return _browser(world, "dpo@klinikum-a.example")


async def test_scopes_the_role_cannot_have_go_back_to_the_client_as_invalid_scope(
    world: World,
) -> None:
    """A data protection officer's role grants no clinical data: an app asking for nothing
    else is answered invalid_scope (RFC 6749 §4.1.2.1) once they have logged in, not handed
    a token that grants nothing of what it asked for."""
    browser = await _data_protection_officer(world)
    query = await _code(
        world, browser, secrets.token_urlsafe(48), scope="openid patient/Observation.rs"
    )
    assert query["error"] == "invalid_scope"
    assert "code" not in query
    verifier = secrets.token_urlsafe(48)
    query = await _code(world, browser, verifier, scope="openid fhirUser")
    assert (
        _claims(str((await _exchange(world, query["code"], verifier))["access_token"]))["scope"]
        == "fhirUser openid"
    )


async def test_refresh_can_narrow_but_not_widen_the_scope(world: World) -> None:
    _, tokens = await _logged_in_tokens(world)
    for outside in ("system/Patient.rs", "user/Foo.rs"):
        status, body = await _token(
            world,
            grant_type="refresh_token",
            refresh_token=str(tokens["refresh_token"]),
            client_id=world.app_client_id,
            scope=outside,
        )
        assert (status, body["error"]) == (400, "invalid_scope")
    status, narrowed = await _token(
        world,
        grant_type="refresh_token",
        refresh_token=str(tokens["refresh_token"]),
        client_id=world.app_client_id,
        scope="patient/Observation.r user/Patient.cruds",
    )
    assert status == 200
    assert set(str(narrowed["scope"]).split()) == {"patient/Observation.r", "user/Patient.rs"}
    assert "refresh_token" not in narrowed


async def test_revoked_access_and_refresh_tokens_stop_working(world: World) -> None:
    _, tokens = await _logged_in_tokens(world)
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert (await world.http.get("/oauth/userinfo", headers=bearer)).status_code == 200
    for token in (tokens["access_token"], tokens["refresh_token"]):
        response = await world.http.post(
            "/oauth/revoke", data={"token": str(token), "client_id": world.app_client_id}
        )
        assert response.status_code == 200
    refused = await world.http.get("/oauth/userinfo", headers=bearer)
    assert refused.status_code == 401
    assert "revoked" in refused.headers["www-authenticate"]
    status, _ = await _token(
        world,
        grant_type="refresh_token",
        refresh_token=str(tokens["refresh_token"]),
        client_id=world.app_client_id,
    )
    assert status == 400


async def test_logout_everywhere_voids_sessions_and_tokens(world: World) -> None:
    browser, tokens = await _logged_in_tokens(world)
    page = await world.http.get("/account")
    csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
    await world.http.post("/logout/everywhere", data={"csrf": csrf})
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert (await world.http.get("/oauth/userinfo", headers=bearer)).status_code == 401
    assert (await world.http.get("/account")).status_code == 303
    assert browser.totp_secret is not None


async def test_a_consultant_chooses_the_organisation(world: World) -> None:
    browser = _browser(world, "dr.ab@klinikum-a.example")
    browser.organisation = world.hospital_b
    verifier = secrets.token_urlsafe(48)
    query = await _code(world, browser, verifier)
    tokens = await _exchange(world, query["code"], verifier)
    claims = _claims(str(tokens["access_token"]))
    assert claims["org"] == world.hospital_b
    assert claims["sub"] == world.consultant


async def test_a_non_clinical_admin_needs_no_second_factor(world: World) -> None:
    browser = _browser(world, "admin@klinikum-a.example")
    page = await browser.login()
    assert "Signed in" in page.text
    assert browser.totp_secret is None


async def test_a_data_protection_officer_needs_a_second_factor(world: World) -> None:
    """A DPO sees who looked at which patient's data: a second factor, as for clinicians."""
    browser = await _data_protection_officer(world)
    page = await browser.login()
    assert "Signed in" in page.text
    assert browser.totp_secret is not None


def _claims(token: str) -> dict[str, object]:
    payload = token.split(".")[1]
    return orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
