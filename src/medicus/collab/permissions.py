"""Who may do what in a space, and the audit event of every decision.

A space is seen only by its members (users of any organisation, each with a `Role`); to
anyone else it does not exist (404, audited as `not-a-member`), whatever path or id they
name. A file linked to a Patient is patient data besides: `access` decides on it exactly as on
a DocumentReference of that Patient (the record's organisation's staff, consent sharing,
break-glass; the caller's scopes), and a member whom `access` refuses does not see it."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace

from medicus.access.policy import AccessDenied, Interaction, audited
from medicus.audit.service import AuditRecord, AuditTrail, Outcome
from medicus.collab import repository
from medicus.collab.app_passwords import WEBDAV_CLIENT
from medicus.collab.records import Role, Space
from medicus.core.db import Database
from medicus.core.errors import ApiError
from medicus.fhir import repository as fhir_repository
from medicus.fhir.guard import Guard
from medicus.iam.scopes import Context
from medicus.iam.tokens import Principal

PATIENT_DOCUMENT = "DocumentReference"
"""As which FHIR resource type `access` decides on a file linked to a Patient."""


FIRST_PARTY_CLIENTS = frozenset({"medicus-portal", WEBDAV_CLIENT})
"""The platform's own clients (the portal, WebDAV with app passwords): they act with the
user's role and reach the user's spaces in full."""


def token_allows(caller: Principal, needed: Role) -> bool:
    """Whether the caller's token lets it act in spaces with `needed`'s role. A space holds
    the user's documents: any app but the platform's own acts with its token's scopes on
    DocumentReference (read for a viewer's actions; create and update for the others'), so
    that an app granted, say, laboratory values alone cannot read a user's spaces."""
    if caller.client_id in FIRST_PARTY_CLIENTS:
        return True
    permissions = ("r",) if needed is Role.VIEWER else ("c", "u")
    return all(
        caller.scope.allows(Context.USER, PATIENT_DOCUMENT, permission)
        for permission in permissions
    )


def space_target(space_id: str) -> str:
    return f"CollabSpace/{space_id}"


def file_target(node_id: str) -> str:
    return f"CollabFile/{node_id}"


def unknown_space(space_id: str) -> ApiError:
    return ApiError(404, f"There is no space {space_id} here.")


def unknown_node(name: str) -> ApiError:
    return ApiError(404, f"There is no file or folder {name} here.")


@dataclass(frozen=True)
class InSpace:
    """A caller let into a space, with their role there."""

    caller: Principal
    space: Space

    @property
    def role(self) -> Role:
        return self.space.role


_known: ContextVar[tuple[str, dict[str, Space]] | None] = ContextVar(
    "collab_known_memberships", default=None
)


@contextmanager
def memberships_known(caller: Principal, spaces: Iterable[Space]) -> Iterator[None]:
    """Within this, `SpaceGate.enter` takes the caller's space and role from `spaces` (the
    caller's spaces as `Spaces.mine` read them) instead of asking the database at each
    service call: a WebDAV request reads them first (to resolve `/dav/<space>`) and then
    calls the services several times. A space not among them is asked for as always."""
    token = _known.set((caller.subject, {space.id: space for space in spaces}))
    try:
        yield
    finally:
        _known.reset(token)


