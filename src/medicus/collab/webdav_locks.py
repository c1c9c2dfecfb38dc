"""WebDAV locks (RFC 4918 class 2) in the table the portal's edit locks live in (`collab_lock`),
so that each blocks the other: a lock taken over REST (`Editing.lock`) stops another user's
WebDAV PUT, and a WebDAV client's lock stops another user's REST write, on every replica.

A lock names its resource twice: by path, `/<space id>/<names…>` (`root`, the form
`Editing.lock` writes, independent of how `/dav/` names the space for each user), which is what
WsgiDAV's lock manager compares for depth and parents; and by node (`node_id`), which is what
the collab services check before every write, move and delete. WebDAV locks last at most a day
(WsgiDAV would grant a week; the portal's locks are capped at a day too) and are audited as
`collab.lock` / `collab.unlock`, without entries in the space's activity feed (clients such as
Finder and Office lock and unlock on every save).

`DavLocks` is the service (async, asks `SpaceGate`); `LockStorage` is the storage interface
WsgiDAV's `LockManager` calls from its worker threads (that of its `LockStorageDict`)."""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import quote, unquote

from wsgidav.lock_man.lock_manager import generate_lock_token, normalize_lock_root

from medicus.collab import repository as collab_repository
from medicus.collab import webdav_lock_repository as repository
from medicus.collab.models import LockRow
from medicus.collab.nodes import Nodes, locked
from medicus.collab.permissions import file_target
from medicus.collab.records import Role, Space
from medicus.collab.webdav_context import DavRequest
from medicus.core.db import hold_lock
from medicus.core.errors import ApiError
from medicus.iam.tokens import Principal

MIN_SECONDS = 60
MAX_SECONDS = 24 * 3600
MAX_ROOT = 4000
"""The longest path a lock can name (`collab_lock.root`)."""


def split_root(root: str) -> tuple[str, list[str]]:
    """The space and the names below its top folder of a lock's path."""
    space_id, *names = [name for name in root.split("/") if name]
    return space_id, names


def lock_seconds(asked: float | None) -> int:
    """The lifetime a lock gets: what the client asked for (-1: infinite), within bounds."""
    if asked is None or asked < 0:
        return MAX_SECONDS
    return int(max(MIN_SECONDS, min(asked, MAX_SECONDS)))


class DavLocks:
    """Taking, refreshing, listing and releasing WebDAV locks, for callers `SpaceGate` lets
    into the space."""

    def __init__(self, nodes: Nodes) -> None:
        self._nodes = nodes

    async def of_space(self, space: Space) -> list[LockRow]:
        """The live locks in a space the caller is a member of: `space` is one of theirs, as
        `Spaces.mine` or `SpaceGate` gave it (its role)."""
        async with self._nodes.database.snapshot() as session:
            return list(await repository.live_in_space(session, space.id, self._nodes.clock()))

    async def take(
        self, caller: Principal, root: str, scope: str, depth: str, owner_xml: str, seconds: int
    ) -> LockRow:
        """A new lock on the file or folder at `root`; 423 if someone holds an exclusive lock
        on it (or any, for an exclusive one), 403 for viewers, 404 if it is not there."""
        space_id, names = split_root(root)
        inside = await self._nodes.gate.enter(caller, space_id, Role.EDITOR, "collab.lock")
        if len(root) > MAX_ROOT:
            raise ApiError(400, f"A lock names a path of at most {MAX_ROOT} characters.")
        node = await self._nodes.at(inside, names)
        now = self._nodes.clock()
        async with self._nodes.database.transaction() as session:
            await repository.remove_expired(session, space_id, now)
            await hold_lock(session, f"collab-lock:{node.id}")
            held = await collab_repository.live_locks(session, [node.id], now)
            if any(scope == "exclusive" or row.scope == "exclusive" for row in held):
                raise locked(node.name)
            row = LockRow(
                token=generate_lock_token(),
                root=root,
                space_id=space_id,
                node_id=node.id,
                principal=caller.subject,
                scope=scope,
                depth=depth,
                owner_xml=owner_xml,
                timeout_seconds=seconds,
                expires_at=now + dt.timedelta(seconds=seconds),
            )
            session.add(row)
        await self._nodes.gate.record(
            inside, "collab.lock", file_target(node.id), node.patient_id, via="webdav"
        )
        return row

    async def refresh(self, caller: Principal, token: str, seconds: int) -> LockRow:
        """The caller's lock, living `seconds` from now on; 412 if it expired meanwhile."""
        row = await self.by_token(caller, token)
        if row is None:
            raise ApiError(412, "That lock has expired; lock the file again.")
        if row.principal != caller.subject:
            raise ApiError(403, "That lock is someone else's.")
        now = self._nodes.clock()
        async with self._nodes.database.transaction() as session:
            found = await repository.live(session, token, now)
            if found is None:
                raise ApiError(412, "That lock has expired; lock the file again.")
            found.timeout_seconds = seconds
            found.expires_at = now + dt.timedelta(seconds=seconds)
        return found

    async def release(self, caller: Principal, token: str) -> None:
        """Remove one of the caller's locks (a manager breaks someone else's in the portal,
        `Editing.unlock`)."""
        row = await self._live(token)
        if row is None:
            return
        inside = await self._nodes.gate.enter(caller, row.space_id, Role.VIEWER, "collab.unlock")
        if row.principal != caller.subject:
            await self._nodes.gate.refuse(
                caller, "collab.unlock", file_target(row.node_id or ""), "not-the-holder"
            )
            raise ApiError(
                403, "That lock is someone else's; a manager may break it in the portal."
            )
        async with self._nodes.database.transaction() as session:
            await repository.remove(session, token)
        await self._nodes.gate.record(
            inside, "collab.unlock", file_target(row.node_id or ""), via="webdav"
        )

    async def by_token(self, caller: Principal, token: str) -> LockRow | None:
        """The live lock with this token, if it is in a space the caller is a member of."""
        row = await self._live(token)
        if row is None:
            return None
        try:
            await self._nodes.gate.enter(caller, row.space_id, Role.VIEWER, "collab.read")
        except ApiError:
            return None
        return row

    async def _live(self, token: str) -> LockRow | None:
        async with self._nodes.database.snapshot() as session:
            return await repository.live(session, token, self._nodes.clock())


