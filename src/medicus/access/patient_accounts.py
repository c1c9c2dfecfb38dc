"""Patients as users: a hospital invites a patient to the portal for one of its Patient
records, and the patient then sees their own data's access log (`trail_reader`) and gives or
withdraws their consents. What is decided here: an organisation invites only for a record
it holds (else a 404, as for any record it may not see), and a patient's own records are
those the master patient index joins with the record they were invited for."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from medicus.access import repository
from medicus.access.policy import audited
from medicus.audit.service import AuditTrail
from medicus.core.db import Database
from medicus.core.errors import ApiError
from medicus.iam.admin import AdminService, Invitation
from medicus.iam.tokens import Principal


class PatientAccounts:
    def __init__(self, database: Database, audit: AuditTrail, admin: AdminService) -> None:
        self._database = database
        self._audit = audit
        self._admin = admin

    async def invite(
        self, caller: Principal, patient_id: str, email: str, display_name: str
    ) -> Invitation:
        """Invite the person of Patient record `patient_id`, which the caller's organisation
        holds, to the portal (who may invite: `AdminService.invite_patient`)."""
        async with self._database.snapshot() as session:
            held = await repository.held_by(session, {patient_id}, caller.organisation_id)
        if not held:
            event = audited(caller, "iam.invitation.create", f"Patient/{patient_id}")
            await self._audit.record(event.refused("other-organisation"))
            raise ApiError(404, f"Patient/{patient_id} is not a record of your organisation.")
        return await self._admin.invite_patient(caller, patient_id, email, display_name)

    async def own_records(self, caller: Principal) -> list[str]:
        """A patient's Patient records: the one they were invited for first, then the other
        records of their person (by the master patient index). Empty for anyone else."""
        own = caller.own_patient_record
        if own is None:
            return []
        async with self._database.snapshot() as session:
            return await records_of_person(session, own)


async def records_of_person(session: AsyncSession, patient_id: str) -> list[str]:
    """Patient record `patient_id` first, then the other records the master patient index
    joins with it."""
    found = await repository.record(session, patient_id)
    persons = {found.person_id} if found else set()
    records = await repository.records_of_persons(session, persons)
    return [patient_id, *sorted(r.patient_id for r in records if r.patient_id != patient_id)]
