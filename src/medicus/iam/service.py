"""Use-cases of identity management that the foundation needs: idempotent provisioning of
organisations, users and memberships, each audited. Login, tokens and administration build on
these tables."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncSession

from medicus.audit.service import AuditEvent, AuditTrail
from medicus.core.db import utc_now
from medicus.core.ids import new_id
from medicus.iam import repository
from medicus.iam.models import MembershipRow, OrganisationRow, UserRow


class OrganisationType(StrEnum):
    HOSPITAL = "hospital"
    UNIVERSITY_HOSPITAL = "university_hospital"
    PRACTICE = "practice"
    LABORATORY = "laboratory"
    RESEARCH_INSTITUTE = "research_institute"
    APP_VENDOR = "app_vendor"
    PLATFORM_OPERATOR = "platform_operator"


class Role(StrEnum):
    PLATFORM_ADMIN = "platform_admin"
    ORGANISATION_ADMIN = "organisation_admin"
    PHYSICIAN = "physician"
    NURSE = "nurse"
    MEDICAL_ASSISTANT = "medical_assistant"
    RESEARCHER = "researcher"


@dataclass(frozen=True)
class Provisioned:
    """The id of an organisation or user, and whether this call created it."""

    id: str
    created: bool


class IdentityService:
    def __init__(self, audit: AuditTrail) -> None:
        self._audit = audit

    async def ensure_organisation(
        self,
        session: AsyncSession,
        actor: str,
        name: str,
        kind: OrganisationType,
        iknr: str,
        telematik_id: str | None = None,
    ) -> Provisioned:
        """The organisation with IK number `iknr`, created if it does not exist yet."""
        existing = await repository.organisation_by_iknr(session, iknr)
        if existing is not None:
            return Provisioned(existing.id, created=False)
        row = OrganisationRow(
            id=new_id(),
            name=name,
            type=str(kind),
            iknr=iknr,
            telematik_id=telematik_id,
            created_at=utc_now(),
        )
        await repository.add(session, row)
        await self._audit.append(
            session,
            AuditEvent(
                "iam.organisation.create",
                actor,
                organisation=row.id,
                target=f"Organization/{row.id}",
            ),
        )
        return Provisioned(row.id, created=True)

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
            session, AuditEvent("iam.user.create", actor, target=f"Practitioner/{row.id}")
        )
        return Provisioned(row.id, created=True)

    async def ensure_membership(
        self, session: AsyncSession, actor: str, user_id: str, organisation_id: str, role: Role
    ) -> bool:
        """Give the user `role` at the organisation unless they are a member already."""
        if await repository.membership(session, user_id, organisation_id) is not None:
            return False
        await repository.add(
            session, MembershipRow(user_id=user_id, organisation_id=organisation_id, role=str(role))
        )
        await self._audit.append(
            session,
            AuditEvent(
                "iam.membership.create",
                actor,
                organisation=organisation_id,
                target=f"Practitioner/{user_id}",
                detail={"role": str(role)},
            ),
        )
        return True
