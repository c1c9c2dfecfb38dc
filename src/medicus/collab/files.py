"""Use-cases of files in a space: find them by id or path, list a folder, write a file (each
write a new version), read one (recorded), its versions and restoring an older one. Every one
asks `SpaceGate` first and lands in the audit trail."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterable, Sequence

from medicus.access.policy import Interaction
from medicus.collab import repository
from medicus.collab.names import checked_name, name_key
from medicus.collab.nodes import Nodes
from medicus.collab.permissions import InSpace, file_target, token_allows
from medicus.collab.records import Node, Role, Space, Version
from medicus.core.errors import ApiError
from medicus.iam.tokens import Principal
from medicus.storage.service import ObjectStore, StoredObject


class Files:
    """Finding, reading and writing files."""

    def __init__(self, nodes: Nodes) -> None:
        self._nodes = nodes

    @property
    def storage(self) -> ObjectStore:
        """Where the files' bytes are read from."""
        return self._nodes.storage

    @property
    def largest_file(self) -> int:
        return self._nodes.storage.max_object_bytes

    async def node(self, caller: Principal, space_id: str, node_id: str | None) -> Node:
        """A live file or folder of the space (None: its top folder); 404 if the caller may
        not see it. Reading its metadata is not recorded; its bytes are (`open`)."""
        inside = await self._nodes.gate.enter(caller, space_id, Role.VIEWER, "collab.read")
        return await self._nodes.visible_node(inside, node_id or inside.space.root_id)

    async def search(
        self,
        caller: Principal,
        text: str,
        content_type: str | None = None,
        owner: str | None = None,
        changed_since: dt.datetime | None = None,
        limit: int = 50,
    ) -> list[Node]:
        """Files and folders of the caller's spaces by name (and extracted text), type, who
        created them and when they changed, without files of patients `access` keeps from
        the caller; the search is recorded (counts only)."""
        words = [word for word in text.split() if word][:10]
        wanted = words or content_type or owner or changed_since
        if caller.kind != "user" or not wanted or not token_allows(caller, Role.VIEWER):
            return []
        async with self._nodes.database.snapshot() as session:
            spaces = {
                row.id: Space.of(row, Role(role))
                for row, role in await repository.spaces_of(session, caller.subject)
            }
            rows = await repository.search(
                session,
                list(spaces),
                words,
                content_type,
                owner,
                changed_since,
                max(1, min(limit, 200)),
            )
        found: list[Node] = []
        for node in (Node.of(row) for row in rows):
            found += await self._nodes.visible(InSpace(caller, spaces[node.space_id]), [node])
        await self._nodes.gate.search_recorded(caller, len(found))
        return found

    async def resolve(self, caller: Principal, space_id: str, names: Sequence[str]) -> Node:
        """The node at the path `names` below the space's root ([] is the root)."""
        inside = await self._nodes.gate.enter(caller, space_id, Role.VIEWER, "collab.read")
        return await self._nodes.at(inside, names)

    async def listing(
        self, caller: Principal, space_id: str, folder_id: str | None = None
    ) -> tuple[Node, list[Node]]:
        """A folder (the root by default) and what is in it that the caller may see."""
        inside = await self._nodes.gate.enter(caller, space_id, Role.VIEWER, "collab.read")
        folder = await self._nodes.visible_node(inside, folder_id or inside.space.root_id)
        if not folder.is_folder:
            raise ApiError(409, f"{folder.name} is a file, not a folder.")
        async with self._nodes.database.snapshot() as session:
            rows = await repository.children(session, folder.id)
        found = [Node.of(row) for row in rows]
        return folder, await self._nodes.visible(inside, found)

    async def path_of(self, caller: Principal, space_id: str, node_id: str) -> list[Node]:
        """The folders from the root down to the node, and the node."""
        inside = await self._nodes.gate.enter(caller, space_id, Role.VIEWER, "collab.read")
        return await self._nodes.chain(await self._nodes.visible_node(inside, node_id))

    async def write(
        self,
        caller: Principal,
        space_id: str,
        parent_id: str | None,
        name: str,
        size: int,
        declared_type: str | None,
        body: AsyncIterable[bytes],
        lock_token: str | None = None,
        if_match: str | None = None,
    ) -> tuple[Node, bool]:
        """Write the file `name` in folder `parent_id` (the root by default): a new file, or
        a new version of the one there. True if the file is new. 412 if `if_match` (an
        ETag, `*`) does not hold, 423 if another holds a lock on it and `lock_token` is not
        that lock's."""
        inside = await self._nodes.gate.enter(caller, space_id, Role.EDITOR, "collab.write")
        name = checked_name(name)
        async with self._nodes.database.snapshot() as session:
            parent = await self._nodes.folder(session, inside, parent_id)
            existing = await repository.child(session, parent.id, name_key(name))
        if existing is not None:
            await self._nodes.writable(inside, Node.of(existing), lock_token, if_match)
        elif if_match is not None:
            raise ApiError(412, f"There is no {name} to match (If-Match).")
        else:
            await self._nodes.unlocked(inside, Node.of(parent), lock_token)
        node_id = existing.id if existing is not None else str(uuid.uuid4())
        stored = await self._nodes.keep(inside, node_id, name, size, declared_type, body)
        try:
            node = await self._nodes.commit(inside, parent.id, node_id, name, stored, existing)
        except BaseException:
            await self._nodes.storage.delete(stored.id)
            raise
        action = "collab.create" if existing is None else "collab.update"
        await self._nodes.gate.record(
            inside, action, file_target(node.id), node.patient_id, version=str(node.version)
        )
        return node, existing is None

    async def open(
        self, caller: Principal, space_id: str, node_id: str, version: int | None = None
    ) -> tuple[Node, StoredObject]:
        """A file's bytes (its current version, or `version`) for reading: recorded."""
        inside = await self._nodes.gate.enter(caller, space_id, Role.VIEWER, "collab.read")
        node = await self._nodes.visible_node(inside, node_id, Interaction.READ)
        if node.is_folder:
            raise ApiError(409, f"{node.name} is a folder; list it instead.")
        number = node.version if version is None else version
        async with self._nodes.database.snapshot() as session:
            row = await repository.version(session, node.id, number)
        stored = None if row is None else await self._nodes.storage.describe(row.object_id)
        if stored is None:
            raise ApiError(404, f"{node.name} has no version {number}.")
        await self._read_recorded(inside, node, number)
        return node, stored

    async def _read_recorded(self, inside: InSpace, node: Node, number: int) -> None:
        """The read in the audit trail; of a patient's file as `access` allowed it (its
        reason: own organisation, consent, break-glass), in the patient's access log."""
        gate = self._nodes.gate
        if node.patient_id is None:
            await gate.record(inside, "collab.read", file_target(node.id), version=str(number))
            return
        event = await gate.patient_event(inside, node.patient_id, node.id, Interaction.READ)
        if event is None:
            raise ApiError(404, f"There is no file or folder {node.id} here.")
        await gate.record_event(event.noting(version=str(number)))

    async def versions(self, caller: Principal, space_id: str, node_id: str) -> list[Version]:
        inside = await self._nodes.gate.enter(caller, space_id, Role.VIEWER, "collab.read")
        node = await self._nodes.visible_node(inside, node_id)
        async with self._nodes.database.snapshot() as session:
            rows = await repository.versions(session, node.id)
        return [Version.of(row) for row in rows]

    async def restore_version(
        self, caller: Principal, space_id: str, node_id: str, number: int
    ) -> Node:
        """Make an older version the current one again (as a new version: none is lost)."""
        node, stored = await self.open(caller, space_id, node_id, number)
        if number == node.version:
            return node
        inside = await self._nodes.gate.enter(caller, space_id, Role.EDITOR, "collab.write")
        await self._nodes.unlocked(inside, node)
        body = self._nodes.storage.stream(stored.id)
        copy = await self._nodes.keep(
            inside, node.id, node.name, stored.size, stored.content_type, body
        )
        try:
            restored = await self._nodes.commit(
                inside, node.parent_id, node.id, node.name, copy, None, restored_from=number
            )
        except BaseException:
            await self._nodes.storage.delete(copy.id)
            raise
        await self._nodes.gate.record(
            inside, "collab.update", file_target(node.id), node.patient_id, restored=str(number)
        )
        return restored
