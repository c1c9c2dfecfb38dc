"""An organisation's settings as its administrators change them: its OAuth clients (apps
and backend services), the hospital's own identity provider its people log in through, and
which of its people must use a second factor; and, for platform admins, the list of
organisations.

One rule, the same as for members (`admin.AdminService`): an organisation's admins act on
their own organisation only, platform admins on any; only platform admins list the
organisations. Every change is audited, and so is every refusal (403). Values are checked
(`settings_checks`) after the caller is allowed and before anything is written. A client
secret is stored encrypted (`upstream`) and never handed out again: the settings say only
whether there is one."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from medicus.audit.service import AuditRecord, AuditTrail
from medicus.core.db import Database, utc_now
from medicus.core.errors import ApiError
from medicus.core.i18n import translatable
from medicus.iam import repository, settings_repository, token_repository
from medicus.iam.admin import authorise_admin
from medicus.iam.models import OAuthClientRow, OrganisationRow
from medicus.iam.revocations import Revocations
from medicus.iam.roles import ClientKind, MfaPolicy
from medicus.iam.scopes import ScopeError
from medicus.iam.service import IdentityService
from medicus.iam.settings_checks import (
    checked_issuer,
    checked_jwks,
    checked_name,
    checked_redirect_uris,
    checked_scope,
    checked_upstream_client,
    invalid,
)
from medicus.iam.tokens import Principal
from medicus.iam.upstream import UpstreamLogins


@dataclass(frozen=True)
class Client:
    """An OAuth client as its organisation's admins see it."""

    client_id: str
    name: str
    kind: ClientKind
    scope: str
    redirect_uris: list[str]
    active: bool
    created_at: dt.datetime


@dataclass(frozen=True)
class OrganisationClients:
    organisation_name: str
    clients: list[Client]


@dataclass(frozen=True)
class Upstream:
    """The hospital's own identity provider, without its secret."""

    issuer: str
    client_id: str
    has_secret: bool
    trust_upstream_mfa: bool


@dataclass(frozen=True)
class SignIn:
    """How the people of an organisation log in."""

    organisation_name: str
    mfa_policy: MfaPolicy
    upstream: Upstream | None
    callback_url: str
    """What to register as redirect URI at the upstream provider."""


@dataclass(frozen=True)
class UpstreamChange:
    """A new or changed upstream provider. `client_secret`: a new secret (None: keep the
    stored one); `forget_secret`: remove the stored one (PKCE only)."""

    issuer: str
    client_id: str
    client_secret: str | None = None
    forget_secret: bool = False
    trust_upstream_mfa: bool = False


@dataclass(frozen=True)
class OrganisationSummary:
    id: str
    name: str
    type: str
    iknr: str | None
    mfa_policy: str
    members: int


def _client(row: OAuthClientRow) -> Client:
    uris = orjson.loads(row.redirect_uris or "[]")
    return Client(
        client_id=row.client_id,
        name=row.name,
        kind=ClientKind(row.kind),
        scope=row.scope,
        redirect_uris=[str(uri) for uri in uris] if isinstance(uris, list) else [],
        active=row.active,
        created_at=row.created_at,
    )


