"""Whether a file is locked for editing, and by whom: what the portal shows beside a file
so that a member knows before they try. The locks themselves are `editing.Editing`'s (the
same ones WebDAV clients take); reading whether there is one records nothing, as reading a
file's other metadata does not."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from medicus.collab import repository
from medicus.collab.nodes import Nodes
from medicus.collab.records import Role
from medicus.iam.tokens import Principal


@dataclass(frozen=True)
class HeldLock:
    holder: str
    """The user id of who holds it."""
    expires_at: dt.datetime
    mine: bool


class LockState:
    def __init__(self, nodes: Nodes) -> None:
        self._nodes = nodes

    async def of(self, caller: Principal, space_id: str, node_id: str) -> HeldLock | None:
        """The live lock on a file the caller may see (404 otherwise), None if it has none;
        of several (WebDAV's shared locks), the one that lasts longest."""
        inside = await self._nodes.gate.enter(caller, space_id, Role.VIEWER, "collab.read")
        node = await self._nodes.visible_node(inside, node_id)
        async with self._nodes.database.snapshot() as session:
            held = await repository.live_locks(session, [node.id], self._nodes.clock())
        if not held:
            return None
        longest = max(held, key=lambda row: row.expires_at)
        return HeldLock(longest.principal, longest.expires_at, longest.principal == caller.subject)
