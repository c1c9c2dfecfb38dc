"""Private keys of backend clients kept in the data directory, and getting a token with one.

A real backend service (a hospital's connector) keeps its private key to itself and registers
only the public JWKS. The data directory holds private keys only of clients that medicus sets
up for development (the demo's backend client), so that `medicus admin token` can get a token
for them the way the service itself would: a `private_key_jwt` client assertion (RFC 7523,
ES384) exchanged at the token endpoint for a `client_credentials` grant, which the server
checks, scopes and audits as any other. The files are readable by their owner only (0600) and
their content is never printed or logged.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import httpx
import orjson
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey

CLIENT_KEYS_FOLDER = Path("keys") / "clients"
ASSERTION_ALGORITHM = "ES384"
ASSERTION_SECONDS = 240
CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


class TokenNotIssued(Exception):
    """No token came back; the message is one sentence for the person who asked."""


def new_key() -> ECKey:
    """A fresh P-384 key for ES384 assertions, named by its thumbprint."""
    return ECKey.generate_key("P-384", auto_kid=True)


def public_jwks(key: ECKey) -> dict[str, object]:
    """The JWKS to register for the client: the public half only."""
    return {"keys": [key.as_dict(private=False)]}


def key_path(data_dir: Path, client_id: str) -> Path:
    return data_dir / CLIENT_KEYS_FOLDER / f"{client_id}.jwk"


def save_key(data_dir: Path, client_id: str, key: ECKey) -> Path:
    """Write the private key where `medicus admin token` looks for it, readable by the owner
    only from the moment the file exists."""
    path = key_path(data_dir, client_id)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(orjson.dumps(key.as_dict(private=True)))
    return path


def load_key(path: Path) -> ECKey:
    try:
        return ECKey.import_key(orjson.loads(path.read_bytes()))
    except OSError as error:
        raise TokenNotIssued(f"cannot read the client's key {path}: {error.strerror}") from None
    except (orjson.JSONDecodeError, JoseError, ValueError):
        raise TokenNotIssued(f"{path} does not hold a private EC key (JWK)") from None


def client_assertion(key: ECKey, client_id: str, token_endpoint: str) -> str:
    """A single-use assertion that the client is who it says, for that token endpoint."""
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": token_endpoint,
        "iat": now,
        "exp": now + ASSERTION_SECONDS,
        "jti": str(uuid.uuid4()),
    }
    header = {"alg": ASSERTION_ALGORITHM, "kid": key.kid, "typ": "JWT"}
    return jwt.encode(header, claims, key, algorithms=[ASSERTION_ALGORITHM])


def request_token(public_url: str, client_id: str, key: ECKey, scope: str) -> str:
    """An access token from the server at `public_url`, found through its SMART discovery."""
    discovery = f"{public_url}/.well-known/smart-configuration"
    try:
        with httpx.Client(timeout=30) as client:
            token_endpoint = str(client.get(discovery).raise_for_status().json()["token_endpoint"])
            answer = client.post(
                token_endpoint,
                data={
                    "grant_type": "client_credentials",
                    "scope": scope,
                    "client_assertion_type": CLIENT_ASSERTION_TYPE,
                    "client_assertion": client_assertion(key, client_id, token_endpoint),
                },
            )
    except httpx.HTTPError as error:
        raise TokenNotIssued(
            f"cannot reach medicus at {public_url} ({error}); is `medicus serve` running there?"
        ) from None
    try:
        body = answer.json()
    except ValueError:
        body = {}
    if answer.status_code != 200 or "access_token" not in body:
        reason = body.get("error_description") or body.get("error") or answer.reason_phrase
        raise TokenNotIssued(f"the token endpoint refused: {reason}")
    return str(body["access_token"])
