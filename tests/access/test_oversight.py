"""Oversight: a hospital's data protection officer reviews break-glass openings and reads the
audit trail; its organisation admins only while it has named no (active) DPO."""

from __future__ import annotations

from sqlalchemy import text

from medicus.iam.roles import OrganisationType, Role
from tests.access.conftest import Region


async def _statuses(region: Region, organisation: str, role: str) -> tuple[int, int]:
    """What the caller gets from the break-glass review list and from the audit trail."""
    headers = await region.token(organisation, role, "")
    reviews = await region.http.get("/api/break-glass", headers=headers)
    trail = await region.http.get("/fhir/AuditEvent", headers=headers)
    return reviews.status_code, trail.status_code


async def test_naming_a_dpo_takes_oversight_from_the_admins(region: Region) -> None:
    platform = region.platform
    async with platform.database.transaction() as session:
        clinic = await platform.identity.ensure_organisation(
            session, "system:test", "Klinikum Süd", OrganisationType.HOSPITAL, "260000002"
        )
        officer = await platform.identity.ensure_user(
            session, "system:test", "dsb@klinikum-sued.example", "Dana Schutz"
        )
    admin, dpo = Role.ORGANISATION_ADMIN.value, Role.DATA_PROTECTION_OFFICER.value
    assert await _statuses(region, clinic.id, admin) == (200, 200)

    async with platform.database.transaction() as session:
        await platform.identity.ensure_membership(
            session, "system:test", officer.id, clinic.id, Role.DATA_PROTECTION_OFFICER
        )
    assert await _statuses(region, clinic.id, admin) == (403, 403)
    assert await _statuses(region, clinic.id, dpo) == (200, 200)
    # Another hospital's admin keeps oversight of their own while it names no DPO.
    assert await _statuses(region, "hospital-b", admin) == (200, 200)

    async with platform.database.transaction() as session:
        await session.execute(
            text("UPDATE membership SET active = :off WHERE user_id = :user"),
            {"off": False, "user": officer.id},
        )
    assert await _statuses(region, clinic.id, admin) == (200, 200), "a suspended DPO oversees not"
