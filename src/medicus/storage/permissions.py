"""Who may keep, read and delete stored objects, asked of `access` as for the FHIR resource
`Binary` (an object's bytes are a Binary's): the caller's scopes must allow the interaction
on Binary, and the object must be their organisation's. Every decision is an audit event;
another organisation's object is answered with 404, so that its existence is not revealed.

Objects that belong to a FHIR resource (`owner`: a Binary, which may stand for an attachment
of a DocumentReference) are not served here at all, to their own organisation neither: the
FHIR hub decides those as that resource (docs/storage.md); here they are a 404 that names
the resource."""

from __future__ import annotations

from medicus.access.policy import AccessDenied, Interaction
from medicus.audit.service import AuditTrail
from medicus.core.errors import ApiError
from medicus.fhir.guard import Guard
from medicus.iam.tokens import Principal
from medicus.storage.service import StoredObject

RESOURCE_TYPE = "Binary"


def _unknown(object_id: str) -> ApiError:
    return ApiError(404, f"There is no object {object_id} here.")


class StoragePermissions:
    def __init__(self, guard: Guard, audit: AuditTrail) -> None:
        self._guard = guard
        self._audit = audit

    async def creator(self, caller: Principal, detail: dict[str, str] | None = None) -> str:
        """The organisation a new object of the caller belongs to; 403 (audited) if the
        caller may not create (a patient, or no Binary create scope)."""
        try:
            event = self._guard.check(
                caller, Interaction.CREATE, RESOURCE_TYPE, None, caller.organisation_id
            )
        except AccessDenied as denied:
            await self._audit.record(denied.event)
            raise denied.error from None
        await self._audit.record(event.noting(**(detail or {})))
        return caller.organisation_id

    async def visible(
        self,
        caller: Principal,
        object_id: str,
        stored: StoredObject | None,
        interaction: Interaction = Interaction.READ,
    ) -> StoredObject:
        """The object, if the caller may do `interaction` with it (audited, with the Patient
        record it concerns, if any); 404 for an object that is not there or not theirs to
        see, 403 for a scope that does not allow the interaction."""
        owner_organisation = stored.organisation_id if stored is not None else None
        try:
            event = self._guard.check(
                caller,
                interaction,
                RESOURCE_TYPE,
                object_id,
                owner_organisation,
            )
        except AccessDenied as denied:
            await self._audit.record(denied.event)
            if denied.error.status == 404:
                raise _unknown(object_id) from None
            raise denied.error from None
        if stored is None:
            await self._audit.record(event.refused("not-found"))
            raise _unknown(object_id)
        if stored.owner is not None:
            await self._audit.record(event.refused("read-through-owner"))
            raise ApiError(
                404,
                f"Object {object_id} holds the bytes of {stored.owner}: read them as "
                f"/fhir/{stored.owner}, whose access rules apply.",
            )
        await self._audit.record(event)
        return stored
