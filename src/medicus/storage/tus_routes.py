"""The tus 1.0 protocol over HTTP (core, creation, creation-with-upload, termination,
checksum, expiration): headers in, headers out; what an upload is and does is `uploads`.
Mounted at `/storage/uploads` with bearer tokens, and wherever else another way of naming
the caller (the portal's session) wants the same protocol (`tus_router`).

Bodies stream: nothing holds more than a few MiB of one, whatever its size. A body ends when
the client hangs up, or after IDLE_SECONDS without a byte (a dead connection must not hold
the upload): what arrived by then is kept."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import dataclasses
import email.utils
import hashlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.requests import ClientDisconnect

from medicus.core.errors import ApiError, unsupported_media_type
from medicus.iam.tokens import Principal
from medicus.storage.sniffing import is_media_type
from medicus.storage.uploads import CHECKSUM_ALGORITHMS, Checksum, NewUpload, Upload, UploadService

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "creation,creation-with-upload,termination,checksum,expiration"
OFFSET_OCTET_STREAM = "application/offset+octet-stream"
OBJECTS_PATH = "/storage/objects"
METADATA_LIMIT = 4096
IDLE_SECONDS = 60.0
_NUMBER = re.compile(r"[0-9]{1,19}")
_METADATA_KEY = re.compile(r"[!-~]{1,64}")
_FILE_NAME_KEYS = ("filename", "name")
_CONTENT_TYPE_KEYS = ("filetype", "contentType", "type")

Caller = Callable[[Request], Awaitable[Principal]]


def tus_router(uploads: UploadService, caller: Caller, prefix: str) -> APIRouter:
    """The tus protocol's routes under `prefix`; `caller` names who asks (or answers 401)."""
    router = APIRouter(prefix=prefix, include_in_schema=False)

    @router.options("")
    @router.options("/{upload_id}")
    async def discover() -> Response:
        return Response(status_code=204, headers=_discovery(uploads))

    @router.post("")
    async def create(request: Request) -> Response:
        async with _tus_errors():
            principal = await _authenticated(request, caller)
            return await _create(uploads, principal, request, prefix)

    @router.head("/{upload_id}")
    async def describe(upload_id: str, request: Request) -> Response:
        async with _tus_errors():
            principal = await _authenticated(request, caller)
            upload = await uploads.describe(principal, upload_id)
            headers = {**_state_headers(upload), "Upload-Length": str(upload.length)}
            if upload.metadata:
                headers["Upload-Metadata"] = _encode_metadata(upload.metadata)
            return Response(status_code=200, headers={**headers, "Cache-Control": "no-store"})

    @router.patch("/{upload_id}")
    async def append(upload_id: str, request: Request) -> Response:
        async with _tus_errors():
            principal = await _authenticated(request, caller)
            return await _append(uploads, principal, upload_id, request)

    @router.delete("/{upload_id}")
    async def terminate(upload_id: str, request: Request) -> Response:
        async with _tus_errors():
            principal = await _authenticated(request, caller)
            await uploads.terminate(principal, upload_id)
            return Response(status_code=204, headers={"Tus-Resumable": TUS_VERSION})

    @router.post("/{upload_id}")
    async def overridden(upload_id: str, request: Request) -> Response:
        """X-HTTP-Method-Override (tus core): PATCH or DELETE for clients that can only POST."""
        method = request.headers.get("x-http-method-override", "").upper()
        if method == "PATCH":
            return await append(upload_id, request)
        if method == "DELETE":
            return await terminate(upload_id, request)
        raise ApiError(405, "An upload takes HEAD, PATCH and DELETE.", headers=_TUS_HEADERS)

    return router


_TUS_HEADERS = {"Tus-Resumable": TUS_VERSION}


@contextlib.asynccontextmanager
async def _tus_errors() -> AsyncIterator[None]:
    """Every answer but OPTIONS's names the protocol's version, errors too."""
    try:
        yield
    except ApiError as error:
        raise dataclasses.replace(error, headers={**error.headers, **_TUS_HEADERS}) from None


def _discovery(uploads: UploadService) -> dict[str, str]:
    return {
        **_TUS_HEADERS,
        "Tus-Version": TUS_VERSION,
        "Tus-Max-Size": str(uploads.max_bytes),
        "Tus-Extension": TUS_EXTENSIONS,
        "Tus-Checksum-Algorithm": ",".join(CHECKSUM_ALGORITHMS),
    }


async def _authenticated(request: Request, caller: Caller) -> Principal:
    version = request.headers.get("tus-resumable")
    if version != TUS_VERSION:
        raise ApiError(
            412,
            f"This server speaks tus {TUS_VERSION}: send Tus-Resumable: {TUS_VERSION}.",
            headers={"Tus-Version": TUS_VERSION},
        )
    return await caller(request)


async def _create(
    uploads: UploadService, principal: Principal, request: Request, prefix: str
) -> Response:
    if "upload-defer-length" in request.headers:
        raise ApiError(400, "Upload-Defer-Length is not supported: send Upload-Length.")
    length = _number(request, "Upload-Length")
    metadata = _metadata(request.headers.get("upload-metadata"))
    new = NewUpload(length, _content_type(metadata), _file_name(metadata), metadata)
    with_body = _brings_body(request)
    checksum = _checksum(request) if with_body else None
    body = _body(request) if with_body else None
    upload = await uploads.create(principal, new, body, checksum)
    headers = {**_state_headers(upload), "Location": f"{prefix}/{upload.id}"}
    return Response(status_code=201, headers=headers)


