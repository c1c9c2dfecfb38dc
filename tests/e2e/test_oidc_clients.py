"""Standard OAuth/OIDC client libraries against the real server: authlib completes the
authorization code flow with PKCE, refreshes and revokes; joserfc validates the id_token via
JWKS; everything is set up through the operators' CLI."""

from __future__ import annotations

import secrets

import httpx
import pytest
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.httpx_client import AsyncOAuth2Client
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.e2e.conftest import RunningServer, admin, run_medicus
from tests.iam.browser import Browser

PASSWORD = "a long and unusual passphrase 7"
REDIRECT_URI = "http://127.0.0.1:9/callback"


@pytest.fixture
def provisioned(server: RunningServer) -> dict[str, str]:
    organisation = admin(
        server, "create-org", "Klinikum E2E", "--type", "hospital", "--iknr", "262200001"
    )
    user = admin(
        server,
        "create-user",
        "dr.e2e@klinikum-e2e.example",
        "--org",
        "262200001",
        "--role",
        "physician",
        "--name",
        "Dr. E2E",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    app = admin(
        server,
        "create-client",
        "Ward app",
        "--org",
        "Klinikum E2E",
        "--redirect-uri",
        REDIRECT_URI,
        "--scope",
        "openid fhirUser profile offline_access user/*.rs",
    )
    return {"organisation": organisation["id"], "user": user["id"], "client_id": app["client_id"]}


async def test_authlib_completes_code_flow_refresh_and_revocation(
    server: RunningServer, provisioned: dict[str, str]
) -> None:
    async with httpx.AsyncClient() as plain:
        discovery = (await plain.get(f"{server.base_url}/.well-known/openid-configuration")).json()
        jwks = KeySet.import_key_set((await plain.get(discovery["jwks_uri"])).json())
    client = AsyncOAuth2Client(
        client_id=provisioned["client_id"],
        redirect_uri=REDIRECT_URI,
        scope="openid fhirUser offline_access user/Patient.rs",
        code_challenge_method="S256",
        token_endpoint_auth_method="none",
    )
    verifier = secrets.token_urlsafe(64)
    nonce = secrets.token_urlsafe(16)
    url, state = client.create_authorization_url(
        discovery["authorization_endpoint"], code_verifier=verifier, nonce=nonce
    )

    async with httpx.AsyncClient(base_url=server.base_url) as http:
        browser = Browser(http, "dr.e2e@klinikum-e2e.example", PASSWORD)
        response = await browser.follow(await http.get(url))
    assert response.status_code == 302
    callback = response.headers["location"]
    assert callback.startswith(REDIRECT_URI)

    token = await client.fetch_token(
        discovery["token_endpoint"],
        authorization_response=callback,
        code_verifier=verifier,
        state=state,
    )
    assert token["token_type"] == "Bearer"

    claims = jwt.decode(token["id_token"], jwks, algorithms=["ES256"]).claims
    jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": discovery["issuer"]},
        aud={"essential": True, "value": provisioned["client_id"]},
        nonce={"essential": True, "value": nonce},
        exp={"essential": True},
        iat={"essential": True},
    ).validate(claims)
    assert claims["sub"] == provisioned["user"]
    assert claims["fhirUser"].endswith(f"/Practitioner/{provisioned['user']}")

    userinfo = await client.get(discovery["userinfo_endpoint"])
    assert userinfo.json()["email"] == "dr.e2e@klinikum-e2e.example"

    refreshed = await client.refresh_token(discovery["token_endpoint"])
    assert refreshed["refresh_token"] != token["refresh_token"]

    revoked = await client.revoke_token(
        discovery["revocation_endpoint"],
        token=refreshed["refresh_token"],
        token_type_hint="refresh_token",
    )
    assert revoked.status_code == 200
    with pytest.raises(OAuthError, match="invalid_grant"):
        await client.refresh_token(
            discovery["token_endpoint"], refresh_token=refreshed["refresh_token"]
        )


def test_admin_cli_refuses_with_one_sentence(
    server: RunningServer, provisioned: dict[str, str], tmp_path
) -> None:
    duplicate = run_medicus(
        "admin",
        "create-org",
        "Again",
        "--type",
        "hospital",
        "--iknr",
        "262200001",
        environment=server.environment,
    )
    assert duplicate.returncode == 1
    assert duplicate.stderr.strip() == (
        "medicus: An organisation with IK number 262200001 exists already."
    )
    weak = run_medicus(
        "admin",
        "create-user",
        "x@klinikum-e2e.example",
        "--org",
        "262200001",
        "--role",
        "nurse",
        "--password-stdin",
        environment=server.environment,
        stdin="password\n",
    )
    assert weak.returncode == 1
    assert len(weak.stderr.strip().splitlines()) == 1
    bad_jwks = tmp_path / "jwks.json"
    bad_jwks.write_text('{"keys": [{"kty": "EC"}]}')
    client = run_medicus(
        "admin",
        "create-client",
        "Connector",
        "--org",
        "262200001",
        "--jwks-file",
        str(bad_jwks),
        "--scope",
        "system/*.rs",
        environment=server.environment,
    )
    assert client.returncode == 1
    assert "JWKS" in client.stderr
    unknown = run_medicus(
        "admin",
        "create-user",
        "y@x.example",
        "--org",
        "nowhere",
        "--role",
        "nurse",
        environment=server.environment,
    )
    assert unknown.stderr.strip() == "medicus: There is no organisation 'nowhere'."
