"""Login through a hospital's own OpenID Connect provider (one per organisation).

medicus is the relying party here: authorization code flow with PKCE, state and nonce; the
code is exchanged with authlib's client, the ID token verified against the provider's JWKS.
The upstream identity (issuer, subject) is linked to a medicus user once: the first time by the
verified e-mail address of someone who is already a member of that organisation (invited or
created by its admin) — an upstream provider never creates medicus accounts by itself.
"""

from __future__ import annotations

import datetime as dt
import secrets
import warnings
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
from authlib.deprecate import AuthlibDeprecationWarning
from authlib.integrations.base_client.errors import OAuthError
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy.ext.asyncio import AsyncSession

from medicus.audit.service import AuditRecord, AuditTrail, Outcome
from medicus.core.crypto import SecretBox, new_token, token_hash
from medicus.core.db import Database, utc_now
from medicus.core.i18n import translatable
from medicus.iam import repository
from medicus.iam.login import LoginService

with warnings.catch_warnings():
    # authlib 1.9 announces a move of its httpx client to the httpx2 package; the client works
    # as it is, and operators should not see the notice on every command.
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.integrations.httpx_client import AsyncOAuth2Client

from medicus.iam.models import (
    ExternalIdentityRow,
    UpstreamIdentityProviderRow,
    UpstreamLoginRow,
    UserRow,
)

PENDING = dt.timedelta(minutes=10)
_PURPOSE = "upstream-login"
_SECRET_PURPOSE = "upstream-client-secret"  # noqa: S105 (a purpose label)
_ALGORITHMS = ["RS256", "ES256", "PS256", "RS384", "ES384"]


class UpstreamLoginFailed(Exception):
    """The upstream login cannot complete; the message is safe to show."""


@dataclass(frozen=True)
class UpstreamProvider:
    organisation_id: str
    organisation_name: str


