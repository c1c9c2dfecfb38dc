"""The folders and files of a space as WsgiDAV resources (`Folder`, `File`; `webdav_provider`
finds them). Every resource acts through the collab services (`Files`, `Tree`, `DavLocks`) as
the caller, so that `SpaceGate` decides and records exactly as for the REST API; nothing here
runs SQL. Names inside a space are compared as the services compare them (case and
normalisation aside).

MOVE, COPY and DELETE are done natively (`handle_move`, …): a move is `Tree.move` (one step,
with what a folder holds), a delete puts into the space's trash. WsgiDAV answers a native
MOVE or COPY with 204 even where the destination is new (RFC 4918 says 201)."""

from __future__ import annotations

import unicodedata
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from wsgidav import util, xml_tools
from wsgidav.dav_error import DAVError, PRECONDITION_CODE_PropfindFiniteDepth
from wsgidav.dav_provider import DAVCollection, DAVNonCollection, _DAVResource

from medicus.collab.files import Files
from medicus.collab.names import checked_name
from medicus.collab.properties import Properties, check_property
from medicus.collab.records import Node, Role, Space
from medicus.collab.service import Spaces
from medicus.collab.tree import Tree
from medicus.collab.webdav_context import DavRequest, dav_error
from medicus.collab.webdav_io import SealedSpool, StoredReader, too_large
from medicus.collab.webdav_locks import DavLocks
from medicus.core.errors import ApiError
from medicus.storage.service import StoredObject

if TYPE_CHECKING:
    from medicus.collab.webdav_provider import SpacesProvider


SPACES_IN_THE_PORTAL = "A space is renamed, copied and removed in the portal, not here."


@dataclass(frozen=True)
class DavServices:
    """What the resources act through, and where PUT bodies are staged."""

    spaces: Spaces
    files: Files
    tree: Tree
    locks: DavLocks
    properties: Properties
    staging: Path


def ref_url(space_id: str, names: list[str], collection: bool) -> str:
    """A resource's key for WsgiDAV's locks: `/<space id>/<names…>` (NFC), quoted."""
    path = "/".join(["", space_id, *(unicodedata.normalize("NFC", name) for name in names)])
    return quote(path + "/" if collection else path)


def resource_of(
    path: str,
    environ: dict[str, Any],
    services: DavServices,
    space: Space,
    names: list[str],
    node: Node | None,
) -> Any:
    if node is None or node.is_folder:
        return Folder(path, environ, services, space, names, node)
    return File(path, environ, services, space, names, node)


