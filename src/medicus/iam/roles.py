"""Roles, organisation types, second-factor policies and what each role may ask for."""

from __future__ import annotations

from enum import StrEnum


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
    DATA_PROTECTION_OFFICER = "data_protection_officer"
    PHYSICIAN = "physician"
    NURSE = "nurse"
    MEDICAL_ASSISTANT = "medical_assistant"
    RESEARCHER = "researcher"
    SERVICE = "service"
    PATIENT = "patient"
    """A person treated by the organisation, using the portal for their own data: who looked
    at it, and their consents (invited for one of the organisation's Patient records)."""


class MfaPolicy(StrEnum):
    """Which members of an organisation must log in with a second factor."""

    CLINICAL = "clinical"
    ALL = "all"
    NONE = "none"


class ClientKind(StrEnum):
    PUBLIC = "public"
    """An app in a browser or on a device: authorization code with PKCE, no secret."""
    BACKEND = "backend"
    """A service (connector, app backend): client credentials with private_key_jwt."""


ADMIN_ROLES = frozenset({Role.ORGANISATION_ADMIN, Role.PLATFORM_ADMIN})
# What an organisation's admin may make someone; platform admins are made by the operator.
ASSIGNABLE_ROLES = frozenset(
    {
        Role.ORGANISATION_ADMIN,
        Role.DATA_PROTECTION_OFFICER,
        Role.PHYSICIAN,
        Role.NURSE,
        Role.MEDICAL_ASSISTANT,
        Role.RESEARCHER,
    }
)

CLINICAL_ROLES = frozenset({Role.PHYSICIAN, Role.NURSE, Role.MEDICAL_ASSISTANT})
# Who sees patient data or who looked at it: under the `clinical` policy they need a second
# factor. Patients see their own.
PATIENT_DATA_ROLES = CLINICAL_ROLES | {Role.DATA_PROTECTION_OFFICER, Role.PATIENT}
# Who may invite a patient of their organisation to the portal.
PATIENT_INVITERS = CLINICAL_ROLES | {Role.ORGANISATION_ADMIN}

_IDENTITY_SCOPES = "openid fhirUser profile offline_access online_access"
_LAUNCH_SCOPES = "launch launch/patient launch/encounter"

# The most each role may be granted; a token gets the intersection of this, what the client is
# registered for and what it asked for. The `access` capability decides per record on top.
ROLE_SCOPES: dict[Role, str] = {
    Role.PHYSICIAN: f"{_IDENTITY_SCOPES} {_LAUNCH_SCOPES} user/*.cruds patient/*.cruds",
    Role.NURSE: f"{_IDENTITY_SCOPES} {_LAUNCH_SCOPES} user/*.crus patient/*.crus",
    Role.MEDICAL_ASSISTANT: f"{_IDENTITY_SCOPES} {_LAUNCH_SCOPES} user/*.rs user/Patient.cru "
    "user/Appointment.cruds patient/*.rs",
    Role.ORGANISATION_ADMIN: f"{_IDENTITY_SCOPES} admin user/Organization.rs "
    "user/Practitioner.cruds user/PractitionerRole.cruds",
    Role.PLATFORM_ADMIN: f"{_IDENTITY_SCOPES} admin user/Organization.cruds user/Practitioner.rs",
    # Reviews break-glass openings and reads the audit trail (`access`), no clinical data.
    Role.DATA_PROTECTION_OFFICER: _IDENTITY_SCOPES,
    Role.RESEARCHER: f"{_IDENTITY_SCOPES} user/ResearchStudy.rs",
    # Their own access log and consents, through the portal only: no FHIR API scopes yet
    # (a patient-facing SMART API would need patient-context filtering, docs/portal.md).
    Role.PATIENT: _IDENTITY_SCOPES,
}
