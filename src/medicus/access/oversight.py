"""Who oversees an organisation's handling of patient data: reviews its break-glass openings
and reads its audit trail. Its data protection officers; its organisation admins only while
it has named no (active) data protection officer, so that a small practice without one is
not left without oversight.

Separation of duties, once a DPO is named: an organisation admin manages accounts and could
give themselves or others access, so they do not also review that access (the DPO acts
independently, GDPR Art. 38). Asked with every request, so naming or suspending the DPO
takes effect with the next one."""

from __future__ import annotations

from medicus.core.db import Database
from medicus.iam.roles import Role
from medicus.iam.service import IdentityService
from medicus.iam.tokens import Principal


class Oversight:
    def __init__(self, database: Database, identity: IdentityService) -> None:
        self._database = database
        self._identity = identity

    async def oversees(self, caller: Principal) -> bool:
        """Whether the caller oversees its own organisation's handling of patient data."""
        if caller.kind != "user":
            return False
        if caller.role == Role.DATA_PROTECTION_OFFICER:
            return True
        if caller.role != Role.ORGANISATION_ADMIN:
            return False
        async with self._database.snapshot() as session:
            named = await self._identity.has_active_member(
                session, caller.organisation_id, Role.DATA_PROTECTION_OFFICER
            )
        return not named
