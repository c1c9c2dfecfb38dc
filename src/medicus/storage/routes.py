"""HTTP of the object storage: keep an object from a plain body (`POST /storage/objects`),
read it whole or in parts with conditional requests (`GET`/`HEAD`), delete it, and the
organisation's usage. Every object is asked of `access` as a FHIR Binary, and audited
(`StoragePermissions`); another organisation's object is 404. Bodies of unknown length go
through the resumable uploads (tus) at /storage/uploads."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from urllib.parse import unquote_to_bytes

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from medicus.access.policy import Interaction
from medicus.core.errors import ApiError
from medicus.iam.bearer import bearer_principal
from medicus.iam.tokens import Principal, TokenService
from medicus.storage import downloads
from medicus.storage.permissions import StoragePermissions
from medicus.storage.service import NewObject, ObjectStore, StoredObject, usage
from medicus.storage.sniffing import is_media_type, peek, settle

_OBJECT_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_TCHARS = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_DISPOSITION_TYPE = re.compile(rf"\s*{_TCHARS}\s*")
_PARAMETER = re.compile(rf';\s*({_TCHARS})\s*=\s*("(?:[^"\\]|\\.)*"|{_TCHARS})\s*', re.DOTALL)
_EXTENDED = re.compile(r"(utf-8|iso-8859-1)'[A-Za-z0-9-]*'(.*)", re.IGNORECASE | re.DOTALL)
_BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
MAX_NAME = 255


def build_router(
    storage: ObjectStore, permissions: StoragePermissions, tokens: TokenService
) -> APIRouter:
    caller = bearer_principal(tokens)
    router = APIRouter(prefix="/storage", tags=["storage"])

    async def visible(
        principal: Principal, object_id: str, interaction: Interaction
    ) -> StoredObject:
        if _OBJECT_ID.fullmatch(object_id) is None:
            # Nothing can be there: no object, no record to audit.
            raise ApiError(404, "There is no such object here.")
        stored = await storage.describe(object_id)
        return await permissions.visible(principal, object_id, stored, interaction)

    @router.post("/objects", status_code=201)
    async def keep(
        request: Request, principal: Principal = Depends(caller), name: str | None = None
    ) -> JSONResponse:
        """Keep the request's body as a new object of the caller's organisation."""
        size = content_length(request.headers, storage.max_object_bytes)
        declared = declared_type(request.headers)
        file_name = _file_name(request.headers, name)
        organisation = await permissions.creator(principal, {"size": str(size)})
        head, body = await peek(request.stream())
        content_type = settle(declared, head)
        new = NewObject(organisation, size, content_type, file_name, None, principal.actor[:64])
        return _created(await storage.put(new, body))

    @router.get("/objects/{object_id}", operation_id="read_stored_object")
    @router.head("/objects/{object_id}", operation_id="head_stored_object")
    async def read(
        object_id: str, request: Request, principal: Principal = Depends(caller)
    ) -> Response:
        """The object's bytes, whole or the parts a Range asks for."""
        stored = await visible(principal, object_id, Interaction.READ)
        download = downloads.plan(request.method, request.headers, stored)
        if not download.parts:
            return Response(status_code=download.status, headers=download.headers)
        body = await downloads.content(storage, stored, download)
        return StreamingResponse(body, status_code=download.status, headers=download.headers)

    @router.delete("/objects/{object_id}", status_code=204)
    async def delete(
        object_id: str, request: Request, principal: Principal = Depends(caller)
    ) -> Response:
        """Delete the object (its key is destroyed at once: crypto-shredding)."""
        stored = await visible(principal, object_id, Interaction.DELETE)
        downloads.preconditions_hold("DELETE", request.headers, stored)
        if not await storage.delete(stored.id):
            raise ApiError(404, "There is no such object here.")
        return Response(status_code=204)

    @router.get("/usage")
    async def organisation_usage(principal: Principal = Depends(caller)) -> JSONResponse:
        """What the caller's organisation keeps, and may keep (null: no limit)."""
        if principal.role == "patient":
            raise ApiError(403, "The organisation's storage usage is for its staff.")
        used = await usage(storage, principal.organisation_id)
        answer = {
            "organisation": used.organisation_id,
            "usedBytes": used.used_bytes,
            "quotaBytes": used.quota_bytes,
            "maxObjectBytes": storage.max_object_bytes,
        }
        return JSONResponse(answer, headers={"Cache-Control": "no-store"})

    return router


