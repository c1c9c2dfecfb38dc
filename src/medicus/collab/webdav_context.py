"""The WebDAV request a worker thread serves (`DavRequest`): who calls (the principal of an
app password), the server's event loop, and how `/dav/` names the caller's spaces.

WsgiDAV is a WSGI application and runs in a2wsgi's worker threads; the collab services are
async and belong to the server's event loop. `DavRequest.run` hands a coroutine to that loop
and waits for its result (`asyncio.run_coroutine_threadsafe`), in a copy of the request's
context, so that the audit trail still sees the request's id and client address. An
`ApiError` comes back as the `DAVError` of the same status and message; a write that lost a
race for a name (a unique index refused it: clients such as rclone make the same folder from
several connections at once) answers 409; any other failure is logged without its message (it
may quote file names) and answers 500 (503 if the database is away)."""

from __future__ import annotations

import asyncio
import contextvars
import re
import traceback
import unicodedata
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy.exc import IntegrityError
from wsgidav.dav_error import DAVError

from medicus.collab.models import LockRow
from medicus.collab.names import checked_name, name_key
from medicus.collab.records import Space
from medicus.core.db import is_unavailable
from medicus.core.errors import ApiError
from medicus.core.logging import get_logger
from medicus.iam.tokens import Principal

T = TypeVar("T")
RACED = "Someone else changed this at the same moment; look again and retry."
log = get_logger("medicus.collab.webdav")
_SPACE_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_NOT_IN_NAMES = re.compile(r'[/\\<>:"|?*\x00-\x1f\x7f\u200e\u200f\u202a-\u202e\u2066-\u2069]')


@dataclass
class DavRequest:
    """One WebDAV request: the caller, the loop its services run on, the caller's spaces by
    the folder names `/dav/` shows, the locks of a space as read once in this request, and
    whether a MOVE or COPY made its destination (201) rather than replaced it (204)."""

    caller: Principal
    loop: asyncio.AbstractEventLoop
    folders: dict[str, Space]
    locks: dict[str, list[LockRow]] = field(default_factory=dict)
    created: bool = False

    @staticmethod
    def current() -> DavRequest:
        return _current.get()

    def enter(self) -> contextvars.Token[DavRequest]:
        """Make this the request of the running context (and of the threads a2wsgi copies
        the context into)."""
        return _current.set(self)

    @staticmethod
    def leave(token: contextvars.Token[DavRequest]) -> None:
        _current.reset(token)

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        """The result of `work`, run on the server's loop while this thread waits."""
        future = asyncio.run_coroutine_threadsafe(
            _within(work, contextvars.copy_context()), self.loop
        )
        try:
            return future.result()
        except ApiError as error:
            raise dav_error(error) from None
        except DAVError:
            raise
        except IntegrityError:
            raise DAVError(409, context_info=RACED) from None
        except Exception as error:
            raise _unexpected(error) from None

    def space_named(self, folder: str) -> Space | None:
        """The caller's space shown as `folder` (compared as names are), None if none is."""
        wanted = name_key(unicodedata.normalize("NFC", folder))
        for name, space in self.folders.items():
            if name_key(name) == wanted:
                return space
        return None

    def folder_of(self, space_id: str) -> str:
        """The folder name of a space (its id, for a space addressed by id)."""
        for name, space in self.folders.items():
            if space.id == space_id:
                return name
        return space_id

    def space_with_id(self, space_id: str) -> Space | None:
        """The caller's space with this id (with their role), None if it is not theirs."""
        for space in self.folders.values():
            if space.id == space_id:
                return space
        return None


_current: contextvars.ContextVar[DavRequest] = contextvars.ContextVar("dav_request")


def is_space_id(segment: str) -> bool:
    return _SPACE_ID.fullmatch(segment) is not None


def folder_names(spaces: list[Space]) -> dict[str, Space]:
    """The spaces by the folder names `/dav/` shows them under: a space's name with what
    is invalid in names replaced, and a short id after it where two would be the same."""
    shown = {space.id: _valid_name(space) for space in spaces}
    counts = Counter(name_key(name) for name in shown.values())
    folders = {}
    for space in spaces:
        name = shown[space.id]
        if counts[name_key(name)] > 1:
            name = f"{name} ({space.id[:8]})"
        folders[name] = space
    return folders


def _valid_name(space: Space) -> str:
    name = _NOT_IN_NAMES.sub("_", unicodedata.normalize("NFC", space.name)).strip().rstrip(".")
    try:
        return checked_name(name)
    except ApiError:
        return f"space-{space.id[:8]}"


def dav_error(error: ApiError) -> DAVError:
    """The WebDAV answer to a refusal of a service: the same status and message."""
    headers = list(error.headers.items()) or None
    return DAVError(error.status, context_info=error.detail, add_headers=headers)


def _unexpected(error: Exception) -> DAVError:
    if is_unavailable(error):
        log.warning("database unavailable", error_type=type(error).__name__)
        return DAVError(503, context_info="The database is not reachable; try again shortly.")
    frames = traceback.extract_tb(error.__traceback__)
    log.error(
        "webdav request failed",
        error_type=type(error).__name__,
        frames=[f"{frame.filename}:{frame.lineno} in {frame.name}" for frame in frames[-12:]],
    )
    return DAVError(500)


async def _within(work: Coroutine[Any, Any, T], context: contextvars.Context) -> T:
    """`work` as a task in `context` (the request's, copied: the waiting thread is in it)."""
    return await asyncio.get_running_loop().create_task(work, context=context)
