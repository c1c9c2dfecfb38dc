"""The Messenger-Proxy: medicus's own ASGI app in front of Synapse's client-server API (as the
TI-Messenger architecture prescribes), mounted at `/_matrix` and `/_synapse/client`. Every
client request passes it; it streams bodies both ways and steps in only where a rule applies:

- login tokens are checked and used up (`Messenger.redeem_login`) before Synapse sees them;
- invitations (`/invite`, a member state event with `membership: invite`, `createRoom`'s
  `invite`) are decided by the invite rules; third-party (e-mail) invitations are refused;
- a user who may not work now (suspended, removed) gets `M_USER_LOCKED` on every request;
- attachments go to medicus's `storage`, not to Synapse (`media_proxy`); uploads larger than
  the limit get `M_TOO_LARGE` before a byte is read.

Refusals answer as Synapse would, with the Matrix error a client expects. Keeping these rules
out of Synapse's process keeps medicus's code under its own licence (docs/messenger.md).

Written by hand: no maintained ASGI reverse proxy streams both ways with hooks like these;
httpx does the HTTP."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import parse_qs, unquote

import httpx
import orjson
from starlette.types import Receive, Scope, Send

from medicus.core.crypto import token_hash
from medicus.messenger.forwarding import HOP_BY_HOP, SynapseForwarder
from medicus.messenger.homeserver import LOGIN_TOKEN_TYPE
from medicus.messenger.matrix_http import Refusal, answer, streamed
from medicus.messenger.media_proxy import MediaRoutes, media_request
from medicus.messenger.service import Messenger
from medicus.settings import RoomKind

_NOT_PASSED_ON = HOP_BY_HOP | {b"x-forwarded-for", b"x-forwarded-proto"}
"""Request headers the proxy does not pass on (it sets the forwarded ones itself). The
client's `Host` goes on, as Synapse asks of a reverse proxy: single sign-on compares it with
the public base URL and otherwise redirects there, for ever."""
_MAX_INSPECTED_BODY = 1024 * 1024
"""Bodies the proxy reads to decide (login, invitations): Matrix events are at most 64 KiB."""
RETENTION = "m.room.retention"
CASE_ROOM_TYPE = "de.medicus.case"
"""The room type (`creation_content.type`) of a case room: one about a patient or a
teleconsultation, kept as long as case rooms are."""
_IDENTITY_SECONDS = 300.0
_WORKING_SECONDS = 2.0
_CACHED_TOKENS = 10_000


class MatrixProxy:
    def __init__(
        self,
        messenger: Messenger,
        media: MediaRoutes,
        forwarder: SynapseForwarder,
        http: httpx.AsyncClient,
    ) -> None:
        """`http` asks Synapse who holds a token; `forwarder` carries every request on."""
        self._messenger = messenger
        self._media = media
        self._forwarder = forwarder
        self._homeserver = messenger.homeserver
        self._http = http
        self._identities: OrderedDict[str, tuple[str | None, float]] = OrderedDict()
        self._working: dict[str, tuple[bool, float]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        segments = [unquote(part) for part in scope.get("raw_path", b"").decode().split("/")]
        try:
            user_id = await self._caller(scope)
            asked = media_request(scope["method"], segments)
            if asked and await self._media.handle(asked, scope, receive, send, user_id):
                return
            body = await self._inspected_body(scope, receive, segments)
            if body is not None:
                token_sent = _access_token(scope) is not None
                body = await self._check(scope["method"], segments, body, user_id, token_sent)
            await self._forward(scope, receive, send, body, segments)
        except Refusal as refusal:
            await answer(send, refusal.status, refusal.body)

    async def _caller(self, scope: Scope) -> str | None:
        """The medicus user behind the request's access token (None without one, or for a
        token Synapse does not know: Synapse answers that itself); refuses a user who may not
        work now."""
        token = _access_token(scope)
        if token is None:
            return None
        matrix_id = await self._identity(token)
        user_id = None if matrix_id is None else self._homeserver.user_id(matrix_id)
        if user_id is not None and not await self._is_working(user_id):
            raise Refusal(
                401,
                "M_USER_LOCKED",
                "This account is suspended: its user may not work for an organisation now.",
                soft_logout=True,
            )
        return user_id

    async def _identity(self, token: str) -> str | None:
        key = token_hash(token)
        now = time.monotonic()
        cached = self._identities.get(key)
        if cached is not None and cached[1] > now:
            return cached[0]
        matrix_id = await self._whoami(token)
        if matrix_id is not None:
            await self._messenger.note_account(matrix_id)
        self._identities[key] = (matrix_id, now + _IDENTITY_SECONDS)
        self._identities.move_to_end(key)
        while len(self._identities) > _CACHED_TOKENS:
            self._identities.popitem(last=False)
        return matrix_id

    async def _whoami(self, token: str) -> str | None:
        url = f"{self._homeserver.synapse_url}/_matrix/client/v3/account/whoami"
        try:
            answer = await self._http.get(url, headers={"Authorization": f"Bearer {token}"})
        except httpx.TransportError:
            raise Refusal(502, "M_UNKNOWN", "The homeserver is not answering.") from None
        if answer.status_code == 200:
            user_id = answer.json().get("user_id")
            return str(user_id) if user_id else None
        if answer.status_code in (401, 403):
            return None  # a token Synapse does not know (or no longer): it says so itself
        # Anything else is no answer about the token: nothing is cached, the request waits.
        if answer.status_code == 429:
            raise Refusal(429, "M_LIMIT_EXCEEDED", "Too many requests; retry shortly.")
        raise Refusal(502, "M_UNKNOWN", "The homeserver could not check the access token.")

    async def _is_working(self, user_id: str) -> bool:
        now = time.monotonic()
        cached = self._working.get(user_id)
        if cached is not None and cached[1] > now:
            return cached[0]
        working = await self._messenger.is_working(user_id)
        if len(self._working) > _CACHED_TOKENS:
            self._working.clear()
        self._working[user_id] = (working, now + _WORKING_SECONDS)
        return working

    async def _inspected_body(
        self, scope: Scope, receive: Receive, segments: list[str]
    ) -> bytes | None:
        """The whole body of a request a rule applies to (None for every other request,
        whose body streams through untouched)."""
        if _rule_for(scope["method"], segments) is None:
            return None
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise Refusal(400, "M_BAD_JSON", "The request ended before its body.")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > _MAX_INSPECTED_BODY:
                raise Refusal(413, "M_TOO_LARGE", "The request body is too large.")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _check(
        self,
        method: str,
        segments: list[str],
        body: bytes,
        user_id: str | None,
        token_sent: bool,
    ) -> bytes:
        """Refuse what a rule forbids; the body to send on (a new room's with the platform's
        retention policy in its initial state)."""
        rule = _rule_for(method, segments)
        if rule == "retention":
            raise Refusal(403, "M_FORBIDDEN", "Message retention is set by the platform.")
        content = _json_object(body)
        if rule in ("createRoom", "join_rules") and _opens_to_everyone(rule, content):
            raise Refusal(
                403,
                "M_FORBIDDEN",
                "Rooms are not public here: whoever joins is invited, by the invite rules.",
            )
        if rule == "login":
            if content.get("type") == LOGIN_TOKEN_TYPE:
                device = content.get("device_id")
                refusal = await self._messenger.redeem_login(
                    str(content.get("token") or ""), device if isinstance(device, str) else None
                )
                if refusal is not None:
                    raise Refusal(403, "M_FORBIDDEN", refusal)
            return body
        invitees = _invitees(rule, segments, content)
        if invitees and user_id is None:
            errcode = "M_UNKNOWN_TOKEN" if token_sent else "M_MISSING_TOKEN"
            raise Refusal(401, errcode, "Inviting takes a valid access token.")
        for invitee in invitees:
            refusal = await self._messenger.invite_refusal(user_id or "", invitee)
            if refusal is not None:
                raise Refusal(403, "M_FORBIDDEN", refusal)
        if rule == "createRoom":
            return orjson.dumps(_with_retention(content, self._homeserver.retention_days))
        return body

    async def _forward(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        body: bytes | None,
        segments: list[str],
    ) -> None:
        # A body the proxy read (and may have changed) gets its length from the client.
        dropped = _NOT_PASSED_ON if body is None else _NOT_PASSED_ON | {b"content-length"}
        headers = [(k, v) for k, v in scope["headers"] if k.lower() not in dropped]
        client = scope.get("client")
        if client:
            headers.append((b"x-forwarded-for", client[0].encode()))
        headers.append((b"x-forwarded-proto", str(scope.get("scheme", "http")).encode()))
        content: bytes | AsyncIterator[bytes] = (
            body if body is not None else streamed(receive, None)
        )
        raw_path = scope.get("raw_path", b"").decode("latin-1")
        if scope.get("query_string"):
            raw_path += "?" + scope["query_string"].decode("latin-1")
        await self._forwarder.forward(scope["method"], raw_path, headers, content, send)


def _rule_for(method: str, segments: list[str]) -> str | None:
    """Which rule a request falls under, by the end of its path (any API version prefix)."""
    if len(segments) < 4 or segments[1] != "_matrix" or segments[2] != "client":
        return None
    tail = segments[3:]
    if method == "POST" and tail[-1] == "login":
        return "login"
    if method == "POST" and tail[-1] == "createRoom":
        return "createRoom"
    if method == "POST" and len(tail) >= 3 and tail[-3] == "rooms" and tail[-1] == "invite":
        return "invite"
    if method == "PUT" and _is_state_event(tail, "m.room.member"):
        return "member"
    if method == "PUT" and _is_state_event(tail, "m.room.retention"):
        return "retention"
    if method == "PUT" and _is_state_event(tail, "m.room.join_rules"):
        return "join_rules"
    return None


def _is_state_event(tail: list[str], event_type: str) -> bool:
    """rooms/{room}/state/{event_type}/{state key}, or without a state key."""
    for end in (len(tail) - 1, len(tail)):
        if end >= 4 and tail[end - 4] == "rooms" and tail[end - 2 : end] == ["state", event_type]:
            return True
    return False


def _opens_to_everyone(rule: str, content: dict[str, Any]) -> bool:
    """Whether a new room or a change of join rules lets anyone join without an invitation,
    which would go around the invite rules."""
    if rule == "join_rules":
        return content.get("join_rule") == "public"
    if content.get("preset") == "public_chat" or content.get("visibility") == "public":
        return True
    initial = content.get("initial_state")
    return isinstance(initial, list) and any(
        isinstance(event, dict)
        and event.get("type") == "m.room.join_rules"
        and isinstance(event.get("content"), dict)
        and event["content"].get("join_rule") == "public"
        for event in initial
    )


def _with_retention(
    content: dict[str, Any], retention_days: Mapping[RoomKind, int]
) -> dict[str, Any]:
    """A createRoom body with the retention policy of its kind of room in its initial state
    (in place of any the client asked for): a case room (`creation_content.type` is
    CASE_ROOM_TYPE), a direct chat (`is_direct`), else a group."""
    creation = content.get("creation_content")
    kind: RoomKind
    if isinstance(creation, dict) and creation.get("type") == CASE_ROOM_TYPE:
        kind = "case"
    elif content.get("is_direct") is True:
        kind = "direct"
    else:
        kind = "group"
    initial = content.get("initial_state")
    if not isinstance(initial, list):
        initial = []
    kept = [e for e in initial if not (isinstance(e, dict) and e.get("type") == RETENTION)]
    policy = {"max_lifetime": retention_days[kind] * 24 * 3600 * 1000}
    kept.append({"type": RETENTION, "state_key": "", "content": policy})
    return {**content, "initial_state": kept}


def _invitees(rule: str | None, segments: list[str], content: dict[str, Any]) -> list[str]:
    """The Matrix IDs a request invites; refuses invitations by e-mail or phone (a
    third-party identifier that no invite rule can check)."""
    if rule == "createRoom":
        if content.get("invite_3pid"):
            raise Refusal(403, "M_FORBIDDEN", "Invitations by e-mail or phone are not allowed.")
        invited = content.get("invite") or []
        if not isinstance(invited, list) or not all(isinstance(i, str) for i in invited):
            raise Refusal(400, "M_BAD_JSON", "invite must be a list of Matrix IDs.")
        return list(invited)
    if rule == "invite":
        if "medium" in content or "address" in content or "id_server" in content:
            raise Refusal(403, "M_FORBIDDEN", "Invitations by e-mail or phone are not allowed.")
        invitee = content.get("user_id")
        if not isinstance(invitee, str):
            raise Refusal(400, "M_BAD_JSON", "user_id must be a Matrix ID.")
        return [invitee]
    if rule == "member" and content.get("membership") == "invite":
        state_key = segments[-1] if segments[-2] == "m.room.member" else ""
        return [state_key]
    return []


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        content = orjson.loads(body or b"{}")
    except orjson.JSONDecodeError:
        raise Refusal(400, "M_NOT_JSON", "The body is not valid JSON.") from None
    if not isinstance(content, dict):
        raise Refusal(400, "M_BAD_JSON", "The body must be a JSON object.")
    return content


def _access_token(scope: Scope) -> str | None:
    for key, value in scope["headers"]:
        if key.lower() == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" and token.strip() else None
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    tokens = query.get("access_token")
    return tokens[0] if tokens else None
