"""The Messenger-Proxy's media routes: uploads go to `storage` (`messenger.media`), downloads of
them come from there; media Synapse holds (uploaded before, or by Synapse itself) pass through.

- `POST /_matrix/media/{version}/upload` keeps the body as an attachment (`Content-Length`
  required: storage counts the size against the quota before a byte is kept);
- `…/download/{server}/{media}` and `…/thumbnail/…` of an attachment kept here stream it to a
  signed-in user (the authenticated `/_matrix/client/v1/media/…` endpoints; the legacy
  unauthenticated ones answer 404, as Synapse does for new media); a thumbnail of an image up
  to 10 MiB is the image itself, of anything else 404;
- asynchronous uploads (`/_matrix/media/v1/create`) are not offered: clients upload in one go."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, quote

from starlette.types import Receive, Scope, Send

from medicus.core.errors import ApiError
from medicus.messenger.matrix_http import Refusal, answer, content_length, streamed
from medicus.messenger.media import MediaRefused, Medium, MessengerMedia

_THUMBNAIL_AS_IS = 10 * 1024 * 1024
_MATRIX_ERRORS = {413: "M_TOO_LARGE", 507: "M_RESOURCE_LIMIT_EXCEEDED", 404: "M_NOT_FOUND"}


@dataclass(frozen=True)
class MediaRequest:
    action: str
    """"upload", "unoffered", "download" or "thumbnail"."""
    server: str = ""
    media_id: str = ""
    legacy: bool = False


def media_request(method: str, segments: list[str]) -> MediaRequest | None:
    """The media request a path asks for, if it is one the proxy answers or checks."""
    if len(segments) < 5 or segments[1] != "_matrix":
        return None
    if segments[2] == "media":
        tail, legacy = segments[4:], True
        if method == "POST" and tail == ["create"]:
            return MediaRequest("unoffered")
        if tail[:1] == ["upload"]:
            if method == "POST" and len(tail) == 1:
                return MediaRequest("upload")
            return MediaRequest("unoffered") if method == "PUT" else None
    elif segments[2:5] == ["client", "v1", "media"]:
        tail, legacy = segments[5:], False
    else:
        return None
    if method in ("GET", "HEAD") and len(tail) >= 3 and tail[0] in ("download", "thumbnail"):
        return MediaRequest(tail[0], tail[1], tail[2], legacy)
    return None


class MediaRoutes:
    def __init__(self, media: MessengerMedia, max_upload_bytes: int) -> None:
        self._media = media
        self._limit = max_upload_bytes

    async def handle(
        self,
        asked: MediaRequest,
        scope: Scope,
        receive: Receive,
        send: Send,
        user_id: str | None,
    ) -> bool:
        """Answer the request if it is one of the proxy's own; False to pass it to Synapse."""
        if asked.action == "unoffered":
            raise Refusal(404, "M_UNRECOGNIZED", "Upload in one request to /upload instead.")
        if asked.action == "upload":
            await self._upload(scope, receive, send, user_id)
            return True
        medium = await self._media.find(asked.server, asked.media_id)
        if medium is None:
            return False
        if asked.legacy or user_id is None:
            raise Refusal(404, "M_NOT_FOUND", "Attachments are downloaded signed in.")
        if asked.action == "thumbnail" and not _shown_as_is(medium):
            raise Refusal(404, "M_NOT_FOUND", "This attachment has no thumbnail.")
        await self._download(scope, send, user_id, medium)
        return True

    async def _upload(
        self, scope: Scope, receive: Receive, send: Send, user_id: str | None
    ) -> None:
        if user_id is None:
            raise Refusal(401, "M_MISSING_TOKEN", "Uploading takes an access token.")
        size = content_length(scope)
        if size is None:
            raise Refusal(411, "M_UNKNOWN", "An upload needs its Content-Length.")
        if size > self._limit:
            raise Refusal(413, "M_TOO_LARGE", f"Uploads are limited to {self._limit} bytes.")
        content_type = _header(scope, b"content-type") or "application/octet-stream"
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        file_name = (query.get("filename") or [None])[0]
        try:
            body = streamed(receive, size)
            name = file_name[:255] if file_name else None
            uri = await self._media.upload(user_id, size, content_type[:255], name, body)
        except MediaRefused as refused:
            raise Refusal(403, "M_FORBIDDEN", str(refused)) from None
        except ApiError as failed:
            errcode = _MATRIX_ERRORS.get(failed.status, "M_UNKNOWN")
            raise Refusal(failed.status, errcode, failed.detail) from None
        await answer(send, 200, {"content_uri": uri})

    async def _download(self, scope: Scope, send: Send, user_id: str, medium: Medium) -> None:
        body = await self._media.download(user_id, medium)
        disposition = "inline" if _shown_as_is(medium) else "attachment"
        if medium.file_name:
            disposition += f"; filename*=UTF-8''{quote(medium.file_name, safe='')}"
        headers = [
            (b"content-type", medium.content_type.encode("latin-1", "replace")),
            (b"content-length", str(medium.size).encode()),
            (b"content-disposition", disposition.encode()),
            (b"content-security-policy", b"sandbox; default-src 'none'"),
            (b"x-content-type-options", b"nosniff"),
            (b"cache-control", b"private, max-age=86400"),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        if scope["method"] != "HEAD":
            async for piece in body:
                await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def _shown_as_is(medium: Medium) -> bool:
    """Images small enough to show (inline, and as their own thumbnail); not SVG, which is
    a document that can carry scripts."""
    kind = medium.content_type.split(";", 1)[0].strip().lower()
    return kind.startswith("image/") and kind != "image/svg+xml" and medium.size <= _THUMBNAIL_AS_IS


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None
