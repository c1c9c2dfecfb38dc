"""Use-cases of identity administration: organisations, users, memberships, passwords and OAuth
clients, each audited. Used by the demo data, the admin CLI and (later) the admin API."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

import orjson
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy.ext.asyncio import AsyncSession

from medicus.audit.service import AuditRecord, AuditTrail
from medicus.core.db import utc_now
from medicus.core.ids import new_id
from medicus.iam import repository, token_repository
from medicus.iam.models import MembershipRow, OAuthClientRow, OrganisationRow, UserRow
from medicus.iam.passwords import PasswordHasher, check_password_policy
from medicus.iam.roles import ClientKind, MfaPolicy, OrganisationType, Role
from medicus.iam.scopes import parse_scopes


class OrganisationDirectory(Protocol):
    """Told of every organisation created or changed, in the same transaction: the hook by
    which the FHIR hub will mirror organisations as FHIR `Organization` resources."""

    async def organisation_saved(
        self, session: AsyncSession, organisation: OrganisationRow
    ) -> None: ...


class AdministrationError(ValueError):
    """An administrative request that cannot be carried out; the message says why, `status`
    what it would be over HTTP (409 for a conflict with what exists, 422 for invalid input)."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Provisioned:
    """The id of an organisation or user, and whether this call created it."""

    id: str
    created: bool


class Names(NamedTuple):
    """Names to show people instead of ids, by id (unknown ids are left out)."""

    users: dict[str, str]
    organisations: dict[str, str]
    clients: dict[str, str]


