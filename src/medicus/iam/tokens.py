"""Access tokens and ID tokens: short-lived ES256 JWTs (RFC 9068 profile), and their validation.

Validation accepts only ES256 (so `alg: none` and HMAC confusion are refused), only keys of this
platform's JWKS, only this issuer and audience, not after `exp`, and not when the token was
revoked, its grant revoked, the user disabled, the user's membership suspended or changed, or the
user logged out everywhere after the token was issued.
"""

from __future__ import annotations

import datetime as dt
import functools
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from joserfc import jwt
from joserfc.errors import BadSignatureError, DecodeError, JoseError
from sqlalchemy.ext.asyncio import AsyncSession

from medicus.core.db import Database
from medicus.core.ids import new_id
from medicus.iam.keys import ALGORITHM, SigningKeys
from medicus.iam.revocations import Revocations, TokenFacts
from medicus.iam.scopes import ScopeSet, parse_scopes

ACCESS_TOKEN_TYPE = "at+jwt"  # noqa: S105 (a media type, not a secret)
LEEWAY_SECONDS = 30
VERIFIED_CACHE_SIZE = 10_000
_KEY_RELOAD_INTERVAL_SECONDS = 10.0


class InvalidToken(Exception):
    """The token cannot be used; the message says why, in words fit for a WWW-Authenticate."""


@dataclass(frozen=True)
class Principal:
    """Who is calling, as proven by an access token: a user working for an organisation in a
    role, or a service account (backend client) of an organisation."""

    subject: str
    kind: str
    organisation_id: str
    role: str | None
    client_id: str
    scope: ScopeSet
    scope_text: str
    jti: str
    expires_at: int
    fhir_user: str | None = None

    @property
    def actor(self) -> str:
        """How the audit trail names this principal."""
        return f"{self.kind}:{self.subject}"

    @property
    def own_patient_record(self) -> str | None:
        """A patient's own Patient record at their organisation (their `fhirUser`, which
        medicus signed); None for anyone but a patient."""
        if self.kind != "user" or self.role != "patient" or not self.fhir_user:
            return None
        before, marker, record = self.fhir_user.rpartition("Patient/")
        return record if marker and (not before or before.endswith("/")) and record else None


@functools.lru_cache(maxsize=4096)
def _parse_scope(text: str) -> ScopeSet:
    return parse_scopes(text)


@dataclass(frozen=True)
class TokenGrant:
    """What a token is issued for."""

    subject: str
    kind: str
    organisation_id: str
    role: str | None
    client_id: str
    scope: str
    fhir_user: str | None = None
    # The grant (authorization code and the refresh tokens that followed it) the token is
    # issued under, so that revoking the grant voids its access tokens at once.
    grant_id: str | None = None


