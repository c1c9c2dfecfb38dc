"""Whom a hospital's records are open to, and why: the register of disclosures
(`access_disclosure`, kept by `sharing` whenever shares change). A hospital answers for the
data it holds, so those who oversee it (`oversight`: its data protection officers, or its
admins while it has named none) see

- for each of its Patient records, which other organisations may see its data now and for
  which consents (who recorded them, from when to when) and treatment relations;
- the news: every organisation that gained sight of one of its records, newest first (and
  when that ended), so that a new one does not go unnoticed.

Platform admins see both for any record. Every reading is audited, refusals too."""

from __future__ import annotations

from dataclasses import replace

from medicus.access import repository
from medicus.access.oversight import Oversight
from medicus.access.policy import audited
from medicus.access.repository import StoredDisclosure
from medicus.audit.service import AuditRecord, AuditTrail, Outcome
from medicus.core.db import Database
from medicus.core.errors import ApiError
from medicus.iam.roles import Role
from medicus.iam.tokens import Principal

_NOT_A_READER = (
    "Only data protection officers (admins while their organisation has named none) and "
    "platform admins see whom their organisation's records are open to."
)


class Disclosures:
    def __init__(self, database: Database, audit: AuditTrail, oversight: Oversight) -> None:
        self._database = database
        self._audit = audit
        self._oversight = oversight

    async def of_record(self, caller: Principal, patient_id: str) -> list[StoredDisclosure]:
        """The organisations that may see the data of Patient record `patient_id` now
        besides its holder, and why."""
        event = audited(caller, "access.disclosures.read", f"Patient/{patient_id}").about(
            patient_id
        )
        platform_admin = caller.kind == "user" and caller.role == Role.PLATFORM_ADMIN
        if not platform_admin and not await self._oversight.oversees(caller):
            await self._refuse(event, 403, _NOT_A_READER)
        async with self._database.snapshot() as session:
            mine = await repository.held_by(session, {patient_id}, caller.organisation_id)
            if not platform_admin and not mine:
                await self._refuse(
                    event, 404, f"Patient/{patient_id} is not a record of your organisation."
                )
            found = await repository.open_disclosures(session, {patient_id})
        await self._audit.record(event)
        return found

    async def news(
        self, caller: Principal, below: int | None, limit: int
    ) -> tuple[list[StoredDisclosure], int | None]:
        """The organisations that gained sight of the caller's organisation's records,
        newest first: a page below `below`, and the `below` of the next (None: the last)."""
        event = audited(caller, "access.disclosures.search", "access-disclosures")
        if not await self._oversight.oversees(caller):
            await self._refuse(event, 403, _NOT_A_READER)
        async with self._database.snapshot() as session:
            found = await repository.disclosures_by(
                session, caller.organisation_id, below, limit + 1
            )
        page = found[:limit]
        await self._audit.record(event.about(*(d.patient_id for d in page)))
        return page, page[-1].id if len(found) > limit else None

    async def _refuse(self, event: AuditRecord, status: int, message: str) -> None:
        await self._audit.record(replace(event, outcome=Outcome.DENIED))
        raise ApiError(status, message)
