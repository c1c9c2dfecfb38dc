"""An organisation's settings as identity's use cases: its admins (platform admins: any
organisation's) register and deactivate OAuth clients, set up the hospital's own login and
the second-factor policy; everyone else is refused and audited; bad values change nothing;
a client secret is never handed out again."""

from __future__ import annotations

import secrets
import time
import uuid
from typing import Any

import orjson
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey

from medicus.core.errors import ApiError
from medicus.iam.organisation_settings import UpstreamChange
from medicus.iam.scopes import parse_scopes
from medicus.iam.tokens import Principal
from tests.iam.browser import Browser
from tests.iam.conftest import PASSWORD, World
from tests.iam.test_oidc_flow import _logged_in_tokens
from tests.support.database import count, rows

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def _caller(
    world: World, role: str, organisation: str | None = None, scope: str = "openid admin"
) -> Principal:
    return Principal(
        subject=world.admin_a,
        kind="user",
        organisation_id=organisation or world.hospital_a,
        role=role,
        client_id=world.app_client_id,
        scope=parse_scopes(scope),
        scope_text=scope,
        jti=uuid.uuid4().hex,
        expires_at=0,
    )


def _admin_a(world: World) -> Principal:
    return _caller(world, "organisation_admin")


async def _entries(world: World, action: str) -> list[tuple[Any, ...]]:
    """The audit entries of `action`: actor, organisation, target, outcome, detail."""
    await world.platform.audit.seal_all()
    return await rows(
        world.platform,
        "SELECT actor, organisation, target, outcome, detail FROM audit_entry "
        "WHERE action = :action ORDER BY seq",
        action=action,
    )


def _public_jwks(key: ECKey) -> str:
    return orjson.dumps({"keys": [key.as_dict(private=False)]}).decode()


async def _client_token(world: World, client_id: str, key: ECKey) -> int:
    """The status of a client-credentials token request signed with `key`."""
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": world.platform.endpoints.token,
        "iat": now,
        "exp": now + 120,
        "jti": uuid.uuid4().hex,
    }
    header = {"alg": "ES384", "kid": key.kid, "typ": "JWT"}
    response = await world.http.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "scope": "system/Patient.rs",
            "client_assertion_type": JWT_BEARER,
            "client_assertion": jwt.encode(header, claims, key, algorithms=["ES384"]),
        },
    )
    return response.status_code


async def test_an_admin_registers_a_backend_service_that_gets_tokens_until_deactivated(
    world: World,
) -> None:
    settings = world.platform.organisation_settings
    key = ECKey.generate_key("P-384", auto_kid=True)
    client_id = await settings.register_backend(
        _admin_a(world), world.hospital_a, " KIS connector ", _public_jwks(key), "system/*.rs"
    )
    listed = (await settings.clients(_admin_a(world), world.hospital_a)).clients
    [backend] = [client for client in listed if client.client_id == client_id]
    assert (backend.name, backend.kind, backend.scope, backend.active) == (
        "KIS connector",
        "backend",
        "system/*.rs",
        True,
    )
    assert await _client_token(world, client_id, key) == 200

    await settings.deactivate_client(_admin_a(world), world.hospital_a, client_id)
    assert await _client_token(world, client_id, key) == 401
    with pytest.raises(ApiError) as again:
        await settings.deactivate_client(_admin_a(world), world.hospital_a, client_id)
    assert again.value.status == 409
    actor, organisation = f"user:{world.admin_a}", world.hospital_a
    created = await _entries(world, "iam.client.create")
    assert (actor, organisation, f"client:{client_id}", "success") in [e[:4] for e in created]
    [deactivated] = await _entries(world, "iam.client.deactivate")
    assert deactivated[:4] == (actor, organisation, f"client:{client_id}", "success")


