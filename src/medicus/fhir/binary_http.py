"""A Binary read over HTTP in its own type (R4, http.html#binary): `GET /fhir/Binary/{id}`
answers with the bytes, in the Binary's contentType, unless it asks for FHIR — `_format`, or
an Accept naming a FHIR or JSON type (`application/fhir+json`, `application/json`) — which
gets the Binary resource as JSON (see `binary.BinaryReader.read`). Conditional requests and
Range are those of any stored object's download (`storage.downloads`: strong ETag, the
SHA-256 of the bytes; `bytes=` ranges, 206 and 416)."""

from __future__ import annotations

from collections.abc import Mapping
from email.utils import format_datetime

from fastapi.responses import Response, StreamingResponse

from medicus.fhir.binary import OpenedBinary
from medicus.fhir.stored_bytes import StoredBytes
from medicus.iam.tokens import Principal
from medicus.storage import downloads

_FHIR_ACCEPT = ("fhir", "application/json")
_SAFE = {
    "Cache-Control": "private, no-cache",
    "Content-Disposition": "attachment",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
}
"""Headers of bytes that anyone may have written: never sniffed, run or shown inline."""


def asks_for_resource(query: Mapping[str, str], accept: str) -> bool:
    """Whether a read of a Binary asks for the FHIR resource rather than its bytes."""
    accept = accept.lower()
    return "_format" in query or any(kind in accept for kind in _FHIR_ACCEPT)


async def binary_response(
    stored_bytes: StoredBytes, caller: Principal, fhir_id: str, headers: Mapping[str, str]
) -> Response:
    """The bytes of Binary `fhir_id`, if the caller may read it (audited as a read)."""
    opened = await stored_bytes.reader.open(caller, fhir_id)
    modified = format_datetime(opened.version.last_updated, usegmt=True)
    if opened.stored is None:
        return _inline(opened, modified)
    download = downloads.plan("GET", headers, opened.stored)
    answer = {**download.headers, "Last-Modified": modified}
    if download.boundary is None and download.status != 304:
        answer["Content-Type"] = opened.content_type
    if not download.parts:
        return Response(status_code=download.status, headers=answer)
    body = await downloads.content(stored_bytes.storage, opened.stored, download)
    return StreamingResponse(body, status_code=download.status, headers=answer)


def _inline(opened: OpenedBinary, modified: str) -> Response:
    """A Binary whose data is in its JSON (written before bytes went to storage), or that
    has none."""
    headers = {**_SAFE, "ETag": opened.version.etag, "Last-Modified": modified}
    return Response(opened.inline or b"", media_type=opened.content_type, headers=headers)