async def _append(
    uploads: UploadService, principal: Principal, upload_id: str, request: Request
) -> Response:
    _require_offset_stream(request)
    offset = _number(request, "Upload-Offset")
    checksum = _checksum(request)
    upload = await uploads.append(principal, upload_id, offset, _body(request), checksum)
    return Response(status_code=204, headers=_state_headers(upload))


def _state_headers(upload: Upload) -> dict[str, str]:
    headers = {**_TUS_HEADERS, "Upload-Offset": str(upload.received)}
    if upload.object_id is not None:
        headers["Medicus-Object"] = f"{OBJECTS_PATH}/{upload.object_id}"
    else:
        headers["Upload-Expires"] = email.utils.format_datetime(upload.expires_at, usegmt=True)
    return headers


async def _body(request: Request) -> AsyncIterator[bytes]:
    """The request's body as it arrives; it ends early, without an error, when the client
    hangs up or sends nothing for IDLE_SECONDS."""
    pieces = request.stream()
    try:
        while True:
            try:
                async with asyncio.timeout(IDLE_SECONDS):
                    piece = await anext(pieces)
            except (StopAsyncIteration, ClientDisconnect, TimeoutError):
                return
            if piece:
                yield piece
    finally:
        await pieces.aclose()


# --- headers -------------------------------------------------------------------------------


def _number(request: Request, name: str) -> int:
    raw = request.headers.get(name)
    if raw is None:
        raise ApiError(400, f"The {name} header is missing.")
    if not _NUMBER.fullmatch(raw.strip()):
        raise ApiError(400, f"The {name} header must be a number of bytes (0 or more).")
    return int(raw)


def _content_type_of(request: Request) -> str | None:
    raw = request.headers.get("content-type")
    return None if raw is None else raw.split(";", 1)[0].strip().lower()


def _require_offset_stream(request: Request) -> None:
    received = _content_type_of(request)
    if received != OFFSET_OCTET_STREAM:
        raise unsupported_media_type(request.headers.get("content-type"), OFFSET_OCTET_STREAM)


def _brings_body(request: Request) -> bool:
    """Whether a creation brings the upload's first bytes (creation-with-upload)."""
    if _content_type_of(request) == OFFSET_OCTET_STREAM:
        return True
    declared = request.headers.get("content-length", "0").strip()
    if declared != "0" or "transfer-encoding" in request.headers:
        raise unsupported_media_type(request.headers.get("content-type"), OFFSET_OCTET_STREAM)
    return False


def _checksum(request: Request) -> Checksum | None:
    raw = request.headers.get("upload-checksum")
    if raw is None:
        return None
    algorithm, _, encoded = raw.strip().partition(" ")
    if algorithm not in CHECKSUM_ALGORITHMS:
        supported = ", ".join(CHECKSUM_ALGORITHMS)
        raise ApiError(400, f"Upload-Checksum: the algorithms supported are {supported}.")
    digest = _base64(encoded.strip(), "Upload-Checksum")
    if len(digest) != hashlib.new(algorithm).digest_size:
        raise ApiError(400, f"Upload-Checksum: not a base64 {algorithm} digest.")
    return Checksum(algorithm, digest)


def _base64(value: str, header: str) -> bytes:
    try:
        return binascii.a2b_base64(value.encode("ascii"), strict_mode=True)
    except (binascii.Error, UnicodeEncodeError):
        raise ApiError(400, f"{header}: a value is not valid base64.") from None


def _metadata(raw: str | None) -> dict[str, str | None]:
    """Upload-Metadata's pairs (`key base64value`, comma-separated), values still encoded."""
    if raw is None or not raw.strip():
        return {}
    if len(raw) > METADATA_LIMIT:
        raise ApiError(400, f"Upload-Metadata may have at most {METADATA_LIMIT} characters.")
    pairs: dict[str, str | None] = {}
    for pair in raw.split(","):
        key, _, value = pair.strip().partition(" ")
        if not _METADATA_KEY.fullmatch(key) or key in pairs:
            raise ApiError(400, "Upload-Metadata: each key once, without spaces or commas.")
        value = value.strip()
        if value:
            _base64(value, "Upload-Metadata")
        pairs[key] = value or None
    return pairs


def _text(metadata: dict[str, str | None], keys: tuple[str, ...]) -> str | None:
    """The first of `keys` in the metadata, as UTF-8 text of printable characters."""
    for key in keys:
        encoded = metadata.get(key)
        if encoded is None:
            continue
        try:
            text = base64.b64decode(encoded).decode("utf-8").strip()
        except UnicodeDecodeError:
            raise ApiError(400, f"Upload-Metadata: {key} is not UTF-8 text.") from None
        if len(text) > 255 or not text.isprintable():
            raise ApiError(400, f"Upload-Metadata: {key} must be a line of at most 255 characters.")
        return text or None
    return None


def _file_name(metadata: dict[str, str | None]) -> str | None:
    return _text(metadata, _FILE_NAME_KEYS)


def _content_type(metadata: dict[str, str | None]) -> str:
    declared = _text(metadata, _CONTENT_TYPE_KEYS)
    if declared is None:
        return "application/octet-stream"
    if not is_media_type(declared):
        raise ApiError(400, f"Upload-Metadata: '{declared[:100]}' is not a media type.")
    return declared


def _encode_metadata(metadata: dict[str, str | None]) -> str:
    return ",".join(key if value is None else f"{key} {value}" for key, value in metadata.items())
