"""Use-cases of the spaces themselves: create a space, see one's spaces, decide who is a
member (users of any organisation), the activity feed, and search across what one may see.
The files and folders inside a space are `collab.files`."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from medicus.collab import repository
from medicus.collab.models import MemberRow, SpaceRow
from medicus.collab.names import checked_name
from medicus.collab.nodes import new_node
from medicus.collab.permissions import InSpace, SpaceGate, space_target, token_allows
from medicus.collab.records import Activity, Member, Role, Space
from medicus.collab.repository import note_activity
from medicus.core.clock import Clock
from medicus.core.db import Database, utc_now
from medicus.core.errors import ApiError
from medicus.core.logging import get_logger
from medicus.core.mail import Mail, MailSender
from medicus.iam.tokens import Principal
from medicus.storage.service import ObjectStore

log = get_logger("medicus.collab")
MAX_DESCRIPTION = 2000
DEFAULT_TRASH_DAYS = 30


def _space_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > 200:
        raise ApiError(400, "A space's name has 1 to 200 characters.", title="Invalid name")
    return checked_name(name)


class Spaces:
    def __init__(
        self,
        database: Database,
        gate: SpaceGate,
        storage: ObjectStore,
        mail: MailSender,
        public_url: str,
        clock: Clock = utc_now,
    ) -> None:
        self._database = database
        self.gate = gate
        self._storage = storage
        self._mail = mail
        self._public_url = public_url
        self._clock = clock

    async def create(self, caller: Principal, name: str, description: str = "") -> Space:
        """A new space of the caller's organisation, with the caller as its manager."""
        if (
            caller.kind != "user"
            or caller.role == "patient"
            or not token_allows(caller, Role.EDITOR)
        ):
            await self.gate.refuse(caller, "collab.create", "CollabSpace", "not-staff")
            raise ApiError(403, "Spaces are created by the staff of an organisation.")
        if len(description) > MAX_DESCRIPTION:
            raise ApiError(400, f"A description has at most {MAX_DESCRIPTION} characters.")
        now = self._clock()
        space_id, root_id = str(uuid.uuid4()), str(uuid.uuid4())
        row = SpaceRow(
            id=space_id,
            organisation_id=caller.organisation_id,
            name=_space_name(name),
            description=description.strip(),
            root_id=root_id,
            trash_days=DEFAULT_TRASH_DAYS,
            created_by=caller.subject,
            created_at=now,
        )
        async with self._database.transaction() as session:
            session.add(row)
            await session.flush()
            session.add(
                new_node(space_id, None, repository.FOLDER, "", caller.subject, now, root_id)
            )
            session.add(
                MemberRow(
                    space_id=space_id,
                    user_id=caller.subject,
                    role=Role.MANAGER,
                    added_by=caller.subject,
                    added_at=now,
                )
            )
            await note_activity(
                session, space_id, caller.subject, "space.created", row.name, None, now
            )
        space = Space.of(row, Role.MANAGER)
        await self.gate.record(InSpace(caller, space), "collab.create", space_target(space_id))
        return space

    async def mine(self, caller: Principal) -> list[Space]:
        """The spaces the caller is a member of."""
        if caller.kind != "user" or not token_allows(caller, Role.VIEWER):
            return []
        async with self._database.snapshot() as session:
            found = await repository.spaces_of(session, caller.subject)
        return [Space.of(row, Role(role)) for row, role in found]

    async def get(self, caller: Principal, space_id: str) -> Space:
        inside = await self.gate.enter(caller, space_id, Role.VIEWER, "collab.read")
        return inside.space

    async def change(
        self,
        caller: Principal,
        space_id: str,
        name: str | None = None,
        description: str | None = None,
        trash_days: int | None = None,
    ) -> Space:
        """Rename a space, describe it, or say how long its trash keeps things (1 to 365 days)."""
        inside = await self.gate.enter(caller, space_id, Role.MANAGER, "collab.update")
        if description is not None and len(description) > MAX_DESCRIPTION:
            raise ApiError(400, f"A description has at most {MAX_DESCRIPTION} characters.")
        if trash_days is not None and not 1 <= trash_days <= 365:
            raise ApiError(400, "The trash keeps things for 1 to 365 days.")
        async with self._database.transaction() as session:
            row = await session.get(SpaceRow, space_id)
            assert row is not None
            row.name = _space_name(name) if name is not None else row.name
            row.description = description.strip() if description is not None else row.description
            row.trash_days = trash_days or row.trash_days
            await note_activity(
                session, space_id, caller.subject, "space.changed", row.name, None, self._clock()
            )
            changed = Space.of(row, inside.role)
        await self.gate.record(inside, "collab.update", space_target(space_id))
        return changed

    async def delete(self, caller: Principal, space_id: str) -> None:
        """Delete a space with everything in it, for good: its files' stored objects are
        deleted (their keys destroyed), its share links stop working."""
        inside = await self.gate.enter(caller, space_id, Role.MANAGER, "collab.delete")
        async with self._database.transaction() as session:
            ids = await repository.space_node_ids(session, space_id)
            objects = await repository.objects_of(session, ids)
            await repository.remove_nodes(session, ids)
            row = await session.get(SpaceRow, space_id)
            assert row is not None
            row.deleted_at = self._clock()
        for object_id in objects:
            await self._storage.delete(object_id)
        await self.gate.record(
            inside, "collab.delete", space_target(space_id), files=str(len(objects))
        )

    async def members(self, caller: Principal, space_id: str) -> list[Member]:
        await self.gate.enter(caller, space_id, Role.VIEWER, "collab.read")
        async with self._database.snapshot() as session:
            found = await repository.members(session, space_id)
        return [
            Member(user.id, user.display_name, user.email, Role(member.role), member.added_at)
            for member, user in found
        ]

    async def invite(self, caller: Principal, space_id: str, email: str, role: Role) -> Member:
        """Make the user with `email` (of any organisation on the platform) a member in
        `role`, or change their role; they are told by e-mail."""
        inside = await self.gate.enter(caller, space_id, Role.MANAGER, "collab.member")
        now = self._clock()
        async with self._database.transaction() as session:
            user = await repository.user_by_email(session, email)
            if user is None or not user.active:
                raise ApiError(
                    404,
                    "There is no active user with that e-mail address on this platform; "
                    "their organisation invites them first.",
                )
            existing = await repository.member(session, space_id, user.id)
            if existing is not None:
                await self._keep_a_manager(session, space_id, existing, role)
                existing.role = role
            else:
                session.add(
                    MemberRow(
                        space_id=space_id,
                        user_id=user.id,
                        role=role,
                        added_by=caller.subject,
                        added_at=now,
                    )
                )
            summary = f"{user.display_name} as {role}"
            await note_activity(
                session, space_id, caller.subject, "member.added", summary, None, now
            )
        await self.gate.record(
            inside, "collab.member", space_target(space_id), member=user.id, role=str(role)
        )
        if existing is None:
            await self._tell(user.email, inside.space, role)
        return Member(user.id, user.display_name, user.email, role, now)

    async def remove(self, caller: Principal, space_id: str, user_id: str) -> None:
        """Take a member out (a member may always leave); the last manager stays."""
        needed = Role.VIEWER if user_id == caller.subject else Role.MANAGER
        inside = await self.gate.enter(caller, space_id, needed, "collab.member")
        async with self._database.transaction() as session:
            existing = await repository.member(session, space_id, user_id)
            if existing is None:
                raise ApiError(404, "That user is not a member of this space.")
            await self._keep_a_manager(session, space_id, existing, None)
            await session.delete(existing)
            await note_activity(
                session, space_id, caller.subject, "member.removed", user_id, None, self._clock()
            )
        await self.gate.record(inside, "collab.member", space_target(space_id), removed=user_id)

    async def activity(
        self, caller: Principal, space_id: str, before: int | None = None, limit: int = 50
    ) -> list[Activity]:
        """The space's feed, newest first, `limit` entries older than entry `before`. An
        entry about a file of a patient whom `access` keeps from the caller is left out (its
        name may itself be patient data), also when the file was linked after the entry."""
        inside = await self.gate.enter(caller, space_id, Role.VIEWER, "collab.read")
        limit = max(1, min(limit, 200))
        shown: list[Activity] = []
        while len(shown) < limit:
            async with self._database.snapshot() as session:
                rows = await repository.activity(session, space_id, before, limit)
            files = {patient: str(row.node_id) for row, patient in reversed(rows) if patient}
            seen = await self.gate.patients_seen(inside, files)
            shown += [Activity.of(row) for row, patient in rows if not patient or patient in seen]
            if len(rows) < limit:
                break
            before = rows[-1][0].id
        return shown[:limit]

    @staticmethod
    async def _keep_a_manager(
        session: AsyncSession, space_id: str, member: MemberRow, new_role: Role | None
    ) -> None:
        if member.role != Role.MANAGER or new_role == Role.MANAGER:
            return
        if await repository.managers(session, space_id) <= 1:
            raise ApiError(
                409, "A space keeps at least one manager: make another member manager first."
            )

    async def _tell(self, email: str, space: Space, role: Role) -> None:
        """The e-mail to a new member; a failure to send does not undo the membership."""
        body = (
            f'You were added to the space "{space.name}" on medicus as {role}.\n\n'
            f"Open it: {self._public_url}/portal/spaces/{space.id}\n"
        )
        try:
            await self._mail.send(Mail(email, f"medicus: {space.name}", body))
        except ApiError as error:
            log.warning("space invitation mail not sent", reason=error.detail)