def _created(stored: StoredObject) -> JSONResponse:
    answer = {
        "id": stored.id,
        "size": stored.size,
        "sha256": stored.sha256,
        "contentType": stored.content_type,
        "fileName": stored.file_name,
    }
    headers = {"Location": f"/storage/objects/{stored.id}", "ETag": stored.etag}
    return JSONResponse(answer, status_code=201, headers=headers)


def content_length(headers: Mapping[str, str], largest: int) -> int:
    """The announced size of the body: 411 without one (a chunked body), 413 above the
    largest object, before a byte of the body is read."""
    value = headers.get("content-length")
    if value is None or "transfer-encoding" in headers:
        raise ApiError(
            411,
            "An object is sent with a Content-Length. Bodies of unknown length (chunked) are "
            "uploaded with tus at /storage/uploads.",
        )
    value = value.strip()
    if re.fullmatch(r"[0-9]+", value) is None:
        raise ApiError(400, "The Content-Length header is not a number.")
    size = int(value) if len(value) <= 20 else largest + 1
    if size > largest:
        raise ApiError(413, f"An object may have at most {largest} bytes; this one has {value}.")
    return size


def declared_type(headers: Mapping[str, str]) -> str | None:
    """The declared content type (None: none); 400 if it is not a media type, 415 for a
    body that is compressed for the transfer."""
    encoding = headers.get("content-encoding", "").strip().lower()
    if encoding not in ("", "identity"):
        raise ApiError(
            415,
            "A Content-Encoding is not taken here: send the object's bytes as they are.",
        )
    declared = headers.get("content-type", "").strip()
    if not declared:
        return None
    if not is_media_type(declared):
        raise ApiError(400, "The Content-Type header is not a media type.")
    return declared


def _file_name(headers: Mapping[str, str], query_name: str | None) -> str | None:
    """The object's file name, from `Content-Disposition` (`filename*` before `filename`)
    or else `?name=`; 400 for one that is not a plain file name."""
    disposition = headers.get("content-disposition")
    given = _disposition_name(disposition) if disposition else None
    if given is None:
        given = query_name
    return None if given is None else _sanitised(given)


def _disposition_name(value: str) -> str | None:
    """The file name a Content-Disposition header gives (RFC 6266), None if none."""
    unreadable = ApiError(400, "The Content-Disposition header could not be read (RFC 6266).")
    matched = _DISPOSITION_TYPE.match(value)
    if matched is None:
        raise unreadable
    parameters: dict[str, str] = {}
    position = matched.end()
    while value[position:].strip(" \t;"):
        parameter = _PARAMETER.match(value, position)
        if parameter is None:
            raise unreadable
        parameters.setdefault(parameter[1].lower(), parameter[2])
        position = parameter.end()
    if "filename*" in parameters:
        extended = _EXTENDED.fullmatch(parameters["filename*"])
        if extended is None:
            raise unreadable
        try:
            return unquote_to_bytes(extended[2]).decode(extended[1].lower())
        except UnicodeDecodeError:
            raise unreadable from None
    plain = parameters.get("filename")
    if plain is None:
        return None
    if plain.startswith('"'):
        plain = re.sub(r"\\(.)", r"\1", plain[1:-1], flags=re.DOTALL)
    try:  # raw UTF-8 in the header, as many clients send it (read as Latin-1)
        return plain.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return plain


def _sanitised(name: str) -> str:
    """A file name as it is kept: NFC, without surrounding blanks; 400 if it is empty, a
    path, longer than 255 characters or holds control characters (bidi controls too, which
    make "rechnung\u202efdp.exe" look like a PDF)."""
    name = unicodedata.normalize("NFC", name).strip()
    if not name or name in (".", ".."):
        problem = "is empty"
    elif len(name) > MAX_NAME:
        problem = f"has more than {MAX_NAME} characters"
    elif "/" in name or "\\" in name:
        problem = "holds a path separator"
    elif any(
        unicodedata.category(char) in ("Cc", "Cs", "Zl", "Zp") or char in _BIDI_CONTROLS
        for char in name
    ):
        problem = "holds control characters"
    else:
        return name
    raise ApiError(400, f"The file name {problem}; give a plain file name.")