async def test_deactivating_an_app_ends_the_grants_of_its_users(world: World) -> None:
    _, tokens = await _logged_in_tokens(world)
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert (await world.http.get("/api/me", headers=bearer)).status_code == 200
    settings = world.platform.organisation_settings
    await settings.deactivate_client(_admin_a(world), world.hospital_a, world.app_client_id)
    assert (await world.http.get("/api/me", headers=bearer)).status_code == 401
    refreshed = await world.http.post(
        "/oauth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": str(tokens["refresh_token"]),
            "client_id": world.app_client_id,
        },
    )
    assert refreshed.status_code in (400, 401)
    [entry] = await _entries(world, "iam.client.deactivate")
    assert orjson.loads(entry[4])["grants_ended"] == "1"


async def test_an_app_is_registered_with_its_redirect_uris_and_scopes(world: World) -> None:
    settings = world.platform.organisation_settings
    uris = [
        "https://app.example/callback",
        "http://127.0.0.1:8123/cb",
        "https://app.example/callback",
    ]
    client_id = await settings.register_app(
        _admin_a(world), world.hospital_a, "Station app", uris, "openid fhirUser user/*.rs"
    )
    listed = (await settings.clients(_admin_a(world), world.hospital_a)).clients
    [app] = [client for client in listed if client.client_id == client_id]
    assert app.kind == "public"
    assert app.redirect_uris == ["https://app.example/callback", "http://127.0.0.1:8123/cb"]


@pytest.mark.parametrize(
    ("kind", "values", "field"),
    [
        ("app", {"name": ""}, "name"),
        ("app", {"name": "x" * 201}, "name"),
        ("app", {"name": "tab\there"}, "name"),
        ("app", {"uris": []}, "redirect_uris"),
        ("app", {"uris": ["http://app.example/cb"]}, "redirect_uris"),
        ("app", {"uris": ["https://app.example/cb#frag"]}, "redirect_uris"),
        ("app", {"uris": ["javascript:alert(1)"]}, "redirect_uris"),
        ("app", {"uris": ["http://localhost.evil.example/cb"]}, "redirect_uris"),
        ("app", {"uris": ["https://[bad/cb"]}, "redirect_uris"),
        ("app", {"uris": [f"https://app.example/{i}" for i in range(11)]}, "redirect_uris"),
        ("app", {"scope": ""}, "scope"),
        ("app", {"scope": "user/Foo.rs"}, "scope"),
        ("app", {"scope": "system/*.rs"}, "scope"),
        ("app", {"scope": "user/*.xyz"}, "scope"),
        ("backend", {"jwks": "{not json"}, "jwks"),
        ("backend", {"jwks": '{"keys": []}'}, "jwks"),
        ("backend", {"jwks": '{"keys": [{"kty": "EC"}]}'}, "jwks"),
        ("backend", {"jwks": "private"}, "jwks"),
        ("backend", {"scope": "user/*.rs"}, "scope"),
        ("backend", {"scope": "openid system/*.rs"}, "scope"),
    ],
)
async def test_bad_client_values_are_refused_next_to_their_field_and_change_nothing(
    world: World, kind: str, values: dict[str, Any], field: str
) -> None:
    settings = world.platform.organisation_settings
    key = ECKey.generate_key("P-384", auto_kid=True)
    jwks = values.get("jwks", _public_jwks(key))
    if jwks == "private":
        jwks = orjson.dumps({"keys": [key.as_dict(private=True)]}).decode()
    before = await count(world.platform, "oauth_client")
    registration = (
        settings.register_app(
            _admin_a(world),
            world.hospital_a,
            values.get("name", "App"),
            values.get("uris", ["https://app.example/cb"]),
            values.get("scope", "openid user/*.rs"),
        )
        if kind == "app"
        else settings.register_backend(
            _admin_a(world), world.hospital_a, "Connector", jwks, values.get("scope", "system/*.rs")
        )
    )
    with pytest.raises(ApiError) as refused:
        await registration
    assert refused.value.status == 422
    assert [error.pointer for error in refused.value.errors] == [f"/{field}"]
    assert await count(world.platform, "oauth_client") == before


