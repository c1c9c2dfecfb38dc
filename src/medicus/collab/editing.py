"""Use-cases around editing a file: locks (the same ones WebDAV clients take), comments,
and linking a file to a Patient, which makes it patient data that `access` decides on."""

from __future__ import annotations

import datetime as dt
import uuid

from medicus.access.policy import Interaction
from medicus.collab import repository
from medicus.collab.models import CommentRow, LockRow
from medicus.collab.nodes import LOCK_SECONDS, MAX_COMMENT, Nodes, locked
from medicus.collab.permissions import (
    file_target,
)
from medicus.collab.records import Comment, Node, Role
from medicus.collab.repository import note_activity
from medicus.core.db import hold_lock
from medicus.core.errors import ApiError
from medicus.iam.tokens import Principal


class Editing:
    """Locks for editing, comments, and linking a file to a patient."""

    def __init__(self, nodes: Nodes) -> None:
        self._nodes = nodes

    async def lock(
        self, caller: Principal, space_id: str, node_id: str, seconds: int = LOCK_SECONDS
    ) -> LockRow:
        """An exclusive lock on a file for editing (the same locks WebDAV clients take);
        423 if someone else holds one."""
        inside = await self._nodes.gate.enter(caller, space_id, Role.EDITOR, "collab.lock")
        node = await self._nodes.visible_node(inside, node_id)
        now = self._nodes.clock()
        seconds = max(60, min(seconds, 24 * 3600))
        path = [n.name for n in await self._nodes.chain(node)][1:]
        async with self._nodes.database.transaction() as session:
            await hold_lock(session, f"collab-lock:{node.id}")
            if await repository.live_locks(session, [node.id], now):
                raise locked(node.name)
            row = LockRow(
                token=f"opaquelocktoken:{uuid.uuid4()}",
                root="/" + "/".join([space_id, *path]),
                space_id=space_id,
                node_id=node.id,
                principal=caller.subject,
                scope="exclusive",
                depth="0",
                owner_xml="",
                timeout_seconds=seconds,
                expires_at=now + dt.timedelta(seconds=seconds),
            )
            session.add(row)
            await note_activity(
                session, space_id, caller.subject, "locked", node.name, node.id, now
            )
        await self._nodes.gate.record(inside, "collab.lock", file_target(node.id))
        return row

    async def unlock(self, caller: Principal, space_id: str, node_id: str) -> None:
        """Release the caller's locks on the file (a manager may break anyone's)."""
        inside = await self._nodes.gate.enter(caller, space_id, Role.EDITOR, "collab.lock")
        node = await self._nodes.visible_node(inside, node_id)
        now = self._nodes.clock()
        async with self._nodes.database.transaction() as session:
            held = await repository.live_locks(session, [node.id], now)
            mine = [row for row in held if row.principal == caller.subject]
            if held and not mine and inside.role is not Role.MANAGER:
                raise locked(node.name)
            for row in mine or held:
                await session.delete(row)
            await note_activity(
                session, space_id, caller.subject, "unlocked", node.name, node.id, now
            )
        await self._nodes.gate.record(inside, "collab.unlock", file_target(node.id))

    async def comments(self, caller: Principal, space_id: str, node_id: str) -> list[Comment]:
        inside = await self._nodes.gate.enter(caller, space_id, Role.VIEWER, "collab.read")
        node = await self._nodes.visible_node(inside, node_id, Interaction.READ)
        async with self._nodes.database.snapshot() as session:
            rows = await repository.comments(session, node.id)
        return [Comment.of(row) for row in rows]

    async def comment(self, caller: Principal, space_id: str, node_id: str, body: str) -> Comment:
        """A comment on a file or folder (viewers may comment: it changes no file)."""
        inside = await self._nodes.gate.enter(caller, space_id, Role.VIEWER, "collab.comment")
        node = await self._nodes.visible_node(inside, node_id, Interaction.READ)
        body = body.strip()
        if not body or len(body) > MAX_COMMENT:
            raise ApiError(400, f"A comment has 1 to {MAX_COMMENT} characters.")
        now = self._nodes.clock()
        row = CommentRow(
            id=str(uuid.uuid4()), node_id=node.id, author=caller.subject, body=body, created_at=now
        )
        async with self._nodes.database.transaction() as session:
            session.add(row)
            await note_activity(
                session, space_id, caller.subject, "commented", node.name, node.id, now
            )
        await self._nodes.gate.record(
            inside, "collab.comment", file_target(node.id), node.patient_id
        )
        return Comment.of(row)

    async def link_patient(
        self, caller: Principal, space_id: str, node_id: str, patient_id: str | None
    ) -> Node:
        """Make a file patient data of `patient_id` (a Patient the caller may see), or
        plain data again (None)."""
        inside = await self._nodes.gate.enter(caller, space_id, Role.EDITOR, "collab.write")
        node = await self._nodes.visible_node(inside, node_id)
        if node.is_folder:
            raise ApiError(409, "Only files are linked to a patient.")
        if patient_id is not None:
            event = await self._nodes.gate.patient_event(
                inside, patient_id, node.id, Interaction.UPDATE
            )
            if event is None:
                raise ApiError(404, f"Patient/{patient_id} is not known here.")
        async with self._nodes.database.transaction() as session:
            row = await repository.live_node(session, space_id, node.id)
            assert row is not None
            row.patient_id = patient_id
            linked = Node.of(row)
        await self._nodes.gate.record(
            inside, "collab.link", file_target(node.id), patient_id or node.patient_id
        )
        return linked
