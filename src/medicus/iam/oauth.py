"""The OAuth 2.0 / OpenID Connect provider's rules: authorization requests, the token endpoint's
three grants, client authentication, introspection (RFC 7662) and revocation (RFC 7009).

Hand-written on top of joserfc: authlib's server classes are synchronous and framework-bound
(Flask/Django), while every step here reads and writes the async database in one transaction.

- Authorization code with PKCE (S256 only, for every client); redirect URIs match exactly;
  codes live 60 s, are stored hashed and redeemable once: a replay revokes what they issued
  (the refresh tokens and, through the revocation feed, the access tokens of its grant).
- Refresh tokens rotate; a used one presented again revokes its whole family, access tokens
  included.
- Client credentials for backend services authenticated with `private_key_jwt` (SMART Backend
  Services): ES384/RS384/ES256 assertions, signed by a key of the client's registered JWKS, for
  this token endpoint, short-lived and never replayed.

One module over 500 lines on purpose: the grants share client authentication, the code and
token families and their revocation; apart, one security model would be spread over files
that must change together.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy.ext.asyncio import AsyncSession

from medicus.audit.service import AuditRecord, AuditTrail, Outcome
from medicus.core.crypto import constant_time_equal, new_token, token_hash
from medicus.core.db import Database, utc_now
from medicus.core.errors import ApiError
from medicus.core.ids import new_id
from medicus.iam import repository, token_repository
from medicus.iam.login import BrowserSession
from medicus.iam.models import AuthorizationCodeRow, OAuthClientRow, RefreshTokenRow
from medicus.iam.roles import ROLE_SCOPES, ClientKind, Role
from medicus.iam.scopes import ScopeError, ScopeSet, intersect, parse_scopes
from medicus.iam.tokens import InvalidToken, Principal, TokenGrant, TokenService

CODE_LIFETIME = dt.timedelta(seconds=60)
ASSERTION_MAX_LIFETIME = dt.timedelta(minutes=5)
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_ALGORITHMS = ["ES384", "RS384", "ES256"]
_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")


class OAuthError(Exception):
    """An error in RFC 6749's terms: `error` code, description and HTTP status."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status


class AuthorizeError(OAuthError):
    """An authorization request error; `redirect_uri` is set when it may be reported to the
    client by redirect (RFC 6749 §4.1.2.1), and None when the user must be told instead."""

    def __init__(self, error: str, description: str, redirect_uri: str | None, state: str | None):
        super().__init__(error, description)
        self.redirect_uri = redirect_uri
        self.state = state


@dataclass(frozen=True)
class AuthorizationRequest:
    client_id: str
    redirect_uri: str
    scope: ScopeSet
    state: str | None
    code_challenge: str
    nonce: str | None


def pkce_challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _grantable(requested: ScopeSet, *limits: ScopeSet) -> ScopeSet | None:
    """What of the request can be granted within `limits` (the client's registration, the
    user's role); None when that misses what the request is for: none of the resource scopes
    it asks for, or nothing at all. RFC 6749 then answers `invalid_scope`, rather than issuing
    a token that grants none of it."""
    granted = intersect(requested, *limits)
    if granted.resources or (granted.other and not requested.resources):
        return granted
    return None


