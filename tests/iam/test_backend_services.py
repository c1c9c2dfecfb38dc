"""SMART Backend Services: a connector authenticates with private_key_jwt and gets a system/*
token; assertions that are replayed, wrongly signed, aimed elsewhere or too long-lived fail."""

from __future__ import annotations

import time
import uuid

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from medicus.platform import Platform
from tests.iam.conftest import World

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


class Connector:
    """A backend service with its own key pair; the platform knows only the public half."""

    def __init__(self, key: ECKey | RSAKey, algorithm: str) -> None:
        self.key = key
        self.algorithm = algorithm
        self.client_id = ""

    def assertion(self, audience: str, lifetime: int = 240, **overrides: object) -> str:
        now = int(time.time())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": audience,
            "exp": now + lifetime,
            "iat": now,
            "jti": str(uuid.uuid4()),
            **overrides,
        }
        header = {"alg": self.algorithm, "kid": self.key.kid, "typ": "JWT"}
        return jwt.encode(header, claims, self.key, algorithms=[self.algorithm])


async def _register(platform: Platform, organisation: str, connector: Connector) -> None:
    jwks = {"keys": [connector.key.as_dict(private=False)]}
    async with platform.database.transaction() as session:
        connector.client_id = await platform.identity.create_client(
            session,
            "system:test",
            "KIS connector",
            organisation,
            "system/Patient.cruds system/Observation.cruds system/Encounter.rs",
            jwks=jwks,
        )


@pytest.fixture
async def connector(world: World) -> Connector:
    key = ECKey.generate_key("P-384", parameters={"kid": "connector-1"})
    registered = Connector(key, "ES384")
    await _register(world.platform, world.hospital_a, registered)
    return registered


async def _token(world: World, assertion: str, scope: str = "system/*.rs") -> tuple[int, dict]:
    response = await world.http.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "scope": scope,
            "client_assertion_type": CLIENT_ASSERTION_TYPE,
            "client_assertion": assertion,
        },
    )
    return response.status_code, response.json()


async def test_a_connector_gets_a_system_token(world: World, connector: Connector) -> None:
    status, body = await _token(world, connector.assertion(world.platform.endpoints.token))
    assert status == 200, body
    assert set(body["scope"].split()) == {
        "system/Patient.rs",
        "system/Observation.rs",
        "system/Encounter.rs",
    }
    assert "refresh_token" not in body
    principal = await world.platform.tokens.validate(body["access_token"])
    assert (principal.kind, principal.subject) == ("service", connector.client_id)
    assert principal.organisation_id == world.hospital_a


async def test_an_rs384_connector_works_too(world: World) -> None:
    connector = Connector(RSAKey.generate_key(2048, parameters={"kid": "rsa-1"}), "RS384")
    await _register(world.platform, world.hospital_a, connector)
    status, body = await _token(world, connector.assertion(world.platform.endpoints.token))
    assert status == 200, body


async def test_a_replayed_assertion_is_refused(world: World, connector: Connector) -> None:
    assertion = connector.assertion(world.platform.endpoints.token)
    assert (await _token(world, assertion))[0] == 200
    status, body = await _token(world, assertion)
    assert (status, body["error"]) == (401, "invalid_client")


@pytest.mark.parametrize(
    "defect",
    ["wrong-key", "wrong-audience", "too-long-lived", "expired", "wrong-issuer", "garbage"],
)
async def test_bad_assertions_are_refused(world: World, connector: Connector, defect: str) -> None:
    endpoint = world.platform.endpoints.token
    if defect == "wrong-key":
        connector.key = ECKey.generate_key("P-384", parameters={"kid": "connector-1"})
        assertion = connector.assertion(endpoint)
    elif defect == "wrong-audience":
        assertion = connector.assertion("https://elsewhere.example/oauth/token")
    elif defect == "too-long-lived":
        assertion = connector.assertion(endpoint, lifetime=3600)
    elif defect == "expired":
        assertion = connector.assertion(endpoint, lifetime=-300)
    elif defect == "wrong-issuer":
        assertion = connector.assertion(endpoint, iss="someone-else")
    else:
        assertion = "e30.e30.e30"
    status, body = await _token(world, assertion)
    assert (status, body["error"]) == (401, "invalid_client")


@pytest.mark.parametrize("scope", ["system/Foo.rs", "system/Patient.rs system/Foo.r", ""])
async def test_a_scope_for_no_fhir_resource_type_or_no_scope_is_invalid(
    world: World, connector: Connector, scope: str
) -> None:
    status, body = await _token(world, connector.assertion(world.platform.endpoints.token), scope)
    assert (status, body["error"]) == (400, "invalid_scope")


async def test_scopes_outside_the_registration_are_not_granted(
    world: World, connector: Connector
) -> None:
    status, body = await _token(
        world, connector.assertion(world.platform.endpoints.token), scope="system/Condition.rs"
    )
    assert (status, body["error"]) == (400, "invalid_scope")


async def test_a_public_client_cannot_use_client_credentials(world: World) -> None:
    response = await world.http.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": world.app_client_id,
            "scope": "system/*.rs",
        },
    )
    assert (response.status_code, response.json()["error"]) == (401, "invalid_client")


async def test_introspection_reports_own_tokens_only(world: World, connector: Connector) -> None:
    endpoint = world.platform.endpoints.token
    _, issued = await _token(world, connector.assertion(endpoint))
    other = Connector(ECKey.generate_key("P-384", parameters={"kid": "b-1"}), "ES384")
    await _register(world.platform, world.hospital_b, other)

    async def introspect(caller: Connector) -> dict[str, object]:
        response = await world.http.post(
            "/oauth/introspect",
            data={
                "token": issued["access_token"],
                "client_assertion_type": CLIENT_ASSERTION_TYPE,
                "client_assertion": caller.assertion(endpoint),
            },
        )
        assert response.status_code == 200
        return response.json()

    own = await introspect(connector)
    assert own["active"] is True
    assert own["client_id"] == connector.client_id
    assert await introspect(other) == {"active": False}


async def test_token_endpoint_errors_are_rfc6749(world: World) -> None:
    response = await world.http.post("/oauth/token", data={"grant_type": "password"})
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"
    response = await world.http.post("/oauth/token", json={"grant_type": "client_credentials"})
    assert (response.status_code, response.json()["error"]) == (400, "invalid_request")