async def test_the_admin_of_another_organisation_is_refused_and_audited(world: World) -> None:
    settings = world.platform.organisation_settings
    admin_of_b = _caller(world, "organisation_admin", world.hospital_b)
    before = await count(world.platform, "oauth_client")
    attempts = [
        settings.clients(admin_of_b, world.hospital_a),
        settings.register_app(
            admin_of_b, world.hospital_a, "App", ["https://a.example/cb"], "openid"
        ),
        settings.deactivate_client(admin_of_b, world.hospital_a, world.app_client_id),
        settings.set_mfa_policy(admin_of_b, world.hospital_a, "none"),
        settings.set_upstream(
            admin_of_b, world.hospital_a, UpstreamChange("https://idp.example", "m")
        ),
        settings.remove_upstream(admin_of_b, world.hospital_a),
        settings.sign_in(admin_of_b, world.hospital_a),
        settings.organisations(admin_of_b),
    ]
    for attempt in attempts:
        with pytest.raises(ApiError) as refused:
            await attempt
        assert refused.value.status == 403
    assert await count(world.platform, "oauth_client") == before
    [policy] = await rows(
        world.platform, "SELECT mfa_policy FROM organisation WHERE id = :id", id=world.hospital_a
    )
    assert policy == ("clinical",)
    await world.platform.audit.seal_all()
    denied = await rows(
        world.platform,
        "SELECT action, actor, organisation, target FROM audit_entry WHERE outcome = 'denied' "
        "ORDER BY seq",
    )
    target = f"Organization/{world.hospital_a}"
    actor = f"user:{world.admin_a}"
    assert denied == [
        ("iam.client.list", actor, world.hospital_b, target),
        ("iam.client.create", actor, world.hospital_b, target),
        ("iam.client.deactivate", actor, world.hospital_b, target),
        ("iam.mfa-policy.update", actor, world.hospital_b, target),
        ("iam.upstream.configure", actor, world.hospital_b, target),
        ("iam.upstream.remove", actor, world.hospital_b, target),
        ("iam.sign-in.read", actor, world.hospital_b, target),
        ("iam.organisation.list", actor, world.hospital_b, None),
    ]


@pytest.mark.parametrize(
    ("role", "scope"),
    [("physician", "openid admin"), ("organisation_admin", "openid"), ("nurse", "openid")],
)
async def test_staff_and_tokens_without_the_admin_scope_are_refused(
    world: World, role: str, scope: str
) -> None:
    settings = world.platform.organisation_settings
    with pytest.raises(ApiError) as refused:
        await settings.clients(_caller(world, role, scope=scope), world.hospital_a)
    assert refused.value.status == 403


async def test_a_platform_admin_administers_any_organisation(world: World) -> None:
    settings = world.platform.organisation_settings
    operator = _caller(world, "platform_admin", world.hospital_b)
    await settings.set_mfa_policy(operator, world.hospital_a, "all")
    organisations = {o.name: o for o in await settings.organisations(operator)}
    assert organisations["Klinikum A"].mfa_policy == "all"
    assert organisations["Klinikum A"].members == 3
    assert organisations["Klinikum A"].iknr == "261100001"
    with pytest.raises(ApiError) as unknown:
        await settings.clients(operator, "no-such-organisation")
    assert unknown.value.status == 404
    [changed] = await _entries(world, "iam.mfa-policy.update")
    assert changed[:4] == (
        f"user:{world.admin_a}",
        world.hospital_a,
        f"Organization/{world.hospital_a}",
        "success",
    )
    assert orjson.loads(changed[4]) == {"from": "clinical", "to": "all"}


async def test_the_mfa_policy_all_asks_an_admin_for_a_second_factor_at_the_next_login(
    world: World,
) -> None:
    settings = world.platform.organisation_settings
    with pytest.raises(ApiError) as invalid:
        await settings.set_mfa_policy(_admin_a(world), world.hospital_a, "sometimes")
    assert [error.pointer for error in invalid.value.errors] == ["/mfa_policy"]
    admin = Browser(world.http, "admin@klinikum-a.example", PASSWORD)
    await admin.login()
    assert admin.totp_secret is None, "under the clinical policy an admin needs none"
    await settings.set_mfa_policy(_admin_a(world), world.hospital_a, "all")
    world.http.cookies.clear()
    await admin.login()
    assert admin.totp_secret is not None, "enrolled at the next login"


