"""Resumable uploads into a space (the portal's drag and drop, over tus): the uploads of
`storage.uploads`, sealed as they arrive, but of the SPACE's organisation (its keys, its
quota) whoever uploads, a member of another organisation too. What lets the caller in is
`SpaceGate` (an editor of the space), not storage's Binary scope of their own organisation.

- Creating one: the tus metadata `space` names the space (base64, as tus sends metadata);
  the caller must be its editor, and the upload is counted against the space's
  organisation's quota from its first byte on (413, 507 before anything is sent).
- Going on with one (HEAD, PATCH, DELETE): only the caller who began it, and only while the
  gate still lets them into that space as an editor; anyone else gets 404.
- Finishing one (`finish`): the complete upload's object becomes the newest version of the
  file of its name in a folder (a new file, or a new version of the one there, as
  `Files.write`: locks and patient data are respected). The object is adopted as that
  file's bytes at most once (`ObjectStore.adopt`: a second finish of the same upload finds
  it taken, 409), so no two versions ever share an object. Audited as any write to a space,
  with the upload's id; the activity feed shows it as an upload. An upload whose filing is
  refused (its name, a folder of that name, a lock) is given up, its quota freed.

A finished upload that is never filed (the browser closed in the second between its last
byte and its filing) keeps its object, counted and unowned, as an unfiled upload to a chart
does."""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime as dt
import re
import uuid
from collections.abc import AsyncIterable, Mapping
from pathlib import Path

from medicus.collab import repository
from medicus.collab.names import checked_name, name_key
from medicus.collab.nodes import Nodes, owner_of
from medicus.collab.permissions import InSpace, SpaceGate, file_target, space_target
from medicus.collab.records import Node, Role
from medicus.core.clock import Clock
from medicus.core.db import utc_now
from medicus.core.errors import ApiError
from medicus.iam.tokens import Principal
from medicus.storage.models import StorageUploadRow
from medicus.storage.permissions import StoragePermissions
from medicus.storage.service import ObjectStore, StoredObject
from medicus.storage.uploads import Checksum, NewUpload, Upload, UploadService

SPACE_KEY = "space"
"""The tus metadata key naming the space an upload goes to."""
_ID = re.compile(r"[A-Za-z0-9-]{1,64}")
_WRITE = "collab.write"


def space_of(metadata: Mapping[str, str | None]) -> str | None:
    """The space an upload's tus metadata names (None if it names none, or not readably)."""
    encoded = metadata.get(SPACE_KEY)
    if not encoded:
        return None
    try:
        named = base64.b64decode(encoded, validate=True).decode("ascii").strip()
    except (binascii.Error, UnicodeDecodeError):
        return None
    return named if _ID.fullmatch(named) else None


def _unknown(upload_id: str) -> ApiError:
    return ApiError(404, f"There is no upload {upload_id[:36]} here.")