class SpaceGate:
    def __init__(self, database: Database, audit: AuditTrail, guard: Guard) -> None:
        self._database = database
        self._audit = audit
        self._guard = guard

    async def enter(self, caller: Principal, space_id: str, needed: Role, action: str) -> InSpace:
        """The caller in the space, if they are a member with at least `needed`'s role
        (nothing recorded yet: the use-case records what it did); 404 for anyone else and
        403 for a member whose role does not allow `action` (both recorded)."""
        space = await self._membership(caller, space_id)
        if space is None:
            await self.refuse(caller, action, space_target(space_id), "not-a-member")
            raise unknown_space(space_id)
        role = space.role
        if not token_allows(caller, needed):
            await self.refuse(caller, action, space_target(space_id), "scope")
            raise ApiError(
                403,
                "Your access token does not allow this in spaces: an app needs "
                f"user/{PATIENT_DOCUMENT} scopes for it.",
            )
        if not role.allows(needed):
            await self.refuse(caller, action, space_target(space_id), f"role-{role}")
            raise ApiError(
                403,
                f"Your role in this space ({role}) does not allow this; ask one of its "
                f"managers to make you {needed}.",
            )
        return InSpace(caller, space)

    async def _membership(self, caller: Principal, space_id: str) -> Space | None:
        """The space with the caller's role in it; None if they are not a member."""
        if caller.kind != "user" or caller.role == "patient":
            return None
        known = _known.get()
        if known is not None and known[0] == caller.subject and space_id in known[1]:
            return known[1][space_id]
        async with self._database.snapshot() as session:
            found = await repository.space_with_role(session, space_id, caller.subject)
        if found is None or found[1] is None:
            return None
        return Space.of(found[0], Role(found[1]))

    async def refuse(
        self, caller: Principal, action: str, target: str, reason: str, **detail: str
    ) -> None:
        await self._audit.record(
            audited(caller, action, target, {"reason": reason, **detail}, Outcome.DENIED)
        )

    async def record(
        self,
        inside: InSpace,
        action: str,
        target: str,
        patient_id: str | None = None,
        **detail: str,
    ) -> None:
        """The audit event of something done in the space (ids and counts only: names of
        files may be patient data)."""
        event = audited(inside.caller, action, target, {"space": inside.space.id, **detail})
        await self._audit.record(event.about(patient_id))

    async def record_event(self, event: AuditRecord) -> None:
        await self._audit.record(event)

    async def search_recorded(self, caller: Principal, found: int) -> None:
        """A search across the caller's spaces (what was asked is not kept: it may name a
        patient; how much was found is)."""
        await self._audit.record(
            audited(caller, "collab.search", "CollabSpace", {"found": str(found)})
        )

    async def patient_event(
        self, inside: InSpace, patient_id: str, node_id: str, interaction: Interaction
    ) -> AuditRecord | None:
        """The audit event that lets the caller at a file of Patient `patient_id` (of the
        space's organisation), None (the refusal recorded) if `access` does not."""
        caller = inside.caller
        viewpoint = self._guard.viewpoint(caller)
        row = await self._database.fetch_one(
            *fhir_repository.lookup("Patient", patient_id, None, viewpoint)
        )
        found = None if row is None else fhir_repository.LookedUp.of(row)
        owner = found.owner if found is not None else inside.space.organisation_id
        try:
            event = self._guard.check(
                caller,
                interaction,
                PATIENT_DOCUMENT,
                node_id,
                owner,
                found.shared if found else False,
                found.opened if found else False,
                found.patient_id if found else patient_id,
            )
        except AccessDenied as denied:
            await self._audit.record(_as_file(denied.event, node_id, inside.space.id))
            return None
        if found is None:
            await self._audit.record(_as_file(event.refused("not-known"), node_id, inside.space.id))
            return None
        return _as_file(event, node_id, inside.space.id)

    async def patients_seen(self, inside: InSpace, files: Mapping[str, str]) -> set[str]:
        """Of the patients of `files` (a Patient's id: one of its files' ids, named in the
        audit trail), those whose files `access` lets the caller see in a listing; each
        patient asked once, a refusal recorded."""
        seen = set()
        for patient_id, node_id in files.items():
            if await self.patient_event(inside, patient_id, node_id, Interaction.SEARCH):
                seen.add(patient_id)
        return seen


def _as_file(event: AuditRecord, node_id: str, space_id: str) -> AuditRecord:
    """A decision taken as for a DocumentReference, naming the file it was about."""
    action = event.action.replace("fhir.", "collab.", 1)
    named = replace(event, action=action, target=file_target(node_id))
    return named.noting(space=space_id, decidedAs=PATIENT_DOCUMENT)