class LockStorage:
    """WsgiDAV's lock storage over `DavLocks`, for the request of the calling thread. Paths
    come and go quoted, as WsgiDAV's reference URLs (`/<space id>/<names…>`); the locks of a
    space are read once per request and read again after this request changed one."""

    def __init__(self, locks: DavLocks) -> None:
        self._locks = locks

    def __repr__(self) -> str:
        return "LockStorage(collab_lock)"

    def open(self) -> None:
        """Nothing to open: the locks are rows of the platform's database."""

    def close(self) -> None:
        """Nothing to close (see `open`)."""

    def get(self, token: str) -> dict[str, Any] | None:
        request = DavRequest.current()
        row = request.run(self._locks.by_token(request.caller, token))
        return None if row is None else _as_lock(row)

    def create(self, path: str, lock: dict[str, Any]) -> dict[str, Any]:
        """Take the lock WsgiDAV checked for conflicts (`lock` without token), and fill it in."""
        request = DavRequest.current()
        root = unquote(normalize_lock_root(path))
        seconds = lock_seconds(lock.get("timeout"))
        owner = bytes(lock.get("owner") or b"").decode("utf-8", "replace")
        row = request.run(
            self._locks.take(request.caller, root, lock["scope"], lock["depth"], owner, seconds)
        )
        request.locks.clear()
        lock.update(_as_lock(row))
        return lock

    def refresh(self, token: str, *, timeout: float | None) -> dict[str, Any]:
        request = DavRequest.current()
        row = request.run(self._locks.refresh(request.caller, token, lock_seconds(timeout)))
        request.locks.clear()
        return _as_lock(row)

    def delete(self, token: str) -> bool:
        request = DavRequest.current()
        request.run(self._locks.release(request.caller, token))
        request.locks.clear()
        return True

    def get_lock_list(
        self, path: str, *, include_root: bool, include_children: bool, token_only: bool
    ) -> list[Any]:
        """The live locks on `path` (`include_root`) and below it (`include_children`)."""
        root = unquote(normalize_lock_root(path))
        if root == "/":
            return []
        request = DavRequest.current()
        space_id, _ = split_root(root)
        if space_id not in request.locks:
            space = request.space_with_id(space_id)
            found = [] if space is None else request.run(self._locks.of_space(space))
            request.locks[space_id] = found
        found = [
            row
            for row in request.locks[space_id]
            if (include_root and row.root == root)
            or (include_children and row.root.startswith(root + "/"))
        ]
        return [row.token if token_only else _as_lock(row) for row in found]


def _as_lock(row: LockRow) -> dict[str, Any]:
    """A lock as WsgiDAV's lock manager knows them."""
    return {
        "root": quote(row.root),
        "type": "write",
        "scope": row.scope,
        "depth": row.depth,
        "owner": row.owner_xml.encode(),
        "timeout": float(row.timeout_seconds),
        "expire": row.expires_at.timestamp(),
        "principal": row.principal,
        "token": row.token,
    }