class _InSpace:
    """What folders and files of a space share: their identity, dates, and being deleted,
    moved and copied (by the services, natively)."""

    path: str
    environ: dict[str, Any]
    provider: SpacesProvider
    is_collection: bool

    def __init__(
        self, services: DavServices, space: Space, names: list[str], node: Node | None
    ) -> None:
        self.services = services
        self.space = space
        self.names = names
        self.node = node
        self.own_properties: dict[str, str] | None = None
        """The clients' own properties, read once (for a folder's members, all at once)."""

    @property
    def node_id(self) -> str:
        return self.node.id if self.node is not None else self.space.root_id

    def get_ref_url(self) -> str:
        return ref_url(self.space.id, self.names, self.is_collection)

    def get_creation_date(self) -> float:
        return (self.node or self.space).created_at.timestamp()

    def get_last_modified(self) -> float:
        changed = self.node.updated_at if self.node is not None else self.space.created_at
        return changed.timestamp()

    @property
    def is_space(self) -> bool:
        """Whether this is the space's top folder (the space's folder in `/dav/`)."""
        return self.node is None or self.node.parent_id is None

    def _own_properties(self) -> dict[str, str]:
        if self.own_properties is None:
            request = DavRequest.current()
            found = request.run(
                self.services.properties.of(request.caller, self.space.id, [self.node_id])
            )
            self.own_properties = found[self.node_id]
        return self.own_properties

    def get_property_names(self, *, is_allprop: bool) -> list[str]:
        names = _DAVResource.get_property_names(self, is_allprop=is_allprop)
        return [*names, *self._own_properties()]

    def get_property_value(self, name: str) -> Any:
        if not _own(name):
            return _DAVResource.get_property_value(self, name)
        value = self._own_properties().get(name)
        if value is None:
            raise DAVError(404)
        return xml_tools.string_to_xml(value)

    def set_property_value(self, name: str, value: Any, *, dry_run: bool = False) -> None:
        """A client's own property (`collab.properties`) set, or removed (None); WsgiDAV
        asks for every property of a PROPPATCH with `dry_run` first, then sets them."""
        if not _own(name):
            _DAVResource.set_property_value(self, name, value, dry_run=dry_run)
            return
        text = None if value is None else xml_tools.etree.tostring(value, encoding="unicode")
        request = DavRequest.current()
        if dry_run:
            try:
                check_property(name, text)
            except ApiError as error:
                raise dav_error(error) from None
            return
        properties = self.services.properties
        request.run(properties.set(request.caller, self.space.id, self.node_id, name, text))
        self.own_properties = None

    def remove_all_properties(self, *, recursive: bool) -> None:
        """Nothing: the properties stay with the file or folder in the trash."""

    def handle_delete(self) -> bool:
        """Into the space's trash, with what a folder holds; the caller's locks on it (held
        with their tokens) go, others' refuse (423)."""
        request = DavRequest.current()
        if self.is_space:
            raise DAVError(403, context_info=SPACES_IN_THE_PORTAL)
        self.release_locks()
        request.run(self.services.tree.trash(request.caller, self.space.id, self.node_id))
        return True

    def handle_move(self, dest_path: str) -> bool:
        """`Tree.move` (rename and/or into another folder of the space); what was at the
        destination goes to the trash (Overwrite: T); locks stay behind (RFC 4918 9.9)."""
        request = DavRequest.current()
        if self.is_space:
            raise DAVError(403, context_info=SPACES_IN_THE_PORTAL)
        parent_id, name, there = self._destination(dest_path)
        if there is not None:
            there.release_locks()
        request.created = there is None
        tree = self.services.tree
        request.run(
            tree.move(
                request.caller, self.space.id, self.node_id, parent_id, name, there is not None
            )
        )
        self.release_locks()
        return True

    def handle_copy(self, dest_path: str, *, depth_infinity: bool) -> bool:
        """`Tree.copy` (a folder with what it holds, or empty for Depth: 0); what was at the
        destination goes to the trash first (Overwrite: T)."""
        request = DavRequest.current()
        parent_id, name, there = self._destination(dest_path)
        tree, caller = self.services.tree, request.caller
        if there is not None and there.node_id == self.node_id:
            raise DAVError(403, context_info="A file or folder is not copied onto itself.")
        if there is not None:
            there.release_locks()
            request.run(tree.trash(caller, self.space.id, there.node_id))
        request.created = there is None
        if self.is_collection and not depth_infinity:
            request.run(tree.create_folder(caller, self.space.id, parent_id, name))
        else:
            request.run(tree.copy(caller, self.space.id, self.node_id, parent_id, name))
        return True

    def release_locks(self) -> None:
        """Remove the locks on this resource and below, after WsgiDAV's lock manager made
        sure that they are the caller's and their tokens were sent (else 423)."""
        manager = self.provider.lock_manager
        ref = self.get_ref_url()
        manager.check_write_permission(
            url=ref,
            depth="infinity",
            token_list=self.environ.get("wsgidav.ifLockTokenList", []),
            principal=self.environ["wsgidav.user_name"],
        )
        manager.remove_all_locks_from_url(ref, recursive=True)

    def _destination(self, dest_path: str) -> tuple[str, str, _InSpace | None]:
        """The folder (id) and name a MOVE or COPY goes to, and what is there now."""
        request = DavRequest.current()
        names = [name for name in dest_path.split("/") if name]
        if len(names) < 2:
            raise DAVError(403, context_info=SPACES_IN_THE_PORTAL)
        if (
            self.provider.space(request, names[0], self.environ["REQUEST_METHOD"]).id
            != self.space.id
        ):
            raise DAVError(
                403, context_info="Files move and copy within a space; upload them to another."
            )
        parent = self.provider.get_resource_inst("/" + "/".join(names[:-1]), self.environ)
        if not isinstance(parent, Folder):
            raise DAVError(409, context_info="The destination's folder does not exist.")
        there = self.provider.get_resource_inst(dest_path, self.environ)
        return parent.node_id, names[-1], there


