"""Use-cases that change a space's tree: folders, move and rename, copy, the trash (with
what a folder held) and its retention."""

from __future__ import annotations

import uuid

from medicus.access.policy import Interaction
from medicus.collab import repository
from medicus.collab.names import checked_name, name_key
from medicus.collab.nodes import Nodes, locked, new_node
from medicus.collab.permissions import (
    InSpace,
    file_target,
    unknown_node,
)
from medicus.collab.records import Node, Role
from medicus.collab.repository import note_activity
from medicus.core.errors import ApiError
from medicus.iam.tokens import Principal


class Tree:
    """Folders, moving, copying and the trash."""

    def __init__(self, nodes: Nodes) -> None:
        self._nodes = nodes

    async def create_folder(
        self, caller: Principal, space_id: str, parent_id: str | None, name: str
    ) -> Node:
        inside = await self._nodes.gate.enter(caller, space_id, Role.EDITOR, "collab.write")
        name = checked_name(name)
        now = self._nodes.clock()
        async with self._nodes.database.transaction() as session:
            parent = await self._nodes.folder(session, inside, parent_id)
            await self._nodes.name_free(session, inside, parent.id, name)
            row = new_node(space_id, parent.id, repository.FOLDER, name, caller.subject, now)
            session.add(row)
            await note_activity(
                session, space_id, caller.subject, "folder.created", name, row.id, now
            )
        await self._nodes.gate.record(inside, "collab.create", file_target(row.id), kind="folder")
        return Node.of(row)

    async def move(
        self,
        caller: Principal,
        space_id: str,
        node_id: str,
        parent_id: str | None,
        new_name: str | None = None,
        replace: bool = False,
    ) -> Node:
        """Move and/or rename within the space; 409 into its own subfolder or onto a name
        in use (unless `replace`, which puts what was there in the trash), 423 if locked."""
        inside = await self._nodes.gate.enter(caller, space_id, Role.EDITOR, "collab.write")
        node = await self._nodes.visible_node(inside, node_id)
        if node.parent_id is None:
            raise ApiError(409, "The space's top folder cannot be moved.")
        await self._nodes.unlocked(inside, node)
        name = checked_name(new_name) if new_name is not None else node.name
        now = self._nodes.clock()
        async with self._nodes.database.transaction() as session:
            target = await self._nodes.folder(session, inside, parent_id or node.parent_id)
            if target.id in await repository.subtree_ids(session, node.id):
                raise ApiError(409, f"{node.name} cannot be moved into itself or its subfolders.")
            await self._nodes.covered_by_no_lock(session, inside, node.parent_id, node.name)
            await self._nodes.clear(session, inside, target.id, name, node.id, replace, now)
            row = await repository.live_node(session, space_id, node.id)
            assert row is not None
            row.parent_id, row.name, row.name_key = target.id, name, name_key(name)
            row.updated_by, row.updated_at = caller.subject, now
            summary = f"{node.name} → {name}" if name != node.name else name
            await note_activity(session, space_id, caller.subject, "moved", summary, row.id, now)
            moved = Node.of(row)
        await self._nodes.gate.record(inside, "collab.move", file_target(node.id), node.patient_id)
        return moved

    async def copy(
        self,
        caller: Principal,
        space_id: str,
        node_id: str,
        parent_id: str | None,
        new_name: str | None = None,
    ) -> Node:
        """A copy of a file (its current version) or of a folder and all it holds."""
        inside = await self._nodes.gate.enter(caller, space_id, Role.EDITOR, "collab.write")
        node = await self._nodes.visible_node(inside, node_id, Interaction.READ)
        name = checked_name(new_name) if new_name is not None else node.name
        async with self._nodes.database.snapshot() as session:
            target = await self._nodes.folder(session, inside, parent_id or node.parent_id)
            if target.id in await repository.subtree_ids(session, node.id):
                raise ApiError(409, f"{node.name} cannot be copied into itself.")
        copied = await self._copy(inside, node, target.id, name)
        await self._nodes.gate.record(
            inside, "collab.copy", file_target(node.id), node.patient_id, copy=copied.id
        )
        return copied

    async def _copy(self, inside: InSpace, node: Node, parent_id: str, name: str) -> Node:
        if not node.is_folder:
            async with self._nodes.database.snapshot() as session:
                await self._nodes.name_free(session, inside, parent_id, name)
                current = await repository.version(session, node.id, node.version)
            assert current is not None
            node_id = str(uuid.uuid4())
            body = self._nodes.storage.stream(current.object_id)
            stored = await self._nodes.keep(
                inside, node_id, name, current.size, current.content_type, body
            )
            copied = await self._nodes.commit(inside, parent_id, node_id, name, stored, None)
            async with self._nodes.database.transaction() as session:
                await repository.copy_properties(session, node.id, node_id)
                if node.patient_id is not None:
                    row = await repository.live_node(session, inside.space.id, node_id)
                    assert row is not None
                    row.patient_id = node.patient_id
            return copied
        now = self._nodes.clock()
        async with self._nodes.database.transaction() as session:
            await self._nodes.name_free(session, inside, parent_id, name)
            row = new_node(
                inside.space.id, parent_id, repository.FOLDER, name, inside.caller.subject, now
            )
            session.add(row)
            await session.flush()
            await repository.copy_properties(session, node.id, row.id)
            folder = Node.of(row)
        async with self._nodes.database.snapshot() as session:
            inner = [Node.of(child) for child in await repository.children(session, node.id)]
        for child in await self._nodes.visible(inside, inner):
            await self._copy(inside, child, folder.id, child.name)
        return folder

    async def trash(self, caller: Principal, space_id: str, node_id: str) -> Node:
        """Put a file or folder (with what it holds) in the space's trash."""
        inside = await self._nodes.gate.enter(caller, space_id, Role.EDITOR, "collab.delete")
        node = await self._nodes.visible_node(inside, node_id)
        if node.parent_id is None:
            raise ApiError(409, "The space's top folder cannot be deleted.")
        now = self._nodes.clock()
        async with self._nodes.database.transaction() as session:
            ids = await repository.subtree_ids(session, node.id)
            if await repository.live_locks(session, ids, now):
                raise locked(node.name)
            await self._nodes.covered_by_no_lock(session, inside, node.parent_id, node.name)
            await repository.trash_nodes(session, ids, node.id, caller.subject, now)
            await note_activity(
                session, space_id, caller.subject, "trashed", node.name, node.id, now
            )
        await self._nodes.gate.record(
            inside, "collab.delete", file_target(node.id), node.patient_id, nodes=str(len(ids))
        )
        return node

    async def trash_list(self, caller: Principal, space_id: str) -> list[Node]:
        inside = await self._nodes.gate.enter(caller, space_id, Role.VIEWER, "collab.read")
        async with self._nodes.database.snapshot() as session:
            rows = await repository.trash_of(session, space_id)
        return await self._nodes.visible(inside, [Node.of(row) for row in rows])

    async def restore(self, caller: Principal, space_id: str, node_id: str) -> Node:
        """Take a node out of the trash, to where it was; 409 if its name is taken there
        now or its folder is gone."""
        inside = await self._nodes.gate.enter(caller, space_id, Role.EDITOR, "collab.write")
        now = self._nodes.clock()
        async with self._nodes.database.transaction() as session:
            row = await repository.any_node(session, space_id, node_id)
            if row is None or row.trash_root != row.id:
                raise unknown_node(node_id)
            parent = await repository.live_node(session, space_id, row.parent_id or "")
            if parent is None:
                raise ApiError(409, "The folder it was in is gone; restore that folder first.")
            await self._nodes.name_free(session, inside, parent.id, row.name)
            await repository.untrash(session, row.id)
            await note_activity(
                session, space_id, caller.subject, "restored", row.name, row.id, now
            )
            restored = Node.of(row)
        await self._nodes.gate.record(
            inside, "collab.restore", file_target(node_id), restored.patient_id
        )
        return restored

    async def purge_expired(self, limit: int = 100) -> int:
        """Delete what lay in a trash longer than its space keeps it (the background work):
        the nodes, and their versions' stored objects (crypto-shredded)."""
        async with self._nodes.database.snapshot() as session:
            due = await repository.expired_trash(session, self._nodes.clock(), limit)
        for space_id, node_id in due:
            await self.erase(space_id, node_id)
        return len(due)

    async def erase(self, space_id: str, node_id: str) -> None:
        """Delete a trashed node and what was trashed with it, for good."""
        async with self._nodes.database.transaction() as session:
            ids = await repository.subtree_ids(session, node_id, live=False)
            objects = await repository.objects_of(session, ids)
            await repository.remove_nodes(session, ids)
        for object_id in objects:
            await self._nodes.storage.delete(object_id)
