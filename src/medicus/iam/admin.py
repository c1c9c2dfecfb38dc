"""Administration of organisations and their people, with one rule: organisation admins act on
their own organisation only; platform admins on any, and only they create organisations.
Every action, allowed or refused, is audited."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, NoReturn

from pydantic import BaseModel, EmailStr, Field

from medicus.audit.service import AuditRecord, AuditTrail, Outcome
from medicus.core.crypto import new_token, token_hash
from medicus.core.db import Database, utc_now
from medicus.core.errors import ApiError
from medicus.core.ids import new_id
from medicus.core.mail import Mail, MailSender
from medicus.iam import repository, token_repository
from medicus.iam.models import InvitationRow
from medicus.iam.passwords import check_password_policy
from medicus.iam.revocations import Revocations
from medicus.iam.roles import (
    ASSIGNABLE_ROLES,
    PATIENT_INVITERS,
    MfaPolicy,
    OrganisationType,
    Role,
)
from medicus.iam.service import AdministrationError, IdentityService
from medicus.iam.tokens import Principal


def may_administer(caller: Principal, organisation_id: str | None) -> bool:
    """Platform admins administer every organisation (and the platform: `organisation_id`
    None), organisation admins their own; both as users with the `admin` scope."""
    if caller.kind != "user" or "admin" not in caller.scope.other:
        return False
    if caller.role == Role.PLATFORM_ADMIN:
        return True
    return (
        caller.role == Role.ORGANISATION_ADMIN
        and organisation_id is not None
        and caller.organisation_id == organisation_id
    )


async def authorise_admin(
    audit: AuditTrail, caller: Principal, organisation_id: str | None, action: str
) -> None:
    """Go on if the caller may administer the organisation (`may_administer`); else audit
    the refusal and answer 403."""
    if may_administer(caller, organisation_id):
        return
    target = f"Organization/{organisation_id}" if organisation_id else None
    await refuse(audit, caller, action, target, "You may not administer this organisation.")


async def refuse(
    audit: AuditTrail, caller: Principal, action: str, target: str | None, message: str
) -> NoReturn:
    """Audit a refused action and answer it with 403."""
    await audit.record(
        AuditRecord(
            action,
            caller.actor,
            outcome=Outcome.DENIED,
            organisation=caller.organisation_id,
            target=target,
        )
    )
    raise ApiError(403, message)


@dataclass(frozen=True)
class Invitation:
    id: str
    email: str
    role: str
    expires_at: dt.datetime


class NewInvitation(BaseModel):
    """Whom to invite, as the API's body and the portal's form give it (validated)."""

    email: EmailStr
    display_name: str = Field(min_length=1, max_length=200)
    role: Role


class AdminService:
    def __init__(
        self,
        database: Database,
        audit: AuditTrail,
        identity: IdentityService,
        revocations: Revocations,
        mail: MailSender,
        public_url: str,
        invitation_lifetime: dt.timedelta,
    ) -> None:
        self._database = database
        self._audit = audit
        self._identity = identity
        self._revocations = revocations
        self._mail = mail
        self._public_url = public_url
        self._invitation_lifetime = invitation_lifetime

    async def _authorise(self, caller: Principal, organisation_id: str | None, action: str) -> None:
        await authorise_admin(self._audit, caller, organisation_id, action)

    async def _refuse(
        self, caller: Principal, action: str, target: str | None, message: str
    ) -> NoReturn:
        await refuse(self._audit, caller, action, target, message)

    async def create_organisation(
        self,
        caller: Principal,
        name: str,
        kind: OrganisationType,
        iknr: str | None,
        telematik_id: str | None,
        mfa_policy: MfaPolicy,
    ) -> str:
        await self._authorise(caller, None, "iam.organisation.create")
        try:
            async with self._database.transaction() as session:
                return await self._identity.create_organisation(
                    session, caller.actor, name, kind, iknr, telematik_id, mfa_policy
                )
        except AdministrationError as refusal:
            raise ApiError(refusal.status, str(refusal)) from None

    async def members(self, caller: Principal, organisation_id: str) -> list[dict[str, Any]]:
        await self._authorise(caller, organisation_id, "iam.member.list")
        async with self._database.snapshot() as session:
            rows = await repository.members_of(session, organisation_id)
        return [
            {
                "user_id": user.id,
                "email": user.email,
                "display_name": user.display_name,
                "role": membership.role,
                "active": membership.active and user.active,
                "second_factor": user.totp_secret is not None,
            }
            for membership, user in rows
        ]

    async def invite(
        self, caller: Principal, organisation_id: str, email: str, display_name: str, role: Role
    ) -> Invitation:
        """Invite someone by e-mail to join the organisation in `role`."""
        await self._authorise(caller, organisation_id, "iam.invitation.create")
        _assignable(role)
        letter = f"you are invited to work for {{organisation}} as {role}."
        return await self._send_invitation(
            caller,
            organisation_id,
            NewInvitation(email=email, display_name=display_name, role=role),
            letter,
            None,
        )

    async def invite_patient(
        self, caller: Principal, patient_id: str, email: str, display_name: str
    ) -> Invitation:
        """Invite a patient of the caller's organisation to the portal, for their Patient
        record `patient_id`. The caller (`access.PatientAccounts`) has checked that the
        organisation holds that record; here only who may invite is decided."""
        if caller.kind != "user" or caller.role not in PATIENT_INVITERS:
            await self._refuse(
                caller,
                "iam.invitation.create",
                f"Patient/{patient_id}",
                "Only clinical staff and administrators invite patients.",
            )
        invitation = NewInvitation(email=email, display_name=display_name, role=Role.PATIENT)
        letter = (
            "{organisation} invites you to the medicus patient portal: there you see who "
            "looked at your data, when and why, and you give or withdraw your consents."
        )
        return await self._send_invitation(
            caller, caller.organisation_id, invitation, letter, patient_id
        )

    async def _send_invitation(
        self,
        caller: Principal,
        organisation_id: str,
        invited: NewInvitation,
        letter: str,
        patient_id: str | None,
    ) -> Invitation:
        """Store an invitation and mail its link (`letter`: what it is for, `{organisation}`
        filled in); withdrawn again if the mail relay does not take it."""
        token, now = new_token(), utc_now()
        row = InvitationRow(
            token_hash=token_hash(token),
            id=new_id(),
            organisation_id=organisation_id,
            email=invited.email.strip().lower(),
            display_name=invited.display_name,
            role=str(invited.role),
            patient_id=patient_id,
            invited_by=caller.actor,
            created_at=now,
            expires_at=now + self._invitation_lifetime,
        )
        async with self._database.transaction() as session:
            organisation = await repository.organisation(session, organisation_id)
            if organisation is None:
                raise ApiError(404, "There is no such organisation.")
            await repository.add(session, row)
            event = AuditRecord(
                "iam.invitation.create",
                caller.actor,
                organisation=organisation_id,
                target=f"invitation:{row.id}",
                detail={"role": row.role},
            )
            await self._audit.append(session, event.about(patient_id))
        mail = Mail(
            to=row.email,
            subject=f"Invitation to {organisation.name} on medicus",
            body=(
                f"{row.display_name},\n\n{letter.format(organisation=organisation.name)} "
                f"Accept within {self._invitation_lifetime.days} days:\n\n"
                f"{self._public_url}/invitation?token={token}\n"
            ),
        )
        try:
            await self._mail.send(mail)
        except ApiError:
            await self._withdraw(row, "the mail relay did not take the invitation")
            raise
        return Invitation(row.id, row.email, row.role, row.expires_at)

    async def _withdraw(self, row: InvitationRow, reason: str) -> None:
        """Remove an invitation no one received (its mail was not sent), so that inviting
        again does not leave a second one; the audit trail keeps both steps. The mail is
        sent after the commit: a relay's delay must not hold the database's writer."""
        async with self._database.transaction() as session:
            await repository.delete_invitation(session, row.token_hash)
            await self._audit.append(
                session,
                AuditRecord(
                    "iam.invitation.withdraw",
                    row.invited_by,
                    organisation=row.organisation_id,
                    target=f"invitation:{row.id}",
                    detail={"reason": reason},
                ),
            )

    async def update_member(
        self,
        caller: Principal,
        organisation_id: str,
        user_id: str,
        role: Role | None,
        active: bool | None,
    ) -> None:
        """Change a member's role or suspend/restore their membership in this organisation.
        Either voids the member's access tokens for this organisation at once; suspending also
        ends their sessions working for it and revokes their refresh tokens for it. What they
        hold for their other organisations stays valid."""
        await self._authorise(caller, organisation_id, "iam.member.update")
        if role is not None:
            _assignable(role)
        async with self._database.transaction() as session:
            membership = await repository.membership(session, user_id, organisation_id)
            if membership is None:
                raise ApiError(404, "This person is not a member of the organisation.")
            if role is not None and membership.role == Role.PATIENT:
                raise ApiError(
                    422, "A patient's account stays a patient's: invite staff with their own."
                )
            values: dict[str, Any] = {}
            if role is not None:
                values["role"] = str(role)
            if active is not None:
                values["active"] = active
            if values:
                await repository.update_membership(session, user_id, organisation_id, **values)
                await self._revocations.void_user_tokens(session, user_id, organisation_id)
            if active is False:
                await repository.revoke_browser_sessions(session, user_id, organisation_id)
                await token_repository.revoke_user_refresh_tokens(session, user_id, organisation_id)
            await self._audit.append(
                session,
                AuditRecord(
                    "iam.member.update",
                    caller.actor,
                    organisation=organisation_id,
                    target=f"Practitioner/{user_id}",
                    detail={k: str(v) for k, v in values.items()},
                ),
            )

    async def reset_second_factor(
        self, caller: Principal, organisation_id: str, user_id: str
    ) -> None:
        """Remove a member's authenticator and recovery codes; they enrol anew at next login.
        The second factor guards the person's whole account, not one membership: an
        organisation's admin may reset it only for someone who belongs to no other
        organisation (suspended memberships count); for anyone else it takes a platform
        admin."""
        await self._authorise(caller, organisation_id, "iam.mfa.reset")
        target = f"Practitioner/{user_id}"
        async with self._database.transaction() as session:
            if await repository.membership(session, user_id, organisation_id) is None:
                raise ApiError(404, "This person is not a member of the organisation.")
            elsewhere = set(await repository.organisation_ids_of(session, user_id))
            if caller.role == Role.PLATFORM_ADMIN or elsewhere <= {organisation_id}:
                await repository.update_user(
                    session, user_id, totp_secret=None, totp_last_step=None
                )
                await repository.replace_recovery_codes(session, user_id, [])
                await self._audit.append(
                    session,
                    AuditRecord(
                        "iam.mfa.reset", caller.actor, organisation=organisation_id, target=target
                    ),
                )
                return
        await self._refuse(
            caller,
            "iam.mfa.reset",
            target,
            "This person also works for another organisation, so their second factor can be "
            "reset only by a platform admin.",
        )

    async def accept_invitation(self, token: str, password: str) -> str:
        """Create (or extend) the invited user's account with a password; returns the e-mail
        address to log in with. Raises ApiError for an unknown, used or expired invitation."""
        async with self._database.transaction() as session:
            row = await repository.invitation(session, token_hash(token))
            if row is None or row.accepted_at is not None or row.expires_at <= utc_now():
                raise ApiError(410, "This invitation is no longer valid; ask for a new one.")
            actor = f"invitation:{row.id}"
            existing = await repository.user_by_email(session, row.email)
            if existing is not None and existing.password_hash is not None:
                # Someone who has an account proves it with their password; an invitation
                # never replaces a password.
                if not self._identity.password_matches(existing.password_hash, password):
                    raise ApiError(401, "This is not the password of your existing account.")
            else:
                check_password_policy(password, (row.email, row.display_name))
            await repository.accept_invitation(session, row.token_hash, utc_now())
            user = await self._identity.ensure_user(session, actor, row.email, row.display_name)
            joined = await self._identity.ensure_membership(
                session, actor, user.id, row.organisation_id, Role(row.role), row.patient_id
            )
            if not joined and row.patient_id is not None:
                raise ApiError(
                    409,
                    "This account already belongs to the organisation; a patient's portal "
                    "access needs an account of its own (another e-mail address).",
                )
            if existing is None or existing.password_hash is None:
                await self._identity.set_password(session, actor, user.id, password)
            return row.email


def _assignable(role: Role) -> None:
    if role not in ASSIGNABLE_ROLES:
        raise ApiError(422, f"An organisation admin cannot give the role {role}.")