def listed_in_depth(collection: Any, options: dict[str, Any]) -> list[Any]:
    """A collection's descendants, as WsgiDAV asks for them; but a PROPFIND of
    `Depth: infinity` (or none, which means infinity) is refused, as RFC 4918 9.1 allows
    (403, `propfind-finite-depth`): its answer would hold a whole space, or all of the
    caller's spaces, in memory at once. Clients list one folder at a time (`Depth: 1`)."""
    method = collection.environ["REQUEST_METHOD"]
    if method == "PROPFIND" and options.get("depth", "infinity") == "infinity":
        raise DAVError(
            403,
            context_info="List one folder at a time (Depth: 0 or 1).",
            err_condition=PRECONDITION_CODE_PropfindFiniteDepth,
        )
    return DAVCollection.get_descendants(collection, **options)  # type: ignore[no-any-return]


def _own(name: str) -> bool:
    """Whether a property is a client's own (RFC 4918 "dead"): not in the DAV: namespace."""
    return not name.startswith("{DAV:}")


class Folder(_InSpace, DAVCollection):  # type: ignore[misc]
    """A folder of a space (its top folder: the space's folder in `/dav/`)."""

    def __init__(
        self,
        path: str,
        environ: dict[str, Any],
        services: DavServices,
        space: Space,
        names: list[str],
        node: Node | None,
    ) -> None:
        DAVCollection.__init__(self, path, environ)
        _InSpace.__init__(self, services, space, names, node)

    def get_display_name(self) -> str:
        return self.node.name if self.node is not None and self.node.name else self.name

    def get_descendants(self, **options: Any) -> list[Any]:
        return listed_in_depth(self, options)

    def get_member_names(self) -> list[str]:
        return [member.name for member in self.get_member_list()]

    def get_member_list(self) -> list[Any]:
        """What the folder holds that the caller may see, from one listing."""
        request = DavRequest.current()
        caller = request.caller
        _, children = request.run(self.services.files.listing(caller, self.space.id, self.node_id))
        properties = request.run(
            self.services.properties.of(caller, self.space.id, [child.id for child in children])
        )
        members = []
        for child in children:
            member = resource_of(
                util.join_uri(self.path, child.name),
                self.environ,
                self.services,
                self.space,
                [*self.names, child.name],
                child,
            )
            member.own_properties = properties[child.id]
            members.append(member)
        return members

    def create_collection(self, name: str) -> None:
        """A new folder; 405 if one of that name was made meanwhile (MKCOL's answer for a
        name that is taken), as when a client makes a folder from several connections."""
        request = DavRequest.current()
        tree = self.services.tree
        try:
            request.run(tree.create_folder(request.caller, self.space.id, self.node_id, name))
        except DAVError as error:
            there = util.join_uri(self.path, name)
            if error.value == 409 and self.provider.get_resource_inst(there, self.environ):
                raise DAVError(405, context_info="There is a folder of that name.") from None
            raise

    def create_empty_resource(self, name: str) -> File:
        """The file a PUT writes (created by that write), or, for a LOCK of a name that is
        not taken, an empty file made at once (RFC 4918 7.3)."""
        try:
            checked_name(name)
        except ApiError as error:
            raise dav_error(error) from None
        names = [*self.names, name]
        path = util.join_uri(self.path, name)
        new = File(path, self.environ, self.services, self.space, names, None, self.node_id)
        if self.environ["REQUEST_METHOD"] != "PUT":
            new.write_empty()
        return new

    def support_recursive_delete(self) -> bool:
        return True


