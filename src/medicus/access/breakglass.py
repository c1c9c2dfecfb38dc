"""Break-glass: in an emergency a physician opens a person's record without a consent or
treatment relation, stating a reason. For a limited time (`break_glass_minutes`) the physician
(not the whole organisation) reads the person's data as if it were shared; every such read is
audited with the reason `break-glass`, and the opening itself with the stated reason. Those
who oversee the organisation (`oversight`: its data protection officers, or its admins while
it has named none) review the list afterwards."""

from __future__ import annotations

import datetime as dt

from medicus.access import repository
from medicus.access.oversight import Oversight
from medicus.access.policy import audited
from medicus.access.repository import StoredBreakGlass
from medicus.access.sharing import CARE_PROVIDERS
from medicus.audit.service import AuditTrail, Outcome
from medicus.core.clock import Clock
from medicus.core.db import Database, utc_now
from medicus.core.errors import ApiError
from medicus.core.ids import new_id
from medicus.iam.roles import Role
from medicus.iam.tokens import Principal

_NOT_A_REVIEWER = (
    "Only the organisation's data protection officers review break-glass accesses "
    "(its admins while it has named none)."
)


class BreakGlass:
    def __init__(
        self,
        database: Database,
        audit: AuditTrail,
        oversight: Oversight,
        duration: dt.timedelta,
        clock: Clock = utc_now,
    ) -> None:
        self._database = database
        self._audit = audit
        self._oversight = oversight
        self._duration = duration
        self._clock = clock

    async def open(self, caller: Principal, patient_id: str, reason: str) -> StoredBreakGlass:
        """Open the person of Patient record `patient_id` to the calling physician."""
        target = f"Patient/{patient_id}"
        if not await self._may_open(caller):
            await self._refuse(caller, "access.break-glass", target, patient_id)
            raise ApiError(
                403,
                "Only physicians of care providers (hospitals, practices, laboratories) "
                "may open a record by break-glass.",
            )
        now = self._clock()
        opened = StoredBreakGlass(
            new_id(),
            caller.actor,
            caller.organisation_id,
            patient_id,
            reason,
            now,
            now + self._duration,
            None,
            None,
            None,
        )
        async with self._database.transaction() as session:
            if await repository.record(session, patient_id) is None:
                raise ApiError(404, f"{target} is not in the master patient index.")
            await repository.add_break_glass(session, opened)
            detail = {"id": opened.id, "reason": reason, "ends_at": opened.ends_at.isoformat()}
            await self._audit.append(
                session, audited(caller, "access.break-glass", target, detail).about(patient_id)
            )
        return opened

    async def _may_open(self, caller: Principal) -> bool:
        if caller.kind != "user" or caller.role != Role.PHYSICIAN:
            return False
        async with self._database.snapshot() as session:
            return bool(
                await repository.of_types(session, {caller.organisation_id}, CARE_PROVIDERS)
            )

    async def opened_in(
        self, caller: Principal, unreviewed: bool, limit: int
    ) -> list[StoredBreakGlass]:
        """The caller's organisation's break-glass accesses, newest first, for review."""
        if not await self._oversight.oversees(caller):
            await self._refuse(caller, "access.break-glass.list", caller.organisation_id)
            raise ApiError(403, _NOT_A_REVIEWER)
        async with self._database.transaction() as session:
            found = await repository.break_glass_of(
                session, caller.organisation_id, unreviewed, limit
            )
            await self._audit.append(
                session,
                audited(caller, "access.break-glass.list", caller.organisation_id, {}),
            )
        return found

    async def review(self, caller: Principal, break_glass_id: str, note: str) -> StoredBreakGlass:
        """Record that the caller reviewed one of the organisation's break-glass accesses."""
        target = f"break-glass/{break_glass_id}"
        if not await self._oversight.oversees(caller):
            await self._refuse(caller, "access.break-glass.review", target)
            raise ApiError(403, _NOT_A_REVIEWER)
        async with self._database.transaction() as session:
            reviewed = await repository.review_break_glass(
                session, break_glass_id, caller.organisation_id, caller.actor, self._clock(), note
            )
            if reviewed is None:
                raise ApiError(404, f"No break-glass access {break_glass_id} here.")
            await self._audit.append(
                session,
                audited(caller, "access.break-glass.review", target, {"note": note}).about(
                    reviewed.patient_id
                ),
            )
        return reviewed

    async def _refuse(
        self, caller: Principal, action: str, target: str, patient_id: str | None = None
    ) -> None:
        await self._audit.record(
            audited(caller, action, target, {}, Outcome.DENIED).about(patient_id)
        )