class SpaceUploads(UploadService):
    """Resumable uploads into spaces (served by their own tus route), and filing them."""

    def __init__(
        self,
        store: ObjectStore,
        permissions: StoragePermissions,
        staging: Path,
        lifetime: dt.timedelta,
        gate: SpaceGate,
        nodes: Nodes,
        clock: Clock = utc_now,
    ) -> None:
        """As storage's uploads (the same staging folder), and the gate and rules of spaces."""
        super().__init__(store, permissions, staging, lifetime, clock)
        self._gate = gate
        self._nodes = nodes

    async def create(
        self,
        caller: Principal,
        new: NewUpload,
        body: AsyncIterable[bytes] | None = None,
        checksum: Checksum | None = None,
        organisation: str | None = None,
    ) -> Upload:
        """A new upload into the space its metadata names, of that space's organisation;
        400 if it names none, 404 or 403 (recorded) if the caller is not its editor."""
        space_id = space_of(new.metadata or {})
        if space_id is None:
            raise ApiError(400, "Upload-Metadata must name the space (`space`, its id).")
        inside = await self._gate.enter(caller, space_id, Role.EDITOR, _WRITE)
        organisation = inside.space.organisation_id
        upload = await super().create(caller, new, body, checksum, organisation)
        await self._gate.record(
            inside, "collab.upload", space_target(space_id), upload=upload.id, size=str(new.length)
        )
        return upload

    async def visible_upload(self, caller: Principal, upload_id: str) -> StorageUploadRow:
        """The upload, if the caller began it and is still an editor of its space (the gate
        records a refusal); 404 for any other upload, a chart's too."""
        row = await self.upload_row(upload_id) if _ID.fullmatch(upload_id) else None
        space_id = None if row is None else space_of(Upload.of(row).metadata)
        if row is None or space_id is None or row.created_by != caller.actor[:64]:
            await self._gate.refuse(caller, _WRITE, f"CollabUpload/{upload_id[:36]}", "not-theirs")
            raise _unknown(upload_id)
        inside = await self._gate.enter(caller, space_id, Role.EDITOR, _WRITE)
        if row.organisation_id != inside.space.organisation_id:
            raise _unknown(upload_id)
        return row

    async def finish(
        self, caller: Principal, space_id: str, folder_id: str | None, upload_id: str
    ) -> Node:
        """Make the caller's complete upload `upload_id` into `space_id` the newest version
        of the file of its name in folder `folder_id` (the top folder by default): a new
        file, or a new version of the one there. 409 if the upload is not complete yet, or
        was filed already. Refused for another reason (its name, a folder of that name, a
        lock: 400, 409, 423), the upload is given up: its bytes are deleted, its quota freed,
        and the user uploads it again when they may."""
        inside = await self._gate.enter(caller, space_id, Role.EDITOR, _WRITE)
        upload = await self.describe(caller, upload_id)
        if space_of(upload.metadata) != space_id:
            raise _unknown(upload_id)
        stored = None if upload.object_id is None else await self._store.describe(upload.object_id)
        if stored is None:
            raise ApiError(409, "The upload is not complete yet: send the rest of it first.")
        try:
            node, created = await self._file(inside, folder_id, stored)
        except ApiError:
            await self._give_up(inside, stored, upload_id)
            raise
        with contextlib.suppress(ApiError):
            await self.discard(upload_id)  # the upload's record; its object is the file's now
        action = "collab.create" if created else "collab.update"
        await self._gate.record(
            inside,
            action,
            file_target(node.id),
            node.patient_id,
            version=str(node.version),
            upload=upload_id,
        )
        return node

    async def _file(
        self, inside: InSpace, folder_id: str | None, stored: StoredObject
    ) -> tuple[Node, bool]:
        """The object as the newest version of the file of its name in the folder (as
        `Files.write` does), adopted first: only one filing of an upload ever gets it."""
        name = checked_name(stored.file_name or "")
        async with self._nodes.database.snapshot() as session:
            parent = await self._nodes.folder(session, inside, folder_id)
            existing = await repository.child(session, parent.id, name_key(name))
        if existing is not None:
            await self._nodes.writable(inside, Node.of(existing), None, None)
        else:
            await self._nodes.unlocked(inside, Node.of(parent))
        node_id = existing.id if existing is not None else str(uuid.uuid4())
        adopted = await self._adopt(inside, stored, owner_of(node_id))
        if adopted is None:
            raise ApiError(409, "This upload was filed already.")
        try:
            node = await self._nodes.commit(inside, parent.id, node_id, name, adopted, existing)
        except BaseException:
            await self._store.delete(adopted.id)
            raise
        return node, existing is None

    async def _give_up(self, inside: InSpace, stored: StoredObject, upload_id: str) -> None:
        """Delete a refused upload's object, unless a file has it (taken like a filing, so
        that a filing at the same moment keeps it), and its record."""
        if await self._adopt(inside, stored, f"CollabUpload/{upload_id}") is not None:
            await self._store.delete(stored.id)
        with contextlib.suppress(ApiError):
            await self.discard(upload_id)

    async def _adopt(
        self, inside: InSpace, stored: StoredObject, owner: str
    ) -> StoredObject | None:
        async with self._nodes.database.transaction() as session:
            return await self._store.adopt(
                session, stored.id, inside.space.organisation_id, inside.caller.actor[:64], owner
            )