async def test_the_hospitals_login_is_set_changed_and_removed_without_showing_its_secret(
    world: World,
) -> None:
    settings = world.platform.organisation_settings
    admin = _admin_a(world)
    secret = "s3cr3t-" + secrets.token_hex(8)
    change = UpstreamChange("https://idp.klinikum-a.example/", "medicus", secret, False, True)
    await settings.set_upstream(admin, world.hospital_a, change)
    shown = await settings.sign_in(admin, world.hospital_a)
    assert shown.upstream is not None
    assert (shown.upstream.issuer, shown.upstream.client_id) == (
        "https://idp.klinikum-a.example",
        "medicus",
    )
    assert shown.upstream.has_secret
    assert shown.upstream.trust_upstream_mfa
    assert secret not in repr(shown)
    assert shown.callback_url.endswith("/login/upstream/callback")
    [(stored,)] = await rows(world.platform, "SELECT client_secret FROM upstream_idp")
    assert secret not in stored, "stored encrypted"

    kept = UpstreamChange("https://idp2.klinikum-a.example", "medicus-2")
    await settings.set_upstream(admin, world.hospital_a, kept)
    assert await rows(world.platform, "SELECT client_secret FROM upstream_idp") == [(stored,)]
    changed = await settings.sign_in(admin, world.hospital_a)
    assert changed.upstream is not None
    assert (changed.upstream.issuer, changed.upstream.has_secret) == (
        "https://idp2.klinikum-a.example",
        True,
    )
    assert not changed.upstream.trust_upstream_mfa

    forgotten = UpstreamChange("https://idp2.klinikum-a.example", "medicus-2", forget_secret=True)
    await settings.set_upstream(admin, world.hospital_a, forgotten)
    after = await settings.sign_in(admin, world.hospital_a)
    assert after.upstream is not None
    assert not after.upstream.has_secret

    await settings.remove_upstream(admin, world.hospital_a)
    assert (await settings.sign_in(admin, world.hospital_a)).upstream is None
    with pytest.raises(ApiError) as again:
        await settings.remove_upstream(admin, world.hospital_a)
    assert again.value.status == 404
    configured = await _entries(world, "iam.upstream.configure")
    assert [entry[3] for entry in configured] == ["success"] * 3
    assert all(secret not in str(entry) for entry in configured)
    [removed] = await _entries(world, "iam.upstream.remove")
    assert removed[:4] == (
        f"user:{world.admin_a}",
        world.hospital_a,
        f"Organization/{world.hospital_a}",
        "success",
    )


@pytest.mark.parametrize(
    ("issuer", "client_id", "secret", "field"),
    [
        ("http://idp.example", "medicus", None, "issuer"),
        ("idp.example", "medicus", None, "issuer"),
        ("https://idp.example?x=1", "medicus", None, "issuer"),
        ("https://idp.example/" + "a" * 500, "medicus", None, "issuer"),
        ("https://idp.example", "", None, "client_id"),
        ("https://idp.example", "m" * 256, None, "client_id"),
        ("https://idp.example", "medicus", "s" * 1001, "client_secret"),
    ],
)
async def test_bad_upstream_values_are_refused_and_change_nothing(
    world: World, issuer: str, client_id: str, secret: str | None, field: str
) -> None:
    settings = world.platform.organisation_settings
    with pytest.raises(ApiError) as refused:
        await settings.set_upstream(
            _admin_a(world), world.hospital_a, UpstreamChange(issuer, client_id, secret)
        )
    assert refused.value.status == 422
    assert [error.pointer for error in refused.value.errors] == [f"/{field}"]
    assert await count(world.platform, "upstream_idp") == 0
