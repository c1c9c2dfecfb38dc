"""HTTP of the portal's messages page (`/portal/messages`, docs/portal.md): the page (rooms,
a conversation, the composer, file sending, a search to start a chat, and how to use another
Matrix client), the route that gives the page its Matrix session, and the search of whom the
user may reach. The page's script (`static/messenger.js`, matrix-js-sdk) talks Matrix to the
Messenger-Proxy at `/_matrix` on the same origin with the session's access token.

`POST /portal/messages/session` answers JSON `{token, user_id, homeserver, expires_in,
device_id}`: a login token for the user of the session cookie, good for that one Matrix
device only (medicus logs it out when the browser session ends), which needs the page's CSRF
token in `X-CSRF-Token` (double submit with identity's cookie, as the portal's uploads do):
another site's page cannot log a user's browser in to Matrix. Without a finished login:
401; without the token: 403 (problem+json). With the messenger off every route here is a
404, and the navigation has no "Messages" (`navigation_marks`).

`GET /portal/messages/backup-key` answers the decryption key of the user's own Matrix
room-key backup as medicus keeps it, JSON `{version, key}` (key: standard base64 of 32
bytes), or 404 if none; `PUT` keeps one (the same JSON, CSRF token as above; 204). Each new
portal device restores the keys of earlier messages with it (docs/messenger.md, key
backup). Anything but that JSON: 422 (problem+json). The page's
Content-Security-Policy allows compiling WebAssembly (`allow_webassembly`), which no other
page's does."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request, params
from fastapi.responses import HTMLResponse, JSONResponse, Response

from medicus.core.crypto import constant_time_equal
from medicus.core.errors import ApiError
from medicus.iam.login import LoginService
from medicus.iam.pages import CSRF_COOKIE, SESSION_COOKIE
from medicus.web.doorway import Doorway
from medicus.web.messenger_pages import MAX_WORDS, PortalMessenger, staff
from medicus.web.pages import PortalPages
from medicus.web.uploads_routes import CSRF_HEADER
from medicus.web.users import PortalUser, portal_user

MESSAGES = "/portal/messages"
_NOT_STORED = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


def navigation_marks(messenger: PortalMessenger | None) -> list[params.Depends]:
    """Dependencies of every portal page: with the messenger on, each page's request says so
    (`request.state.messenger`), and the navigation offers "Messages" to staff."""
    if messenger is None:
        return []

    async def mark(request: Request) -> None:
        request.state.messenger = True

    return [Depends(mark)]


def build_messenger_router(
    doorway: Doorway,
    logins: LoginService,
    messenger: PortalMessenger | None,
    pages: PortalPages,
) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    def turned_on() -> PortalMessenger:
        if messenger is None:
            raise ApiError(404, "The messenger is not on.")
        return messenger

    async def session_user(request: Request, change: bool) -> PortalUser:
        """The user of the session cookie (401); a request that changes something also needs
        the CSRF token in its header (403)."""
        user = portal_user(await logins.current(request.cookies.get(SESSION_COOKIE)))
        if user is None:
            raise ApiError(401, "Log in to the portal first.")
        if change:
            cookie = request.cookies.get(CSRF_COOKIE, "")
            sent = request.headers.get(CSRF_HEADER, "")
            if not cookie or not constant_time_equal(cookie, sent):
                raise ApiError(403, "The X-CSRF-Token header must carry the page's CSRF token.")
        return user

    @router.get(MESSAGES, response_class=HTMLResponse)
    async def page(request: Request) -> Response:
        async def show(request: Request, user: PortalUser) -> Response:
            found = turned_on()
            staff(user)
            response = pages.render(
                request,
                "messenger.html",
                user=user,
                homeserver=found.homeserver_url,
                matrix_id=found.matrix_id(user),
            )
            allow_webassembly(response)
            return response

        return await doorway.enter(request, show)

    @router.post(MESSAGES + "/session")
    async def session(request: Request) -> Response:
        found = turned_on()
        user = await session_user(request, change=True)
        issued = await found.session(user)
        body = {
            "token": issued.token,
            "user_id": issued.matrix_id,
            "homeserver": found.homeserver_url,
            "expires_in": issued.expires_in,
            "device_id": issued.device_id,
        }
        return JSONResponse(body, headers=_NOT_STORED)

    _backup_key_routes(router, turned_on, session_user)

    @router.get(MESSAGES + "/contacts")
    async def contacts(request: Request, q: str = "") -> Response:
        found = turned_on()
        user = await session_user(request, change=False)
        people = await found.contacts(user, q[:MAX_WORDS])
        body = {
            "contacts": [
                {"user_id": p.matrix_id, "name": p.name, "organisation": p.organisation}
                for p in people
            ]
        }
        return JSONResponse(body, headers=_NOT_STORED)

    return router


def _backup_key_routes(
    router: APIRouter,
    turned_on: Callable[[], PortalMessenger],
    session_user: Callable[[Request, bool], Awaitable[PortalUser]],
) -> None:
    """`GET`/`PUT /portal/messages/backup-key`: the user's own backup key, kept by medicus."""

    @router.get(MESSAGES + "/backup-key")
    async def backup_key(request: Request) -> Response:
        found = turned_on()
        kept = await found.backup_key(await session_user(request, False))
        if kept is None:
            raise ApiError(404, "medicus keeps no key backup for you yet.")
        body = {"version": kept[0], "key": base64.b64encode(kept[1]).decode("ascii")}
        return JSONResponse(body, headers=_NOT_STORED)

    @router.put(MESSAGES + "/backup-key")
    async def keep_backup_key(request: Request) -> Response:
        found = turned_on()
        user = await session_user(request, True)
        version, key = _backup_key(await request.body())
        await found.keep_backup_key(user, version, key)
        return Response(status_code=204, headers=_NOT_STORED)


def _backup_key(body: bytes) -> tuple[str, bytes]:
    """(version, key) of a `PUT /portal/messages/backup-key`'s JSON; 422 for anything else
    (the service checks the key's length and the version's form)."""
    try:
        sent: Any = orjson.loads(body)
    except ValueError:
        raise ApiError(422, "The body must be JSON.") from None
    version = sent.get("version") if isinstance(sent, dict) else None
    key = sent.get("key") if isinstance(sent, dict) else None
    if not isinstance(version, str) or not isinstance(key, str) or len(key) > 64:
        raise ApiError(422, 'The body must be {"version": string, "key": base64}.')
    try:
        return version, base64.b64decode(key, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(422, "The key must be base64.") from None


def allow_webassembly(response: Response) -> None:
    """The messages page compiles the Rust crypto's WebAssembly (matrix-js-sdk's end-to-end
    encryption): its policy alone adds `'wasm-unsafe-eval'` to `script-src`, which allows
    compiling WebAssembly, not `eval` of JavaScript; every other page keeps the strict one."""
    policy = response.headers["content-security-policy"]
    strict = "script-src 'self';"
    response.headers["content-security-policy"] = policy.replace(
        strict, "script-src 'self' 'wasm-unsafe-eval';"
    )