class TokenService:
    def __init__(
        self,
        database: Database,
        keys: SigningKeys,
        revocations: Revocations,
        issuer: str,
        audience: str,
        lifetime: dt.timedelta,
    ) -> None:
        self._database = database
        self._keys = keys
        self._revocations = revocations
        self.issuer = issuer
        self.audience = audience
        self.lifetime = lifetime
        self._last_reload = 0.0
        self._verified: OrderedDict[str, dict[str, Any]] = OrderedDict()

    async def prepare(self) -> None:
        """Load the signing keys now, outside any transaction the caller is about to open."""
        await self._keys.ring()

    async def issue_access_token(self, grant: TokenGrant) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": grant.subject,
            "aud": self.audience,
            "iat": now,
            "exp": now + int(self.lifetime.total_seconds()),
            "jti": new_id(),
            "client_id": grant.client_id,
            "scope": grant.scope,
            "org": grant.organisation_id,
            "kind": grant.kind,
        }
        if grant.role:
            claims["role"] = grant.role
        if grant.fhir_user:
            claims["fhirUser"] = grant.fhir_user
        if grant.grant_id:
            claims["grant_id"] = grant.grant_id
        return await self._sign(claims, ACCESS_TOKEN_TYPE)

    async def issue_id_token(
        self, grant: TokenGrant, auth_time: dt.datetime, nonce: str | None, extra: dict[str, Any]
    ) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": grant.subject,
            "aud": grant.client_id,
            "iat": now,
            "exp": now + int(self.lifetime.total_seconds()),
            "auth_time": int(auth_time.timestamp()),
            **extra,
        }
        if nonce:
            claims["nonce"] = nonce
        if grant.fhir_user:
            claims["fhirUser"] = grant.fhir_user
        return await self._sign(claims, "JWT")

    async def _sign(self, claims: dict[str, Any], token_type: str) -> str:
        ring = await self._keys.ring()
        header = {"alg": ALGORITHM, "kid": ring.signing.kid, "typ": token_type}
        return jwt.encode(header, claims, ring.signing, algorithms=[ALGORITHM])

    async def decode(self, token: str) -> dict[str, Any]:
        """Signature and claims of a token of ours, checked; no database state consulted.
        A token verified before is taken from a bounded cache (keyed by the whole token, so a
        token with another signature never matches) until its `exp`: clients send the same
        token with many requests, and an ES256 verification costs more than a request."""
        cached = self._verified.get(token)
        if cached is not None and cached["exp"] + LEEWAY_SECONDS > time.time():
            self._verified.move_to_end(token)
            return cached
        claims = await self._verify(token)
        self._verified[token] = claims
        if len(self._verified) > VERIFIED_CACHE_SIZE:
            self._verified.popitem(last=False)
        return claims

    async def _verify(self, token: str) -> dict[str, Any]:
        token_object = await self._verify_signature(token)
        if token_object.header.get("typ") != ACCESS_TOKEN_TYPE:
            raise InvalidToken("the token is not an access token")
        registry = jwt.JWTClaimsRegistry(
            leeway=LEEWAY_SECONDS,
            iss={"essential": True, "value": self.issuer},
            aud={"essential": True, "value": self.audience},
            exp={"essential": True},
            sub={"essential": True},
            jti={"essential": True},
        )
        try:
            registry.validate(token_object.claims)
        except JoseError as error:
            raise InvalidToken(f"the token is not valid here ({error.description})") from None
        return dict(token_object.claims)

    async def _verify_signature(self, token: str) -> jwt.Token:
        ring = await self._keys.ring()
        try:
            return jwt.decode(token, ring.verifying, algorithms=[ALGORITHM])
        except (BadSignatureError, ValueError):
            if time.monotonic() - self._last_reload < _KEY_RELOAD_INTERVAL_SECONDS:
                raise InvalidToken("the token's signature does not verify") from None
        except (DecodeError, JoseError):
            raise InvalidToken("the token is malformed or not signed with ES256") from None
        self._last_reload = time.monotonic()
        ring = await self._keys.reload()
        try:
            return jwt.decode(token, ring.verifying, algorithms=[ALGORITHM])
        except (JoseError, ValueError):
            raise InvalidToken("the token's signature does not verify") from None

    async def validate(self, token: str) -> Principal:
        """The principal a bearer token proves, or InvalidToken. Revocation is checked against
        the in-memory feed (see `revocations`), so this costs no database round trip."""
        claims = await self.decode(token)
        facts = TokenFacts(
            jti=claims["jti"],
            issued_at=float(claims.get("iat", 0)),
            user_id=claims["sub"] if claims.get("kind") == "user" else None,
            organisation_id=claims["org"],
            family_id=claims.get("grant_id"),
        )
        await self._revocations.current()
        if self._revocations.is_revoked(facts):
            raise InvalidToken("the token was revoked")
        return Principal(
            subject=claims["sub"],
            kind=claims.get("kind", "user"),
            organisation_id=claims["org"],
            role=claims.get("role"),
            client_id=claims["client_id"],
            scope=_parse_scope(claims.get("scope", "")),
            scope_text=claims.get("scope", ""),
            jti=claims["jti"],
            expires_at=int(claims["exp"]),
            fhir_user=claims.get("fhirUser"),
        )

    async def revoke_grant(self, session: AsyncSession, grant_id: str) -> None:
        """Void every access token issued under the grant, in the caller's transaction."""
        await self._revocations.revoke_family(session, grant_id)

    async def revoke_access_token(self, token: str) -> bool:
        """Revoke an access token of ours until it expires; False if it is not one."""
        try:
            claims = await self.decode(token)
        except InvalidToken:
            return False
        expires = dt.datetime.fromtimestamp(int(claims["exp"]), dt.UTC)
        async with self._database.transaction() as session:
            await self._revocations.revoke_token(session, claims["jti"], expires)
        return True
