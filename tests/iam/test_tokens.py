"""Access-token validation refuses everything that is not a live token of this platform for
this audience: forged, `alg: none`, HMAC confusion, expired, wrong audience, revoked, disabled."""

from __future__ import annotations

import base64
import datetime as dt

import orjson
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey

from medicus.iam.revocations import Revocations
from medicus.iam.tokens import InvalidToken, TokenGrant, TokenService
from medicus.platform import Platform
from tests.iam.conftest import World


def _grant(world: World) -> TokenGrant:
    return TokenGrant(
        subject=world.physician,
        kind="user",
        organisation_id=world.hospital_a,
        role="physician",
        client_id=world.app_client_id,
        scope="openid user/*.rs",
    )


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(data)).rstrip(b"=").decode()


def _variant(platform: Platform, **changes: object) -> TokenService:
    """A token service sharing the platform's keys but differing in one respect."""
    tokens = platform.tokens
    options = {
        "issuer": tokens.issuer,
        "audience": tokens.audience,
        "lifetime": tokens.lifetime,
        **changes,
    }
    return TokenService(
        platform.database,
        platform.signing_keys,
        platform.revocations,
        **options,  # type: ignore[arg-type]
    )


async def _claims_of_valid_token(world: World) -> tuple[dict[str, object], str]:
    token = await world.platform.tokens.issue_access_token(_grant(world))
    return dict(await world.platform.tokens.decode(token)), token


async def test_a_valid_token_gives_the_principal(world: World) -> None:
    token = await world.platform.tokens.issue_access_token(_grant(world))
    principal = await world.platform.tokens.validate(token)
    assert (principal.subject, principal.organisation_id) == (world.physician, world.hospital_a)
    assert principal.actor == f"user:{world.physician}"
    me = (await world.http.get("/api/me", headers={"Authorization": f"Bearer {token}"})).json()
    assert (me["subject"], me["organisation"], me["role"]) == (
        world.physician,
        world.hospital_a,
        "physician",
    )
    assert me["scope"] == "openid user/*.rs"


async def _refused(world: World, token: str, reason: str) -> None:
    with pytest.raises(InvalidToken, match=reason):
        await world.platform.tokens.validate(token)
    response = await world.http.get("/oauth/userinfo", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token"')


async def test_a_forged_signature_is_refused(world: World) -> None:
    claims, token = await _claims_of_valid_token(world)
    kid = jwt.decode(token, (await world.platform.signing_keys.ring()).verifying).header["kid"]
    impostor = ECKey.generate_key("P-256", parameters={"kid": kid})
    forged = jwt.encode({"alg": "ES256", "kid": kid, "typ": "at+jwt"}, claims, impostor)
    await _refused(world, forged, "signature")


async def test_alg_none_is_refused(world: World) -> None:
    claims, _ = await _claims_of_valid_token(world)
    unsigned = f"{_b64({'alg': 'none', 'typ': 'at+jwt'})}.{_b64(claims)}."
    await _refused(world, unsigned, "malformed|signature")


async def test_hmac_with_the_public_key_is_refused(world: World) -> None:
    claims, _ = await _claims_of_valid_token(world)
    public = orjson.dumps((await world.platform.signing_keys.ring()).public_jwks)
    confused = jwt.encode({"alg": "HS256", "typ": "at+jwt"}, claims, OctKey.import_key(public))
    await _refused(world, confused, "malformed|signature")


async def test_an_expired_token_is_refused(world: World) -> None:
    stale = _variant(world.platform, lifetime=dt.timedelta(seconds=-120))
    await _refused(world, await stale.issue_access_token(_grant(world)), "exp")


async def test_a_token_for_another_audience_is_refused(world: World) -> None:
    other = _variant(world.platform, audience="https://elsewhere.example/fhir")
    await _refused(world, await other.issue_access_token(_grant(world)), "aud")


async def test_a_token_of_another_issuer_is_refused(world: World) -> None:
    other = _variant(world.platform, issuer="https://elsewhere.example")
    await _refused(world, await other.issue_access_token(_grant(world)), "iss")


async def test_a_revoked_token_is_refused(world: World) -> None:
    token = await world.platform.tokens.issue_access_token(_grant(world))
    assert await world.platform.tokens.revoke_access_token(token)
    await _refused(world, token, "revoked")


async def test_a_token_voided_by_another_process_is_refused_after_a_poll(world: World) -> None:
    token = await world.platform.tokens.issue_access_token(_grant(world))
    other_process = Revocations(world.platform.database, dt.timedelta(minutes=5), 1.0)
    async with world.platform.database.transaction() as session:
        await other_process.void_user_tokens(session, world.physician)
    assert (await world.platform.tokens.validate(token)).subject == world.physician
    await world.platform.revocations.poll()
    await _refused(world, token, "revoked")


async def test_garbage_and_missing_tokens_are_401(world: World) -> None:
    await _refused(world, "not.a.token", "malformed")
    response = await world.http.get("/oauth/userinfo")
    assert response.status_code == 401
    assert "Bearer" in response.headers["www-authenticate"]


async def test_rotation_keeps_old_tokens_valid_and_signs_with_the_new_key(world: World) -> None:
    old_token = await world.platform.tokens.issue_access_token(_grant(world))
    new_kid = await world.platform.signing_keys.rotate()
    new_token = await world.platform.tokens.issue_access_token(_grant(world))
    assert (
        jwt.decode(new_token, (await world.platform.signing_keys.ring()).verifying).header["kid"]
        == new_kid
    )
    assert (await world.platform.tokens.validate(old_token)).subject == world.physician
    published = {key["kid"] for key in (await world.http.get("/oauth/jwks")).json()["keys"]}
    assert new_kid in published
    assert len(published) == 2
