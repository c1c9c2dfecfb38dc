"""WebDAV clients' own properties of files and folders (RFC 4918 "dead" properties, set
with PROPPATCH and read with PROPFIND): Windows keeps a file's times and attributes there
after every upload (`Win32LastModifiedTime`, …) and reports an error if they cannot be set,
macOS Finder its tags. They are kept by the node, so they move and are renamed with it, a
copy has them too (`Tree.copy`), and they go when the node is deleted for good.

Bounds, since anyone with an editor's app password can write them: at most
`MAX_PROPERTIES` per file or folder, names of up to `MAX_NAME` and values of up to
`MAX_VALUE` characters of XML (507 and 400 otherwise, per property)."""

from __future__ import annotations

from medicus.access.policy import Interaction
from medicus.collab import repository
from medicus.collab.nodes import Nodes
from medicus.collab.permissions import file_target
from medicus.collab.records import Role
from medicus.core.errors import ApiError
from medicus.iam.tokens import Principal

MAX_PROPERTIES = 64
MAX_NAME = 512
MAX_VALUE = 16 * 1024


def check_property(name: str, value: str | None) -> None:
    """400 for a property too large to keep (before anything is written)."""
    if len(name) > MAX_NAME:
        raise ApiError(400, f"A property's name has at most {MAX_NAME} characters.")
    if value is not None and len(value) > MAX_VALUE:
        raise ApiError(400, f"A property's value has at most {MAX_VALUE} characters of XML.")


class Properties:
    def __init__(self, nodes: Nodes) -> None:
        self._nodes = nodes

    async def of(
        self, caller: Principal, space_id: str, node_ids: list[str]
    ) -> dict[str, dict[str, str]]:
        """The properties of the space's nodes `node_ids` (as `Files` showed them to the
        caller: patient files the caller may not see are not among them), by node id."""
        await self._nodes.gate.enter(caller, space_id, Role.VIEWER, "collab.read")
        async with self._nodes.database.snapshot() as session:
            return await repository.properties_of(session, space_id, node_ids)

    async def set(
        self, caller: Principal, space_id: str, node_id: str, name: str, value: str | None
    ) -> None:
        """Set one property of the space's node `node_id` to `value` (XML), or remove it
        (None). A patient's file is written only if `access` lets the caller change it, and
        the change is recorded with the patient."""
        check_property(name, value)
        inside = await self._nodes.gate.enter(caller, space_id, Role.EDITOR, "collab.write")
        node = await self._nodes.visible_node(inside, node_id, Interaction.UPDATE)
        async with self._nodes.database.transaction() as session:
            if await repository.set_property(session, node.id, name, value) > MAX_PROPERTIES:
                raise ApiError(507, f"A file or folder keeps at most {MAX_PROPERTIES} properties.")
        await self._nodes.gate.record(
            inside, "collab.properties", file_target(node.id), node.patient_id
        )
