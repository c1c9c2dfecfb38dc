"""The rules that the use-cases on files and folders share (`Nodes`): what the caller may
see (a file linked to a Patient only if `access` allows), where a name may go, locks and
preconditions, and keeping a version's bytes as a stored object of the space's organisation
(encrypted, replicated, counted against its quota) with the text search finds in it."""

from __future__ import annotations

import datetime as dt
import mimetypes
import uuid
from collections.abc import AsyncIterable, Sequence

from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from medicus.access.policy import Interaction
from medicus.collab import repository
from medicus.collab.models import NodeRow, VersionRow
from medicus.collab.names import name_key
from medicus.collab.permissions import (
    InSpace,
    SpaceGate,
    file_target,
    unknown_node,
)
from medicus.collab.records import Node
from medicus.collab.repository import note_activity
from medicus.collab.text import DocumentText
from medicus.core.clock import Clock
from medicus.core.db import Database, utc_now
from medicus.core.errors import ApiError
from medicus.core.logging import get_logger
from medicus.storage.service import NewObject, ObjectStore, StoredObject
from medicus.storage.sniffing import GENERIC_TYPES, essence, peek, settle

log = get_logger("medicus.collab")

VERSIONS_KEPT = 50
"""Versions of a file kept; older ones are deleted (office programs save often)."""
LOCK_SECONDS = 30 * 60
MAX_COMMENT = 5000


def owner_of(node_id: str) -> str:
    """The owner of the stored objects holding a file's versions."""
    return f"CollabFile/{node_id}"