class UpstreamLogins:
    def __init__(
        self,
        database: Database,
        audit: AuditTrail,
        logins: LoginService,
        box: SecretBox,
        callback_url: str,
        http: httpx.AsyncClient,
    ) -> None:
        self._database = database
        self._audit = audit
        self._logins = logins
        self._box = box
        self._callback_url = callback_url
        self._http = http

    async def providers(self) -> list[UpstreamProvider]:
        """The organisations whose people can log in through their own provider."""
        async with self._database.snapshot() as session:
            rows = await repository.enabled_upstream_idps(session)
        return [UpstreamProvider(org.id, org.name) for _, org in rows]

    async def configure(
        self,
        organisation_id: str,
        issuer: str,
        client_id: str,
        client_secret: str | None,
        trust_upstream_mfa: bool,
        actor: str,
    ) -> None:
        """Set (or replace) the organisation's upstream provider; the secret is encrypted."""
        row = UpstreamIdentityProviderRow(
            organisation_id=organisation_id,
            issuer=issuer.rstrip("/"),
            client_id=client_id,
            client_secret=(
                self._box.encrypt(_SECRET_PURPOSE, client_secret.encode())
                if client_secret
                else None
            ),
            scope="openid email profile",
            trust_upstream_mfa=trust_upstream_mfa,
            enabled=True,
        )
        async with self._database.transaction() as session:
            await repository.save_upstream_idp(session, row)
            await self._audit.append(
                session,
                AuditRecord(
                    "iam.upstream.configure",
                    actor,
                    organisation=organisation_id,
                    target=f"Organization/{organisation_id}",
                    detail={"issuer": row.issuer},
                ),
            )

    async def begin(self, organisation_id: str, next_url: str) -> str:
        """The upstream authorization URL to send the browser to."""
        async with self._database.snapshot() as session:
            provider = await repository.upstream_idp(session, organisation_id)
        if provider is None or not provider.enabled:
            raise UpstreamLoginFailed(translatable("This organisation has no login of its own."))
        discovery = await self._discovery(provider.issuer)
        state, nonce, verifier = new_token(), new_token(16), secrets.token_urlsafe(64)
        async with self._client(provider) as client:
            url, _ = client.create_authorization_url(
                discovery["authorization_endpoint"],
                state=state,
                nonce=nonce,
                code_verifier=verifier,
            )
        pending = UpstreamLoginRow(
            state_hash=token_hash(state),
            organisation_id=organisation_id,
            secrets=self._box.encrypt(
                _PURPOSE, orjson.dumps({"nonce": nonce, "verifier": verifier})
            ),
            next_url=next_url,
            expires_at=utc_now() + PENDING,
        )
        async with self._database.transaction() as session:
            await repository.add(session, pending)
        return str(url)

    async def finish(self, state: str, code: str, client_address: str | None) -> tuple[str, str]:
        """Redeem the upstream answer; returns (medicus session token, next URL)."""
        async with self._database.transaction() as session:
            pending = await repository.take_upstream_login(session, token_hash(state), utc_now())
        if pending is None:
            raise UpstreamLoginFailed(
                translatable("This login has expired or was used; please start again.")
            )
        async with self._database.snapshot() as session:
            provider = await repository.upstream_idp(session, pending.organisation_id)
        if provider is None:
            raise UpstreamLoginFailed(translatable("This organisation has no login of its own."))
        remembered = orjson.loads(self._box.decrypt(_PURPOSE, pending.secrets))
        claims = await self._redeem(provider, code, remembered["verifier"], remembered["nonce"])
        token = await self._session_for(provider, claims, client_address)
        return token, pending.next_url

    async def _redeem(
        self, provider: UpstreamIdentityProviderRow, code: str, verifier: str, nonce: str
    ) -> dict[str, Any]:
        discovery = await self._discovery(provider.issuer)
        try:
            async with self._client(provider) as client:
                tokens = await client.fetch_token(
                    discovery["token_endpoint"], code=code, code_verifier=verifier
                )
            keys = KeySet.import_key_set((await self._http.get(discovery["jwks_uri"])).json())
            id_token = jwt.decode(tokens["id_token"], keys, algorithms=_ALGORITHMS)
            jwt.JWTClaimsRegistry(
                leeway=30,
                iss={"essential": True, "value": provider.issuer},
                aud={"essential": True, "value": provider.client_id},
                nonce={"essential": True, "value": nonce},
                sub={"essential": True},
                exp={"essential": True},
            ).validate(id_token.claims)
        except (httpx.HTTPError, OAuthError, JoseError, KeyError, ValueError) as error:
            reason = type(error).__name__
            raise UpstreamLoginFailed(
                f"The hospital's login answered in a way medicus cannot accept ({reason})."
            ) from None
        return dict(id_token.claims)

    async def _session_for(
        self,
        provider: UpstreamIdentityProviderRow,
        claims: dict[str, Any],
        client_address: str | None,
    ) -> str:
        async with self._database.transaction() as session:
            linked = await repository.external_identity(session, provider.issuer, claims["sub"])
            user = await repository.user(session, linked.user_id) if linked else None
            if user is None:
                user = await self._link_by_email(session, provider, claims)
            membership = await repository.membership(session, user.id, provider.organisation_id)
            if not user.active or membership is None or not membership.active:
                raise UpstreamLoginFailed(
                    translatable("Your account here is suspended; ask your administrator.")
                )
            return await self._logins.start_external(
                session,
                user,
                provider.organisation_id,
                provider.trust_upstream_mfa,
                client_address,
            )

    async def _link_by_email(
        self, session: AsyncSession, provider: UpstreamIdentityProviderRow, claims: dict[str, Any]
    ) -> UserRow:
        email = str(claims.get("email", "")).strip().lower()
        if not email or claims.get("email_verified") is False:
            raise UpstreamLoginFailed(
                translatable("The hospital's login did not confirm an e-mail address.")
            )
        user = await repository.user_by_email(session, email)
        if (
            user is None
            or await repository.membership(session, user.id, provider.organisation_id) is None
        ):
            await self._audit.append(
                session,
                AuditRecord(
                    "iam.upstream.link",
                    "anonymous",
                    outcome=Outcome.DENIED,
                    organisation=provider.organisation_id,
                    detail={"reason": "no-member"},
                ),
            )
            raise UpstreamLoginFailed(
                "There is no medicus account for you at this organisation yet; ask your "
                "administrator for an invitation."
            )
        await repository.add(
            session,
            ExternalIdentityRow(
                issuer=provider.issuer,
                subject=str(claims["sub"]),
                user_id=user.id,
                linked_at=utc_now(),
            ),
        )
        await self._audit.append(
            session,
            AuditRecord(
                "iam.upstream.link",
                f"user:{user.id}",
                organisation=provider.organisation_id,
                target=f"Practitioner/{user.id}",
                detail={"issuer": provider.issuer},
            ),
        )
        return user

    def _client(self, provider: UpstreamIdentityProviderRow) -> AsyncOAuth2Client:
        secret = (
            self._box.decrypt(_SECRET_PURPOSE, provider.client_secret).decode()
            if provider.client_secret
            else None
        )
        return AsyncOAuth2Client(
            client_id=provider.client_id,
            client_secret=secret,
            redirect_uri=self._callback_url,
            scope=provider.scope,
            code_challenge_method="S256",
            token_endpoint_auth_method="client_secret_post" if secret else "none",
        )

    async def _discovery(self, issuer: str) -> dict[str, Any]:
        try:
            response = await self._http.get(f"{issuer}/.well-known/openid-configuration")
            response.raise_for_status()
            document: dict[str, Any] = response.json()
        except (httpx.HTTPError, ValueError):
            raise UpstreamLoginFailed(
                translatable("The hospital's login cannot be reached.")
            ) from None
        return document
