"""WebDAV (RFC 4918, classes 1 and 2) at `/dav/`: the caller's spaces as folders, for rclone,
Finder, Explorer and office programs. `/dav/` lists the spaces, `/dav/<space>/<path…>` is a
space's tree (`webdav_resources`); locks are the collab locks (`webdav_locks`).

The protocol is WsgiDAV 4.4's, behind medicus's own authentication: HTTP Basic with the user's
e-mail address and an app password (`AppPasswords`), checked in the database on every request;
without one, 401 with `WWW-Authenticate: Basic realm="medicus"`. WsgiDAV runs in a2wsgi's
worker threads and reaches the services on the server's loop (`webdav_context`). It is told
the mount path (`/dav`), or PROPFIND would answer with paths without it.

WsgiDAV's own logging is off: its request lines and errors name the paths, which are file
names and may be patient data. What medicus logs of a WebDAV request is its access line (the
route, not the path) and, for a failure, where it happened without its message. Its directory
browser is off too (the portal is the browser's view of a space), and so is its property
manager: clients' own properties are kept by the files and folders in the database
(`collab.properties`), so that nothing of a space lives only in one process's memory."""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from collections.abc import Callable, Iterable
from typing import Any

from a2wsgi import WSGIMiddleware
from starlette.types import Receive, Scope, Send
from wsgidav.error_printer import ErrorPrinter
from wsgidav.request_resolver import RequestResolver
from wsgidav.wsgidav_app import WsgiDAVApp

from medicus.collab.app_passwords import AppPasswords
from medicus.collab.permissions import memberships_known
from medicus.collab.webdav_context import DavRequest, folder_names
from medicus.collab.webdav_errors import WsgiApp, as_problems
from medicus.collab.webdav_locks import LockStorage
from medicus.collab.webdav_provider import SpacesProvider
from medicus.collab.webdav_resources import DavServices
from medicus.core.errors import ApiError, payload_too_large, render_error
from medicus.core.http import current_request_id
from medicus.iam.tokens import Principal

MOUNT_PATH = "/dav"
CHALLENGE = 'Basic realm="medicus"'
BLOCK_BYTES = 1024 * 1024
"""How much WsgiDAV reads of a PUT and hands to a GET at a time (its default, 8 KiB, would
cross between thread and loop for every 8 KiB)."""
WORKERS = 32
"""Requests served at once (rclone alone runs 16: 8 transfers, 8 checkers)."""
MAX_XML_BYTES = 2 * 1024 * 1024
"""The largest body of a request other than PUT (PROPFIND, PROPPATCH, LOCK: XML, which
WsgiDAV reads whole into memory). /dav/ is exempt from the platform's body limit because a
PUT streams files of any size; these are refused with 413 before a byte is read."""


class DavMount:
    """The ASGI app mounted at `/dav`: authenticates, then lets WsgiDAV serve the request."""

    def __init__(
        self, services: DavServices, passwords: AppPasswords, workers: int = WORKERS
    ) -> None:
        _silence_wsgidav()
        self._services = services
        self._passwords = passwords
        dav = WsgiDAVApp(_config(SpacesProvider(services), LockStorage(services.locks)))
        self._wsgi = WSGIMiddleware(as_problems(_as_caller(dav)), workers=workers)  # type: ignore[arg-type]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        caller = await self._caller(scope)
        if caller is None:
            error = ApiError(
                401,
                "WebDAV needs your e-mail address and an app password (HTTP Basic); make one "
                "for this device in the portal.",
                headers={"WWW-Authenticate": CHALLENGE},
            )
            await render_error(error, scope["path"], current_request_id())(scope, receive, send)
            return
        if _too_large_for_xml(scope):
            too_large = payload_too_large(MAX_XML_BYTES)
            await render_error(too_large, scope["path"], current_request_id())(scope, receive, send)
            return
        spaces = await self._services.spaces.mine(caller)
        request = DavRequest(caller, asyncio.get_running_loop(), folder_names(spaces))
        token = request.enter()
        try:
            with memberships_known(caller, spaces):
                await self._wsgi(scope, receive, send)  # type: ignore[arg-type]
        finally:
            DavRequest.leave(token)

    async def _caller(self, scope: Scope) -> Principal | None:
        login, password = _basic_credentials(scope)
        if login is None or password is None:
            return None
        return await self._passwords.authenticate(login, password)


def _too_large_for_xml(scope: Scope) -> bool:
    """Whether a request other than PUT announces a body over `MAX_XML_BYTES` (one sent
    without Content-Length WsgiDAV does not read)."""
    if scope["method"] == "PUT":
        return False
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            return value.isdigit() and int(value) > MAX_XML_BYTES
    return False


def _basic_credentials(scope: Scope) -> tuple[str | None, str | None]:
    """The login and password of an `Authorization: Basic` header, (None, None) without."""
    for name, value in scope.get("headers", ()):
        if name != b"authorization":
            continue
        scheme, _, encoded = value.decode("latin-1").partition(" ")
        if scheme.lower() != "basic":
            return None, None
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None, None
        login, colon, password = decoded.partition(":")
        return (login, password) if colon else (None, None)
    return None, None


def _as_caller(dav: WsgiDAVApp) -> WsgiApp:
    """WsgiDAV, told who calls (the principal its locks belong to). A MOVE or COPY that made
    its destination answers 201 Created (RFC 4918 9.8.5, 9.9.4): WsgiDAV 4.4 answers 204 for
    every move or copy a resource handles itself."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = DavRequest.current()
        environ["wsgidav.auth.user_name"] = request.caller.subject
        environ["wsgidav.auth.realm"] = "medicus"

        def respond(status: str, headers: list[tuple[str, str]], *info: Any) -> Any:
            if request.created and status.startswith("204"):
                status = "201 Created"
            return start_response(status, headers, *info)

        return dav(environ, respond)  # type: ignore[no-any-return]

    return app


def _config(provider: SpacesProvider, locks: LockStorage) -> dict[str, Any]:
    return {
        "mount_path": MOUNT_PATH,
        "provider_mapping": {"/": provider},
        "lock_storage": locks,
        # Clients' own properties are kept by the nodes (`collab.properties`), not by URL.
        "property_manager": None,
        "middleware_stack": [ErrorPrinter, RequestResolver],
        "dir_browser": {"enable": False},
        "block_size": BLOCK_BYTES,
        "verbose": 0,
        "logging": {"enable": False},
        "suppress_version_info": True,
    }


def _silence_wsgidav() -> None:
    """No record of WsgiDAV's loggers is even made (they name paths; see above)."""
    wsgidav = logging.getLogger("wsgidav")
    wsgidav.setLevel(logging.CRITICAL + 1)
    wsgidav.propagate = False