class OrganisationSettings:
    def __init__(
        self,
        database: Database,
        audit: AuditTrail,
        identity: IdentityService,
        upstream: UpstreamLogins,
        revocations: Revocations,
        upstream_callback_url: str,
    ) -> None:
        self._database = database
        self._audit = audit
        self._identity = identity
        self._upstream = upstream
        self._revocations = revocations
        self._callback_url = upstream_callback_url

    async def _authorise(self, caller: Principal, organisation_id: str | None, action: str) -> None:
        await authorise_admin(self._audit, caller, organisation_id, action)

    async def _audited(
        self,
        session: AsyncSession,
        caller: Principal,
        action: str,
        organisation_id: str,
        target: str,
        detail: dict[str, str],
    ) -> None:
        record = AuditRecord(
            action, caller.actor, organisation=organisation_id, target=target, detail=detail
        )
        await self._audit.append(session, record)

    async def clients(self, caller: Principal, organisation_id: str) -> OrganisationClients:
        """The organisation's apps and backend services, active ones first."""
        await self._authorise(caller, organisation_id, "iam.client.list")
        async with self._database.snapshot() as session:
            organisation = await _organisation(session, organisation_id)
            rows = await settings_repository.clients_of(session, organisation_id)
        return OrganisationClients(organisation.name, [_client(row) for row in rows])

    async def register_app(
        self,
        caller: Principal,
        organisation_id: str,
        name: str,
        redirect_uris: Sequence[str],
        scope: str,
    ) -> str:
        """Register a public app (authorization code with PKCE); its client_id."""
        await self._authorise(caller, organisation_id, "iam.client.create")
        name = checked_name(name)
        uris = checked_redirect_uris(redirect_uris)
        scope = checked_scope(scope, ClientKind.PUBLIC)
        return await self._create_client(caller, organisation_id, name, scope, None, uris)

    async def register_backend(
        self, caller: Principal, organisation_id: str, name: str, jwks: str, scope: str
    ) -> str:
        """Register a backend service that authenticates with a key of the JWKS
        (private_key_jwt); its client_id."""
        await self._authorise(caller, organisation_id, "iam.client.create")
        name = checked_name(name)
        keys = checked_jwks(jwks)
        scope = checked_scope(scope, ClientKind.BACKEND)
        return await self._create_client(caller, organisation_id, name, scope, keys, ())

    async def _create_client(
        self,
        caller: Principal,
        organisation_id: str,
        name: str,
        scope: str,
        jwks: dict[str, object] | None,
        redirect_uris: Sequence[str],
    ) -> str:
        try:
            async with self._database.transaction() as session:
                await _organisation(session, organisation_id)
                return await self._identity.create_client(
                    session, caller.actor, name, organisation_id, scope, jwks, redirect_uris
                )
        except ScopeError as error:
            message = translatable("Please give only scopes of FHIR resource types medicus has.")
            raise invalid("scope", message, str(error)) from None

    async def deactivate_client(
        self, caller: Principal, organisation_id: str, client_id: str
    ) -> None:
        """Deactivate a client: it gets no more tokens, and the grants of its users end at
        once (their refresh tokens and the access tokens issued under them). A backend
        service's last access token runs out by itself (minutes)."""
        await self._authorise(caller, organisation_id, "iam.client.deactivate")
        async with self._database.transaction() as session:
            row = await token_repository.client(session, client_id)
            if row is None or row.organisation_id != organisation_id:
                raise ApiError(404, "There is no such client in this organisation.")
            if not await settings_repository.deactivate_client(session, client_id):
                raise ApiError(409, translatable("This client is deactivated already."))
            grants = await settings_repository.open_grants_of_client(session, client_id, utc_now())
            await settings_repository.revoke_client_refresh_tokens(session, client_id)
            for grant in grants:
                await self._revocations.revoke_family(session, grant)
            detail = {"grants_ended": str(len(grants))}
            target = f"client:{client_id}"
            await self._audited(
                session, caller, "iam.client.deactivate", organisation_id, target, detail
            )

    async def sign_in(self, caller: Principal, organisation_id: str) -> SignIn:
        """The organisation's second-factor policy and upstream provider (without secret)."""
        await self._authorise(caller, organisation_id, "iam.sign-in.read")
        async with self._database.snapshot() as session:
            organisation = await _organisation(session, organisation_id)
            row = await repository.upstream_idp(session, organisation_id)
        upstream = (
            None
            if row is None
            else Upstream(
                row.issuer, row.client_id, row.client_secret is not None, row.trust_upstream_mfa
            )
        )
        policy = MfaPolicy(organisation.mfa_policy)
        return SignIn(organisation.name, policy, upstream, self._callback_url)

    async def set_mfa_policy(self, caller: Principal, organisation_id: str, policy: str) -> None:
        """Which of the organisation's people must log in with a second factor, from their
        next login on."""
        action = "iam.mfa-policy.update"
        await self._authorise(caller, organisation_id, action)
        if policy not in MfaPolicy.__members__.values():
            raise invalid("mfa_policy", translatable("Please choose one of the policies."))
        async with self._database.transaction() as session:
            organisation = await _organisation(session, organisation_id)
            if organisation.mfa_policy == policy:
                return
            detail = {"from": organisation.mfa_policy, "to": policy}
            await settings_repository.set_mfa_policy(session, organisation_id, policy)
            target = f"Organization/{organisation_id}"
            await self._audited(session, caller, action, organisation_id, target, detail)

    async def set_upstream(
        self, caller: Principal, organisation_id: str, change: UpstreamChange
    ) -> None:
        """Set or change the hospital's own identity provider. The stored secret is kept
        unless a new one is given or it is to be forgotten."""
        action = "iam.upstream.configure"
        await self._authorise(caller, organisation_id, action)
        issuer = checked_issuer(change.issuer)
        client_id, secret = checked_upstream_client(change.client_id, change.client_secret)
        async with self._database.transaction() as session:
            await _organisation(session, organisation_id)
            existing = await repository.upstream_idp(session, organisation_id)
            if existing is not None and secret is None and not change.forget_secret:
                await settings_repository.change_upstream_idp(
                    session, organisation_id, issuer, client_id, change.trust_upstream_mfa
                )
                target, detail = f"Organization/{organisation_id}", {"issuer": issuer}
                await self._audited(session, caller, action, organisation_id, target, detail)
                return
        await self._upstream.configure(
            organisation_id, issuer, client_id, secret, change.trust_upstream_mfa, caller.actor
        )

    async def remove_upstream(self, caller: Principal, organisation_id: str) -> None:
        """Remove the hospital's own identity provider: its people log in with their
        medicus password again."""
        action = "iam.upstream.remove"
        await self._authorise(caller, organisation_id, action)
        async with self._database.transaction() as session:
            await _organisation(session, organisation_id)
            if not await settings_repository.delete_upstream_idp(session, organisation_id):
                raise ApiError(404, "This organisation has no login of its own.")
            target = f"Organization/{organisation_id}"
            await self._audited(session, caller, action, organisation_id, target, {})

    async def organisations(self, caller: Principal) -> list[OrganisationSummary]:
        """Every organisation of the platform with its number of members (platform admins)."""
        await self._authorise(caller, None, "iam.organisation.list")
        async with self._database.snapshot() as session:
            counted = await settings_repository.organisations_with_member_counts(session)
        return [
            OrganisationSummary(org.id, org.name, org.type, org.iknr, org.mfa_policy, members)
            for org, members in counted
        ]


async def _organisation(session: AsyncSession, organisation_id: str) -> OrganisationRow:
    found = await repository.organisation(session, organisation_id)
    if found is None:
        raise ApiError(404, "There is no such organisation.")
    return found
