"""Who uses the portal: a browser session that finished its login and chose an organisation,
and the principal the portal's use cases act as (the user, in that organisation, with the
scopes of their role, under the portal's client id)."""

from __future__ import annotations

from dataclasses import dataclass

from medicus.iam.login import BrowserSession, Stage
from medicus.iam.roles import ROLE_SCOPES, Role
from medicus.iam.scopes import parse_scopes
from medicus.iam.tokens import Principal

PORTAL_CLIENT = "medicus-portal"


@dataclass(frozen=True)
class PortalUser:
    """A browser session that finished its login and chose an organisation."""

    login: BrowserSession
    principal: Principal
    organisation_name: str

    @property
    def role(self) -> Role:
        return Role(self.principal.role or "")

    @property
    def sees_patient_data(self) -> bool:
        return self.role in (Role.PHYSICIAN, Role.NURSE, Role.MEDICAL_ASSISTANT)

    @property
    def is_patient(self) -> bool:
        """A patient using the portal for their own data."""
        return self.role is Role.PATIENT

    @property
    def administers(self) -> bool:
        return self.role in (Role.ORGANISATION_ADMIN, Role.PLATFORM_ADMIN)

    @property
    def runs_platform(self) -> bool:
        """Whether the platform's pages (organisations, patient matching) are in the
        navigation: identity and `access` decide on each use."""
        return self.role is Role.PLATFORM_ADMIN

    @property
    def oversees(self) -> bool:
        """Whether the oversight pages are in the navigation: `access` decides on each use
        (an organisation's admins oversee only while it has named no DPO)."""
        return self.role in (
            Role.DATA_PROTECTION_OFFICER,
            Role.ORGANISATION_ADMIN,
            Role.PLATFORM_ADMIN,
        )


def portal_user(login: BrowserSession | None) -> PortalUser | None:
    """The portal's user behind a session, or None while it has not finished logging in."""
    if login is None or login.stage is not Stage.COMPLETE or login.organisation_id is None:
        return None
    role = login.role
    if role is None or role not in Role.__members__.values():
        return None
    granted = ROLE_SCOPES.get(Role(role), "").split()
    scope = " ".join(s for s in granted if "/" in s or s == "admin")
    membership = login.membership
    own_record = membership.patient_id if membership and role == Role.PATIENT else None
    principal = Principal(
        subject=login.user_id,
        kind="user",
        organisation_id=login.organisation_id,
        role=role,
        client_id=PORTAL_CLIENT,
        scope=parse_scopes(scope),
        scope_text=scope,
        jti=login.id_hash,
        expires_at=0,
        fhir_user=f"Patient/{own_record}" if own_record else None,
    )
    chosen = login.organisation_id
    names = [m.organisation_name for m in login.memberships if m.organisation_id == chosen]
    return PortalUser(login, principal, names[0] if names else chosen)