class OAuthService:
    def __init__(
        self,
        database: Database,
        audit: AuditTrail,
        tokens: TokenService,
        token_endpoint: str,
        fhir_base_url: str,
        refresh_lifetime: dt.timedelta,
        resource_types: Collection[str],
    ) -> None:
        self._database = database
        self._audit = audit
        self._tokens = tokens
        self._token_endpoint = token_endpoint
        self._fhir_base_url = fhir_base_url
        self._refresh_lifetime = refresh_lifetime
        self._resource_types = resource_types

    def _requested_scope(self, text: str) -> ScopeSet:
        """A scope a client asks for: valid SMART, for FHIR resource types that exist."""
        try:
            return parse_scopes(text, self._resource_types)
        except ScopeError as error:
            raise OAuthError("invalid_scope", str(error)) from None

    # -- authorization endpoint ------------------------------------------------------------

    async def validate_authorization(self, query: Mapping[str, str]) -> AuthorizationRequest:
        """Check an authorization request before the user is asked to log in."""
        client_id, state = query.get("client_id", ""), query.get("state")
        async with self._database.snapshot() as session:
            client = await token_repository.client(session, client_id)
        if client is None or not client.active or client.kind != ClientKind.PUBLIC:
            raise AuthorizeError("invalid_client", "There is no such application.", None, state)
        registered = orjson.loads(client.redirect_uris)
        redirect_uri = query.get("redirect_uri") or (registered[0] if len(registered) == 1 else "")
        if redirect_uri not in registered:
            raise AuthorizeError(
                "invalid_request", "The redirect URI is not registered.", None, state
            )

        def refuse(error: str, description: str) -> AuthorizeError:
            return AuthorizeError(error, description, redirect_uri, state)

        if query.get("response_type") != "code":
            raise refuse("unsupported_response_type", "Only response_type=code is supported.")
        if not query.get("code_challenge") or query.get("code_challenge_method") != "S256":
            raise refuse("invalid_request", "PKCE with code_challenge_method=S256 is required.")
        audience = query.get("aud")
        if audience is not None and audience.rstrip("/") != self._fhir_base_url:
            raise refuse("invalid_request", f"aud must be {self._fhir_base_url}.")
        try:
            scope = self._requested_scope(query.get("scope", ""))
        except OAuthError as error:
            raise refuse(error.error, error.description) from None
        if _grantable(scope, parse_scopes(client.scope)) is None:
            raise refuse("invalid_scope", "None of the requested scopes is open to this app.")
        return AuthorizationRequest(
            client_id=client_id,
            redirect_uri=redirect_uri,
            scope=scope,
            state=state,
            code_challenge=query["code_challenge"],
            nonce=query.get("nonce"),
        )

    async def issue_code(self, request: AuthorizationRequest, login: BrowserSession) -> str:
        """An authorization code for a logged-in user who works for an organisation; an
        AuthorizeError (`invalid_scope`, to the client) if none of the requested scopes may be
        granted to the user's role."""
        assert login.organisation_id is not None
        assert login.role is not None
        code = new_token()
        async with self._database.transaction() as session:
            client = await token_repository.client(session, request.client_id)
            assert client is not None
            granted = _grantable(request.scope, parse_scopes(client.scope), _role_scope(login.role))
            if granted is None:
                raise AuthorizeError(
                    "invalid_scope",
                    f"None of the requested scopes may be granted to a {login.role}.",
                    request.redirect_uri,
                    request.state,
                )
            now = utc_now()
            await token_repository.add(
                session,
                AuthorizationCodeRow(
                    code_hash=token_hash(code),
                    client_id=client.client_id,
                    user_id=login.user_id,
                    organisation_id=login.organisation_id,
                    session_hash=login.id_hash,
                    redirect_uri=request.redirect_uri,
                    scope=granted.to_string(),
                    code_challenge=request.code_challenge,
                    nonce=request.nonce,
                    auth_time=login.authenticated_at or now,
                    expires_at=now + CODE_LIFETIME,
                ),
            )
        return code

    # -- token endpoint ----------------------------------------------------------------------

    async def token(self, form: Mapping[str, str]) -> dict[str, Any]:
        await self._tokens.prepare()
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            return await self._authorization_code(form)
        if grant_type == "refresh_token":
            return await self._refresh(form)
        if grant_type == "client_credentials":
            return await self._client_credentials(form)
        raise OAuthError("unsupported_grant_type", f"grant_type '{grant_type}' is not supported.")

    async def _authorization_code(self, form: Mapping[str, str]) -> dict[str, Any]:
        async with self._database.transaction() as session:
            client = await self._authenticate(session, form, allow_public=True)
            now = utc_now()
            row, first = await token_repository.take_code(
                session, token_hash(form.get("code", "")), now
            )
            if row is None or row.client_id != client.client_id:
                raise OAuthError("invalid_grant", "The authorization code is not valid.")
            if not first:
                if row.family_id:
                    await self._revoke_grant(session, row.family_id)
                await self._audit_denied(session, row.user_id, client, "code-replayed")
                error = OAuthError("invalid_grant", "The authorization code was used already.")
            elif row.expires_at <= now:
                error = OAuthError("invalid_grant", "The authorization code has expired.")
            elif form.get("redirect_uri", row.redirect_uri) != row.redirect_uri:
                error = OAuthError("invalid_grant", "redirect_uri differs from the request's.")
            elif not _VERIFIER.match(form.get("code_verifier", "")) or not constant_time_equal(
                pkce_challenge(form["code_verifier"]), row.code_challenge
            ):
                error = OAuthError("invalid_grant", "The PKCE code_verifier does not match.")
            else:
                return await self._issue_for_user(session, client, row, now)
        raise error

    async def _issue_for_user(
        self,
        session: AsyncSession,
        client: OAuthClientRow,
        code: AuthorizationCodeRow,
        now: dt.datetime,
    ) -> dict[str, Any]:
        family_id = new_id()
        grant = await self._user_grant(
            session, client, code.user_id, code.organisation_id, code.scope, family_id
        )
        await token_repository.set_code_family(session, code.code_hash, family_id)
        response = await self._tokens_for(session, grant, family_id, now)
        if "openid" in parse_scopes(code.scope).other:
            user = await repository.user(session, code.user_id)
            assert user is not None
            response["id_token"] = await self._tokens.issue_id_token(
                grant,
                code.auth_time,
                code.nonce,
                {"email": user.email, "name": user.display_name, "org": grant.organisation_id},
            )
        await self._audit_issued(session, grant, "authorization_code")
        return response

    async def _user_grant(
        self,
        session: AsyncSession,
        client: OAuthClientRow,
        user_id: str,
        organisation_id: str,
        scope: str,
        family_id: str,
    ) -> TokenGrant:
        """The grant for a user as things stand now: a disabled user or a lost membership
        ends it; a changed role narrows it."""
        user = await repository.user(session, user_id)
        membership = await repository.membership(session, user_id, organisation_id)
        if user is None or not user.active or membership is None or not membership.active:
            raise OAuthError("invalid_grant", "The user may no longer sign in here.")
        granted = _grantable(parse_scopes(scope), _role_scope(membership.role))
        if granted is None:
            raise OAuthError("invalid_scope", "None of the scopes is open to the user's role now.")
        return TokenGrant(
            subject=user_id,
            kind="user",
            organisation_id=organisation_id,
            role=membership.role,
            client_id=client.client_id,
            scope=granted.to_string(),
            fhir_user=(
                f"{self._fhir_base_url}/Patient/{membership.patient_id}"
                if membership.role == Role.PATIENT and membership.patient_id
                else f"{self._fhir_base_url}/Practitioner/{user_id}"
            ),
            grant_id=family_id,
        )

    async def _tokens_for(
        self, session: AsyncSession, grant: TokenGrant, family_id: str, now: dt.datetime
    ) -> dict[str, Any]:
        response: dict[str, Any] = {
            "access_token": await self._tokens.issue_access_token(grant),
            "token_type": "Bearer",
            "expires_in": int(self._tokens.lifetime.total_seconds()),
            "scope": grant.scope,
        }
        if {"offline_access", "online_access"} & parse_scopes(grant.scope).other:
            refresh = new_token()
            await token_repository.add(
                session,
                RefreshTokenRow(
                    token_hash=token_hash(refresh),
                    family_id=family_id,
                    client_id=grant.client_id,
                    user_id=grant.subject,
                    organisation_id=grant.organisation_id,
                    scope=grant.scope,
                    issued_at=now,
                    expires_at=now + self._refresh_lifetime,
                ),
            )
            response["refresh_token"] = refresh
        return response

    async def _refresh(self, form: Mapping[str, str]) -> dict[str, Any]:
        async with self._database.transaction() as session:
            client = await self._authenticate(session, form, allow_public=True)
            now = utc_now()
            row, first = await token_repository.use_refresh_token(
                session, token_hash(form.get("refresh_token", "")), now
            )
            if row is None or row.client_id != client.client_id:
                raise OAuthError("invalid_grant", "The refresh token is not valid.")
            if not first and not row.revoked:
                await self._revoke_grant(session, row.family_id)
                await self._audit_denied(session, row.user_id, client, "refresh-token-reused")
                error = OAuthError(
                    "invalid_grant", "The refresh token was used already; its family is revoked."
                )
            elif row.revoked or row.expires_at <= now:
                error = OAuthError("invalid_grant", "The refresh token is revoked or expired.")
            else:
                scope = row.scope
                if "scope" in form:
                    narrowed = _grantable(self._requested_scope(form["scope"]), parse_scopes(scope))
                    if narrowed is None:
                        raise OAuthError("invalid_scope", "None of the scopes was granted.")
                    scope = narrowed.to_string()
                grant = await self._user_grant(
                    session, client, row.user_id, row.organisation_id, scope, row.family_id
                )
                response = await self._tokens_for(session, grant, row.family_id, now)
                await self._audit_issued(session, grant, "refresh_token")
                return response
        raise error

    async def _client_credentials(self, form: Mapping[str, str]) -> dict[str, Any]:
        async with self._database.transaction() as session:
            client = await self._authenticate(session, form, allow_public=False)
            assert client.organisation_id is not None, "a backend service has an owner"
            requested = self._requested_scope(form.get("scope", ""))
            granted = _grantable(requested, parse_scopes(client.scope))
            if granted is None:
                raise OAuthError("invalid_scope", "None of the requested scopes is granted.")
            grant = TokenGrant(
                subject=client.client_id,
                kind="service",
                organisation_id=client.organisation_id,
                role=str(Role.SERVICE),
                client_id=client.client_id,
                scope=granted.to_string(),
            )
            response = {
                "access_token": await self._tokens.issue_access_token(grant),
                "token_type": "Bearer",
                "expires_in": int(self._tokens.lifetime.total_seconds()),
                "scope": grant.scope,
            }
            await self._audit_issued(session, grant, "client_credentials")
        return response

    async def _revoke_grant(self, session: AsyncSession, family_id: str) -> None:
        """End a grant: its refresh tokens and, at once, the access tokens issued under it."""
        await token_repository.revoke_family(session, family_id)
        await self._tokens.revoke_grant(session, family_id)

    # -- client authentication ---------------------------------------------------------------

    async def _authenticate(
        self, session: AsyncSession, form: Mapping[str, str], allow_public: bool
    ) -> OAuthClientRow:
        if "client_assertion" in form or "client_assertion_type" in form:
            return await self._authenticate_with_assertion(session, form)
        client = await token_repository.client(session, form.get("client_id", ""))
        if (
            allow_public
            and client is not None
            and client.active
            and client.kind == ClientKind.PUBLIC
        ):
            return client
        raise OAuthError("invalid_client", "The client could not be authenticated.", 401)

    async def _authenticate_with_assertion(
        self, session: AsyncSession, form: Mapping[str, str]
    ) -> OAuthClientRow:
        failure = OAuthError("invalid_client", "The client assertion is not valid.", 401)
        if form.get("client_assertion_type") != JWT_BEARER:
            raise failure
        assertion = form.get("client_assertion", "")
        client_id = _unverified_issuer(assertion)
        client = await token_repository.client(session, client_id or "")
        if client is None or not client.active or client.jwks is None:
            raise failure
        if form.get("client_id", client.client_id) != client.client_id:
            raise failure
        try:
            keys = KeySet.import_key_set(orjson.loads(client.jwks))
            token = jwt.decode(assertion, keys, algorithms=ASSERTION_ALGORITHMS)
            jwt.JWTClaimsRegistry(
                leeway=30,
                iss={"essential": True, "value": client.client_id},
                sub={"essential": True, "value": client.client_id},
                aud={"essential": True, "value": self._token_endpoint},
                exp={"essential": True},
                jti={"essential": True},
            ).validate(token.claims)
        except (JoseError, ValueError):
            raise failure from None
        expires = dt.datetime.fromtimestamp(int(token.claims["exp"]), dt.UTC)
        if expires - utc_now() > ASSERTION_MAX_LIFETIME:
            raise OAuthError("invalid_client", "The client assertion lives too long.", 401)
        if not await token_repository.remember_assertion(
            session, client.client_id, str(token.claims["jti"]), expires
        ):
            raise OAuthError("invalid_client", "The client assertion was used already.", 401)
        return client

    # -- introspection and revocation -------------------------------------------------------

    async def introspect(self, form: Mapping[str, str]) -> dict[str, Any]:
        """RFC 7662 for authenticated backend clients; tokens of other organisations are
        reported inactive, so that one hospital cannot learn about another's tokens."""
        async with self._database.transaction() as session:
            caller = await self._authenticate(session, form, allow_public=False)
        token = form.get("token", "")
        try:
            principal = await self._tokens.validate(token)
        except InvalidToken:
            return await self._introspect_refresh_token(token, caller)
        if principal.organisation_id != caller.organisation_id:
            return {"active": False}
        result: dict[str, Any] = {
            "active": True,
            "token_type": "Bearer",
            "scope": principal.scope_text,
            "client_id": principal.client_id,
            "sub": principal.subject,
            "exp": principal.expires_at,
            "iss": self._tokens.issuer,
            "aud": self._tokens.audience,
            "org": principal.organisation_id,
        }
        if principal.fhir_user:
            result["fhirUser"] = principal.fhir_user
        return result

    async def _introspect_refresh_token(self, token: str, caller: OAuthClientRow) -> dict[str, Any]:
        async with self._database.snapshot() as session:
            row = await token_repository.refresh_token(session, token_hash(token))
        usable = (
            row is not None
            and not row.revoked
            and row.used_at is None
            and row.expires_at > utc_now()
            and row.organisation_id == caller.organisation_id
        )
        if not usable or row is None:
            return {"active": False}
        return {
            "active": True,
            "token_type": "refresh_token",
            "scope": row.scope,
            "client_id": row.client_id,
            "sub": row.user_id,
            "exp": int(row.expires_at.timestamp()),
        }

    async def revoke(self, form: Mapping[str, str]) -> None:
        """RFC 7009: revoke a refresh token (and its family) or an access token of the calling
        client. Unknown tokens and tokens of other clients are ignored, as the RFC asks."""
        token = form.get("token", "")
        async with self._database.transaction() as session:
            client = await self._authenticate(session, form, allow_public=True)
            row = await token_repository.refresh_token(session, token_hash(token))
            if row is not None and row.client_id == client.client_id:
                await self._revoke_grant(session, row.family_id)
                await self._audit.append(
                    session,
                    AuditRecord(
                        "iam.token.revoke",
                        f"client:{client.client_id}",
                        organisation=row.organisation_id,
                        target=f"user:{row.user_id}",
                    ),
                )
                return
        try:
            claims = await self._tokens.decode(token)
        except InvalidToken:
            return
        if claims.get("client_id") == client.client_id:
            await self._tokens.revoke_access_token(token)

    # -- userinfo ---------------------------------------------------------------------------

    async def userinfo(self, principal: Principal) -> dict[str, Any]:
        """OpenID Connect userinfo for a user's token that carries the `openid` scope."""
        if principal.kind != "user" or "openid" not in principal.scope.other:
            raise ApiError(403, "userinfo needs a user's access token with the openid scope.")
        async with self._database.snapshot() as session:
            user = await repository.user(session, principal.subject)
        if user is None:
            raise ApiError(404, "The user no longer exists.")
        return {
            "sub": user.id,
            "name": user.display_name,
            "email": user.email,
            "fhirUser": principal.fhir_user,
            "org": principal.organisation_id,
            "role": principal.role,
        }

    # -- audit ------------------------------------------------------------------------------

    async def _audit_issued(self, session: AsyncSession, grant: TokenGrant, how: str) -> None:
        await self._audit.append(
            session,
            AuditRecord(
                "iam.token.issue",
                f"{grant.kind}:{grant.subject}",
                organisation=grant.organisation_id,
                target=f"client:{grant.client_id}",
                detail={"grant_type": how, "scope": grant.scope},
            ),
        )

    async def _audit_denied(
        self, session: AsyncSession, user_id: str, client: OAuthClientRow, reason: str
    ) -> None:
        await self._audit.append(
            session,
            AuditRecord(
                "iam.token.issue",
                f"user:{user_id}",
                outcome=Outcome.DENIED,
                organisation=client.organisation_id,
                target=f"client:{client.client_id}",
                detail={"reason": reason},
            ),
        )


def _role_scope(role: str) -> ScopeSet:
    return parse_scopes(ROLE_SCOPES.get(Role(role), ""))


def _unverified_issuer(assertion: str) -> str | None:
    """The `iss` of a JWT before verification, to find the client whose keys verify it."""
    try:
        payload = assertion.split(".")[1]
        claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError, orjson.JSONDecodeError):
        return None
    issuer = claims.get("iss") if isinstance(claims, dict) else None
    return issuer if isinstance(issuer, str) else None