class IdentityService:
    def __init__(
        self,
        audit: AuditTrail,
        hasher: PasswordHasher,
        resource_types: Collection[str],
        directories: Sequence[OrganisationDirectory] = (),
    ) -> None:
        self._audit = audit
        self._hasher = hasher
        self._resource_types = resource_types
        self._directories = tuple(directories)

    async def ensure_organisation(
        self,
        session: AsyncSession,
        actor: str,
        name: str,
        kind: OrganisationType,
        iknr: str,
        telematik_id: str | None = None,
        mfa_policy: MfaPolicy = MfaPolicy.CLINICAL,
    ) -> Provisioned:
        """The organisation with IK number `iknr`, created if it does not exist yet."""
        existing = await repository.organisation_by_iknr(session, iknr)
        if existing is not None:
            return Provisioned(existing.id, created=False)
        organisation_id = await self.create_organisation(
            session, actor, name, kind, iknr, telematik_id, mfa_policy
        )
        return Provisioned(organisation_id, created=True)

    async def ensure_user(
        self, session: AsyncSession, actor: str, email: str, display_name: str
    ) -> Provisioned:
        """The user with e-mail address `email` (compared case-insensitively), created if new."""
        email = email.strip().lower()
        existing = await repository.user_by_email(session, email)
        if existing is not None:
            return Provisioned(existing.id, created=False)
        row = UserRow(
            id=new_id(), email=email, display_name=display_name, active=True, created_at=utc_now()
        )
        await repository.add(session, row)
        await self._audit.append(
            session, AuditRecord("iam.user.create", actor, target=f"Practitioner/{row.id}")
        )
        return Provisioned(row.id, created=True)

    async def ensure_membership(
        self,
        session: AsyncSession,
        actor: str,
        user_id: str,
        organisation_id: str,
        role: Role,
        patient_id: str | None = None,
    ) -> bool:
        """Give the user `role` at the organisation (a patient: for their Patient record
        `patient_id` there) unless they are a member already."""
        if await repository.membership(session, user_id, organisation_id) is not None:
            return False
        membership = MembershipRow(
            user_id=user_id, organisation_id=organisation_id, role=str(role), patient_id=patient_id
        )
        await repository.add(session, membership)
        await self._audit.append(
            session,
            AuditRecord(
                "iam.membership.create",
                actor,
                organisation=organisation_id,
                target=f"Practitioner/{user_id}",
                detail={"role": str(role)},
            ),
        )
        return True

    async def set_password(
        self, session: AsyncSession, actor: str, user_id: str, password: str
    ) -> None:
        """Set a password that passes the policy (raises PasswordRejected otherwise)."""
        user = await repository.user(session, user_id)
        if user is None:
            raise AdministrationError("There is no such user.")
        check_password_policy(password, (user.email, user.display_name))
        await repository.update_user(session, user_id, password_hash=self._hasher.hash(password))
        await self._audit.append(
            session, AuditRecord("iam.password.set", actor, target=f"Practitioner/{user_id}")
        )

    def password_matches(self, password_hash: str, password: str) -> bool:
        return self._hasher.verify(password_hash, password)

    async def organisation(self, session: AsyncSession, reference: str) -> OrganisationRow:
        """An organisation by id, IK number or name, or AdministrationError."""
        found = await repository.organisation_by_reference(session, reference)
        if found is None:
            raise AdministrationError(f"There is no organisation '{reference}'.")
        return found

    async def names(
        self,
        session: AsyncSession,
        user_ids: Collection[str],
        organisation_ids: Collection[str],
        client_ids: Collection[str],
    ) -> Names:
        """The display names of users, organisations and apps, by id."""
        return Names(
            await repository.user_names(session, user_ids),
            await repository.organisation_names(session, organisation_ids),
            await repository.client_names(session, client_ids),
        )

    async def user_id_by_email(self, session: AsyncSession, email: str) -> str | None:
        found = await repository.user_by_email(session, email.strip().lower())
        return None if found is None else found.id

    async def has_active_member(
        self, session: AsyncSession, organisation_id: str, role: Role
    ) -> bool:
        """Whether someone active works for the organisation in `role`."""
        return await repository.has_active_member(session, organisation_id, role.value)

    async def create_organisation(
        self,
        session: AsyncSession,
        actor: str,
        name: str,
        kind: OrganisationType,
        iknr: str | None,
        telematik_id: str | None,
        mfa_policy: MfaPolicy,
    ) -> str:
        if iknr is not None and (len(iknr) != 9 or not iknr.isdigit()):
            raise AdministrationError("An IK number has nine digits.")
        if iknr and await repository.organisation_by_iknr(session, iknr) is not None:
            raise AdministrationError(
                f"An organisation with IK number {iknr} exists already.", status=409
            )
        if telematik_id and await repository.organisation_by_telematik_id(session, telematik_id):
            raise AdministrationError(
                f"An organisation with Telematik-ID {telematik_id} exists already.", status=409
            )
        row = OrganisationRow(
            id=new_id(),
            name=name,
            type=str(kind),
            iknr=iknr,
            telematik_id=telematik_id,
            created_at=utc_now(),
            mfa_policy=str(mfa_policy),
        )
        await repository.add(session, row)
        for directory in self._directories:
            await directory.organisation_saved(session, row)
        await self._audit.append(
            session,
            AuditRecord(
                "iam.organisation.create",
                actor,
                organisation=row.id,
                target=f"Organization/{row.id}",
            ),
        )
        return row.id

    async def client_ids_named(
        self, session: AsyncSession, organisation_id: str, name: str
    ) -> list[str]:
        """The organisation's active OAuth clients called `name`, oldest first."""
        return await token_repository.client_ids_named(session, organisation_id, name)

    async def create_client(
        self,
        session: AsyncSession,
        actor: str,
        name: str,
        organisation_id: str,
        scope: str,
        jwks: dict[str, object] | None = None,
        redirect_uris: Sequence[str] = (),
    ) -> str:
        """Register a backend service (with `jwks`, for private_key_jwt) or a public app (with
        `redirect_uris`, for the authorization code flow with PKCE); returns its client_id."""
        parsed_scope = parse_scopes(scope, self._resource_types)
        if jwks is not None:
            try:
                keys = KeySet.import_key_set(jwks)  # type: ignore[arg-type]
            except (JoseError, ValueError, KeyError, TypeError) as error:
                raise AdministrationError(f"The JWKS cannot be read: {error}") from None
            if any(key.is_private for key in keys.keys):
                raise AdministrationError("The JWKS must hold public keys only.")
        elif not redirect_uris:
            raise AdministrationError("A client needs a JWKS or at least one redirect URI.")
        client_id = new_id()
        await token_repository.add(
            session,
            OAuthClientRow(
                client_id=client_id,
                organisation_id=organisation_id,
                name=name,
                kind=ClientKind.BACKEND if jwks is not None else ClientKind.PUBLIC,
                redirect_uris=orjson.dumps(list(redirect_uris)).decode(),
                jwks=orjson.dumps(jwks).decode() if jwks is not None else None,
                scope=parsed_scope.to_string(),
                created_at=utc_now(),
            ),
        )
        await self._audit.append(
            session,
            AuditRecord(
                "iam.client.create",
                actor,
                organisation=organisation_id,
                target=f"client:{client_id}",
                detail={"scope": parsed_scope.to_string()},
            ),
        )
        return client_id

    async def register_platform_client(
        self, session: AsyncSession, client_id: str, name: str, redirect_uri: str, scope: str
    ) -> bool:
        """Register (or bring up to date) a public client of the platform itself, with a fixed
        id and no owner organisation; True when something changed. Called at each server
        start: the redirect URI follows the public URL of the day, and two replicas starting
        together agree (the second finds the first's row, or loses the insert and retries)."""
        redirect_uris = orjson.dumps([redirect_uri]).decode()
        scope = parse_scopes(scope, self._resource_types).to_string()
        row = await token_repository.client(session, client_id)
        if row is not None:
            if row.organisation_id is not None:
                raise AdministrationError(f"The client id {client_id} belongs to an organisation.")
            if (row.name, row.redirect_uris, row.scope, row.active) == (
                name,
                redirect_uris,
                scope,
                True,
            ):
                return False
            row.name, row.redirect_uris, row.scope, row.active = name, redirect_uris, scope, True
        else:
            await token_repository.add(
                session,
                OAuthClientRow(
                    client_id=client_id,
                    organisation_id=None,
                    name=name,
                    kind=ClientKind.PUBLIC,
                    redirect_uris=redirect_uris,
                    scope=scope,
                    created_at=utc_now(),
                ),
            )
        await self._audit.append(
            session,
            AuditRecord(
                "iam.client.register",
                "system:medicus",
                target=f"client:{client_id}",
                detail={"scope": scope, "redirect_uri": redirect_uri},
            ),
        )
        return True