class File(_InSpace, DAVNonCollection):  # type: ignore[misc]
    """A file of a space; `node` is None for one a PUT is about to create in `parent_id`."""

    def __init__(
        self,
        path: str,
        environ: dict[str, Any],
        services: DavServices,
        space: Space,
        names: list[str],
        node: Node | None,
        parent_id: str | None = None,
    ) -> None:
        DAVNonCollection.__init__(self, path, environ)
        _InSpace.__init__(self, services, space, names, node)
        self.parent_id = node.parent_id if node is not None else parent_id
        self._opened: StoredObject | None = None
        self._spool: SealedSpool | None = None
        self._content_type: str | None = None

    def get_display_name(self) -> str:
        return self.node.name if self.node is not None else self.name

    def get_content_length(self) -> int:
        return self.node.size if self.node is not None else 0

    def get_content_type(self) -> str:
        found = self.node.content_type if self.node is not None else ""
        return found or "application/octet-stream"

    def get_etag(self) -> str | None:
        return None if self.node is None else f"{self.node.id}-{self.node.version}"

    def support_etag(self) -> bool:
        return True

    def support_ranges(self) -> bool:
        return True

    def finalize_headers(self, environ: dict[str, Any], response_headers: list[Any]) -> None:
        """A GET opens the file here, before its status is sent: the read is decided and
        recorded (`Files.open`), and a refusal is still an error response."""
        if environ["REQUEST_METHOD"] == "GET":
            self._opened = self._open()

    def get_content(self) -> StoredReader:
        stored = self._opened or self._open()
        request = DavRequest.current()
        return StoredReader(request, self.services.files.storage, stored.id)

    def begin_write(self, *, content_type: str | None = None) -> SealedSpool:
        """Where WsgiDAV writes a PUT's body (see `webdav_io`); the caller's role and the
        announced size are checked first (WsgiDAV checked the locks), so that a refused body
        is not staged."""
        request = DavRequest.current()
        if not self.space.role.allows(Role.EDITOR):  # refused and recorded by the gate
            gate = self.services.spaces.gate
            request.run(gate.enter(request.caller, self.space.id, Role.EDITOR, "collab.write"))
        largest = self.services.files.largest_file
        if util.get_content_length(self.environ) > largest:
            raise too_large(largest)
        self._content_type = content_type
        self._spool = SealedSpool(self.services.staging, largest)
        return self._spool

    def end_write(self, *, with_errors: bool) -> None:
        """The staged body as the file's new version (or the new file), unless the
        transfer failed; the staging file is gone either way."""
        spool, self._spool = self._spool, None
        if spool is None:
            return
        try:
            if not with_errors:
                self._write(spool.size, spool.body())
        finally:
            spool.discard()

    def write_empty(self) -> None:
        self._write(0, _nothing())

    def _write(self, size: int, body: AsyncIterable[bytes]) -> None:
        request = DavRequest.current()
        tokens = self.environ.get("wsgidav.ifLockTokenList") or [None]
        name = self.node.name if self.node is not None else self.names[-1]
        self.node, _ = request.run(
            self.services.files.write(
                request.caller,
                self.space.id,
                self.parent_id,
                name,
                size,
                self._content_type,
                body,
                lock_token=tokens[0],
            )
        )

    def _open(self) -> StoredObject:
        request = DavRequest.current()
        _, stored = request.run(
            self.services.files.open(request.caller, self.space.id, self.node_id)
        )
        return stored


async def _nothing() -> AsyncIterator[bytes]:
    """An empty body."""
    return
    yield b""