class Nodes:
    """The rules every use-case on files and folders shares: what the caller may see, where
    a name may go, locks and preconditions, and keeping a version's bytes."""

    def __init__(
        self,
        database: Database,
        gate: SpaceGate,
        storage: ObjectStore,
        clock: Clock = utc_now,
        versions_kept: int = VERSIONS_KEPT,
    ) -> None:
        self.database = database
        self.gate = gate
        self.storage = storage
        self.clock = clock
        self.versions_kept = versions_kept
        self.texts = DocumentText(storage)

    async def visible(self, inside: InSpace, nodes: list[Node]) -> list[Node]:
        """`nodes` without the files of patients whom `access` keeps from the caller (each
        patient asked once; a refusal is recorded)."""
        files = {node.patient_id: node.id for node in reversed(nodes) if node.patient_id}
        seen = await self.gate.patients_seen(inside, files)
        return [node for node in nodes if node.patient_id is None or node.patient_id in seen]

    async def chain(self, node: Node) -> list[Node]:
        """The folders from the space's root down to `node`, and `node`."""
        async with self.database.snapshot() as session:
            row = await repository.live_node(session, node.space_id, node.id)
            above = [] if row is None else await repository.ancestors(session, row)
        return [*(Node.of(parent) for parent in above), node]

    async def visible_node(
        self, inside: InSpace, node_id: str, interaction: Interaction | None = None
    ) -> Node:
        async with self.database.snapshot() as session:
            row = await repository.live_node(session, inside.space.id, node_id)
        if row is None:
            await self.gate.refuse(
                inside.caller,
                "collab.read",
                file_target(node_id),
                "not-known",
                space=inside.space.id,
            )
            raise unknown_node(node_id)
        return await self._seen(inside, Node.of(row), interaction)

    async def _seen(
        self, inside: InSpace, node: Node, interaction: Interaction | None = None
    ) -> Node:
        """`node`, if it is no patient's data or `access` lets the caller see it; else 404."""
        if node.patient_id is not None:
            event = await self.gate.patient_event(
                inside, node.patient_id, node.id, interaction or Interaction.READ
            )
            if event is None:
                raise unknown_node(node.id)
        return node

    async def at(self, inside: InSpace, names: Sequence[str]) -> Node:
        """The node at the path `names` below the space's top folder, one query a step."""
        if not names:
            return await self.visible_node(inside, inside.space.root_id)
        async with self.database.snapshot() as session:
            row = await repository.child(session, inside.space.root_id, name_key(names[0]))
            for name in names[1:]:
                if row is None or row.kind != repository.FOLDER:
                    row = None
                    break
                row = await repository.child(session, row.id, name_key(name))
        if row is None:
            raise unknown_node("/".join(names))
        return await self._seen(inside, Node.of(row))

    async def folder(
        self, session: AsyncSession, inside: InSpace, folder_id: str | None
    ) -> NodeRow:
        row = await repository.live_node(
            session, inside.space.id, folder_id or inside.space.root_id
        )
        if row is None:
            raise unknown_node(folder_id or "/")
        if row.kind != repository.FOLDER:
            raise ApiError(409, f"{row.name} is a file, not a folder.")
        return row

    async def name_free(
        self, session: AsyncSession, inside: InSpace, parent_id: str, name: str
    ) -> None:
        """409 if the folder holds `name`, 423 if someone else's lock covers the folder;
        else the name is held for this transaction, so that two writers of one new name
        take turns and the second one sees the first."""
        await self.covered_by_no_lock(session, inside, parent_id, name)
        if await repository.claimed_child(session, parent_id, name_key(name)) is not None:
            raise ApiError(409, f"There is already something named {name} in that folder.")

    async def clear(
        self,
        session: AsyncSession,
        inside: InSpace,
        parent_id: str,
        name: str,
        moving: str,
        replace: bool,
        now: dt.datetime,
    ) -> None:
        """Make room for `name` in the folder: 409 if taken (unless by the node that moves,
        or `replace`, which trashes what was there)."""
        await self.covered_by_no_lock(session, inside, parent_id, name)
        there = await repository.claimed_child(session, parent_id, name_key(name))
        if there is None or there.id == moving:
            return
        if not replace:
            raise ApiError(409, f"There is already something named {name} in that folder.")
        ids = await repository.subtree_ids(session, there.id)
        if await repository.live_locks(session, ids, now):
            raise locked(name)
        await repository.trash_nodes(session, ids, there.id, inside.caller.subject, now)

    async def writable(
        self, inside: InSpace, node: Node, lock_token: str | None, if_match: str | None
    ) -> None:
        if node.is_folder:
            raise ApiError(409, f"{node.name} is a folder.")
        if node.patient_id is not None:
            event = await self.gate.patient_event(
                inside, node.patient_id, node.id, Interaction.UPDATE
            )
            if event is None:
                raise unknown_node(node.id)
        if if_match is not None and if_match.strip() not in ("*", node.etag):
            raise ApiError(
                412,
                f"{node.name} was changed by someone else (it is at version {node.version}); "
                "reload it and apply your change again.",
            )
        await self.unlocked(inside, node, lock_token)

    async def unlocked(self, inside: InSpace, node: Node, token: str | None = None) -> None:
        """423 if someone else's lock covers the node (`token` names the caller's lock)."""
        async with self.database.snapshot() as session:
            await self.covered_by_no_lock(session, inside, node.id, node.name, token)

    async def covered_by_no_lock(
        self,
        session: AsyncSession,
        inside: InSpace,
        node_id: str,
        name: str,
        token: str | None = None,
    ) -> None:
        """423 if a lock that is not the caller's covers the node: one on it, or a
        depth-infinity lock on a folder above it (a WebDAV client's lock of a folder keeps
        the portal and the API out of it too)."""
        held = await repository.locks_covering(session, node_id, self.clock())
        if any(row.principal != inside.caller.subject and row.token != token for row in held):
            raise locked(name or inside.space.name)

    async def keep(
        self,
        inside: InSpace,
        node_id: str,
        name: str,
        size: int,
        declared_type: str | None,
        body: AsyncIterable[bytes],
    ) -> StoredObject:
        """The bytes as a stored object of the space's organisation (its quota)."""
        head, rest = await peek(body)
        declared = None
        if declared_type is not None and essence(declared_type) not in GENERIC_TYPES:
            declared = declared_type
        content_type = settle(declared, head)
        if content_type == "application/octet-stream":
            content_type = mimetypes.guess_type(name)[0] or content_type
        new = NewObject(
            inside.space.organisation_id,
            size,
            content_type,
            name,
            owner_of(node_id),
            inside.caller.actor[:64],
        )
        return await self.storage.put(new, rest)

    async def commit(
        self,
        inside: InSpace,
        parent_id: str | None,
        node_id: str,
        name: str,
        stored: StoredObject,
        existing: NodeRow | None,
        restored_from: int | None = None,
    ) -> Node:
        """Record the stored object as the file's newest version (and the file, if new: if
        another writer created a file of that name meanwhile, this becomes its next version,
        so that nothing written is lost); versions beyond the kept ones are deleted after, and
        the text of the new one is read."""
        try:
            node, old = await self._record(
                inside, parent_id, node_id, name, stored, existing, restored_from
            )
        except IntegrityError:
            # Two writers created the same name at once (PostgreSQL): the other one is
            # committed now, so this write becomes its next version.
            node, old = await self._record(
                inside, parent_id, node_id, name, stored, existing, restored_from
            )
        for version in old:
            await self.storage.delete(version.object_id)
        await self.index_text(node, stored)
        return node

    async def index_text(self, node: Node, stored: StoredObject) -> None:
        """Keep the text of the file's version `node.version` for search (`collab.text`).

        It is read once the version is committed (a document that upsets a library cannot
        cost the upload) and before the upload is answered, rather than by a background
        job: search finds a document as soon as its upload is done, and there is no queue to
        keep in the database. Since text is read up to 200,000 characters, an office file of
        a few MB or a scan with a text layer costs 0.1 to 0.2 s; the worst case is a long
        PDF of text, whose pages pypdf lists first (10 MB, 4,700 pages: 0.8 s against 0.1 s
        for 10 MB without text, `benchmarks/collab.py`); never more than `text.SECONDS`. A
        document that cannot be read has no text; the upload stands all the same."""
        text = await self.texts.of(stored, node.name)
        if text is None:
            return
        try:
            async with self.database.transaction() as session:
                await repository.set_text(session, node.id, node.version, text)
        except DBAPIError as error:
            log.warning("file text not kept", node_id=node.id, error_type=type(error).__name__)

    async def _record(
        self,
        inside: InSpace,
        parent_id: str | None,
        node_id: str,
        name: str,
        stored: StoredObject,
        existing: NodeRow | None,
        restored_from: int | None,
    ) -> tuple[Node, list[VersionRow]]:
        now = self.clock()
        subject = inside.caller.subject
        space_id = inside.space.id
        async with self.database.transaction() as session:
            row = await repository.live_node(session, space_id, node_id, for_update=True)
            if row is None and existing is not None:
                raise unknown_node(name)
            if row is None:
                row = await repository.child(session, parent_id or "", name_key(name), True)
                if row is not None and row.kind != repository.FILE:
                    raise ApiError(409, f"There is already a folder named {name} there.")
            if row is None:
                row = new_node(space_id, parent_id, repository.FILE, name, subject, now, node_id)
                session.add(row)
                await session.flush()
            row.version += 1
            row.size, row.sha256, row.content_type = stored.size, stored.sha256, stored.content_type
            row.updated_by, row.updated_at = subject, now
            row.text_content = None
            session.add(_version_row(row, stored, subject, now, restored_from))
            action = "uploaded" if row.version == 1 else "new-version"
            if restored_from is not None:
                action = "version-restored"
            await note_activity(session, space_id, subject, action, name, row.id, now)
            old = await repository.versions_beyond(session, row.id, self.versions_kept)
            await repository.remove_versions(session, row.id, [v.number for v in old])
            return Node.of(row), list(old)


def _version_row(
    node: NodeRow,
    stored: StoredObject,
    creator: str,
    now: dt.datetime,
    restored_from: int | None,
) -> VersionRow:
    return VersionRow(
        node_id=node.id,
        number=node.version,
        object_id=stored.id,
        size=stored.size,
        sha256=stored.sha256,
        content_type=stored.content_type,
        created_by=creator,
        created_at=now,
        restored_from=restored_from,
    )


def new_node(
    space_id: str,
    parent_id: str | None,
    kind: str,
    name: str,
    creator: str,
    now: dt.datetime,
    node_id: str | None = None,
) -> NodeRow:
    return NodeRow(
        id=node_id or str(uuid.uuid4()),
        space_id=space_id,
        parent_id=parent_id,
        kind=kind,
        name=name,
        name_key=name_key(name),
        version=0,
        size=0,
        content_type="",
        sha256="",
        created_by=creator,
        created_at=now,
        updated_by=creator,
        updated_at=now,
    )


def locked(name: str) -> ApiError:
    return ApiError(
        423,
        f"{name} is locked for editing by someone else; try again when they are done.",
        title="Locked",
    )
