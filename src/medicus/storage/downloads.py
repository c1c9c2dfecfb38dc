"""Downloads of stored objects over HTTP (RFC 9110): what a GET or HEAD asks for, by its
conditional headers against the object's strong ETag and by its Range, and the answer's
headers and bytes.

- If-Match (strong comparison) that names none of the object → 412; If-None-Match that
  names it → 304 (412 for a DELETE). The ETag is the SHA-256 of the bytes, which never
  change under an object's id, so there is no Last-Modified and no date condition.
- Range: `bytes=a-b`, `a-`, `-n`. A Range that does not parse, of another unit, on an empty
  object or with more than `MAX_PARTS` parts is ignored (the whole object, 200), as RFC 9110
  allows; one whose parts all lie outside the object → 416 with `Content-Range: bytes */size`.
  Overlapping or adjacent parts are merged; what remains as one part is a 206 of it, several
  parts a 206 of `multipart/byteranges`. If-Range with the object's ETag applies the Range,
  anything else (another tag, a weak tag, a date) asks for the whole object.
- A part is read from the chunks it lies in (`ObjectStore.stream`): 1 MB of a 5 GB object
  reads about 1 MB."""

from __future__ import annotations

import base64
import re
import secrets
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from urllib.parse import quote

from medicus.core.errors import ApiError
from medicus.storage.service import ObjectStore, StoredObject

MAX_PARTS = 16
"""More parts than this (after merging) are not worth a multipart answer: the whole object."""
MAX_RANGE_HEADER = 1024
"""A longer Range header is ignored (also keeps its numbers below Python's digit limit)."""

_RANGE = re.compile(r"\s*bytes\s*=(.*)", re.IGNORECASE | re.DOTALL)
_SPEC = re.compile(r"\s*(?:([0-9]+)\s*-\s*([0-9]*)|-\s*([0-9]+))\s*")
_ENTITY_TAG = re.compile(r'\s*(W/)?"([^"]*)"\s*(?:,|$)')


@dataclass(frozen=True)
class ByteRange:
    """Bytes [start, end) of an object."""

    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start

    def content_range(self, size: int) -> str:
        return f"bytes {self.start}-{self.end - 1}/{size}"


@dataclass(frozen=True)
class Download:
    """The answer to a GET or HEAD: its status, headers and the parts of the object its
    body holds (none for a HEAD, a 304 or an empty object)."""

    status: int
    headers: dict[str, str]
    parts: tuple[ByteRange, ...] = ()
    boundary: str | None = None


def plan(method: str, headers: Mapping[str, str], stored: StoredObject) -> Download:
    """What to answer a GET or HEAD of `stored` with these request headers; 412 or 416."""
    if not preconditions_hold(method, headers, stored):
        return Download(304, {"ETag": stored.etag, "Cache-Control": "private, no-cache"})
    answer = representation_headers(stored)
    parts = _wanted(method, headers, stored)
    if parts is None:
        answer["Content-Length"] = str(stored.size)
        whole = (ByteRange(0, stored.size),) if stored.size and method == "GET" else ()
        return Download(200, answer, whole)
    if len(parts) == 1:
        answer["Content-Range"] = parts[0].content_range(stored.size)
        answer["Content-Length"] = str(parts[0].length)
        return Download(206, answer, parts)
    boundary = secrets.token_hex(16)
    answer["Content-Type"] = f"multipart/byteranges; boundary={boundary}"
    heads = sum(len(_part_head(stored, part, index, boundary)) for index, part in enumerate(parts))
    length = heads + sum(part.length for part in parts) + len(_closing(boundary))
    answer["Content-Length"] = str(length)
    return Download(206, answer, parts, boundary)


def preconditions_hold(method: str, headers: Mapping[str, str], stored: StoredObject) -> bool:
    """Whether the request goes on (RFC 9110 §13.2.2): False means 304 (GET, HEAD); 412
    is raised for If-Match naming none of the object, and for If-None-Match naming it on
    any other method."""
    if_match = headers.get("if-match")
    if if_match is not None and not _names(if_match, stored.etag, weak=False):
        raise ApiError(
            412,
            f"The object's ETag is {stored.etag}; If-Match names none of it.",
            headers={"ETag": stored.etag},
        )
    if_none_match = headers.get("if-none-match")
    if if_none_match is None or not _names(if_none_match, stored.etag, weak=True):
        return True
    if method in ("GET", "HEAD"):
        return False
    raise ApiError(412, f"If-None-Match names the object's ETag {stored.etag}.")


def _names(header: str, etag: str, weak: bool) -> bool:
    """Whether an If-Match or If-None-Match list names `etag` (a strong tag), comparing
    weakly (a weak tag counts) or strongly (it does not)."""
    if header.strip() == "*":
        return True
    opaque = etag.strip('"')
    return any(
        tag == opaque and (weak or not marker) for marker, tag in _ENTITY_TAG.findall(header)
    )


def _wanted(
    method: str, headers: Mapping[str, str], stored: StoredObject
) -> tuple[ByteRange, ...] | None:
    """The parts a GET asks for; None for the whole object."""
    header = headers.get("range")
    if method != "GET" or header is None:
        return None
    if_range = headers.get("if-range")
    if if_range is not None and if_range.strip() != stored.etag:
        return None
    parts = parse_range(header, stored.size)
    if parts is None:
        return None
    if not parts:
        raise ApiError(
            416,
            f"No part of the range asked for lies within the object's {stored.size} bytes.",
            headers={"Content-Range": f"bytes */{stored.size}"},
        )
    merged = merge(parts)
    return None if len(merged) > MAX_PARTS else tuple(merged)


def parse_range(header: str, size: int) -> list[ByteRange] | None:
    """The satisfiable parts a Range header asks of an object of `size` bytes, in the order
    asked; [] if none is; None if the header is to be ignored."""
    matched = _RANGE.fullmatch(header) if len(header) <= MAX_RANGE_HEADER else None
    if matched is None or size == 0:
        return None
    parts: list[ByteRange] = []
    specs = [spec for spec in matched[1].split(",") if spec.strip()]
    for spec in specs:
        fields = _SPEC.fullmatch(spec)
        if fields is None:
            return None
        first, last, suffix = fields.groups()
        if suffix is not None:
            if int(suffix) > 0:
                parts.append(ByteRange(max(0, size - int(suffix)), size))
            continue
        if last and int(last) < int(first):
            return None
        if int(first) < size:
            end = size if not last else min(size, int(last) + 1)
            parts.append(ByteRange(int(first), end))
    return parts if specs else None


def merge(parts: list[ByteRange]) -> list[ByteRange]:
    """The parts with overlapping or adjacent ones merged, in the order they were first
    asked for (RFC 9110 §14.6)."""
    ordered = sorted(enumerate(parts), key=lambda item: item[1].start)
    merged: list[tuple[int, ByteRange]] = []
    for index, part in ordered:
        if merged and part.start <= merged[-1][1].end:
            first, last = merged[-1]
            merged[-1] = (min(first, index), ByteRange(last.start, max(last.end, part.end)))
        else:
            merged.append((index, part))
    return [part for _, part in sorted(merged, key=lambda item: item[0])]


def representation_headers(stored: StoredObject) -> dict[str, str]:
    """Headers of every 200 and 206 (and HEAD) of the object: always a download, never
    sniffed or shown inline, revalidated before a private cache reuses it."""
    digest = base64.b64encode(bytes.fromhex(stored.sha256)).decode("ascii")
    return {
        "Content-Type": stored.content_type,
        "ETag": stored.etag,
        "Accept-Ranges": "bytes",
        "Cache-Control": "private, no-cache",
        "Content-Disposition": content_disposition(stored.file_name),
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Repr-Digest": f"sha-256=:{digest}:",
        "Digest": f"sha-256={digest}",
    }


def content_disposition(file_name: str | None) -> str:
    """`attachment`, with the file name as UTF-8 (RFC 6266, 8187) and an ASCII stand-in for
    clients that do not read that."""
    if not file_name:
        return "attachment"
    fallback = "".join(
        char if " " <= char <= "~" and char not in '"\\%' else "_" for char in file_name
    )
    encoded = quote(file_name, safe="!#$&+-.^_`|~")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"


async def content(
    store: ObjectStore, stored: StoredObject, download: Download
) -> AsyncIterator[bytes]:
    """The body of `download`, its first piece already read: a failure to read the object
    (503) comes before the answer starts, as an error the caller can see."""
    pieces = _pieces(store, stored, download)
    first = await anext(pieces, b"")

    async def body() -> AsyncIterator[bytes]:
        yield first
        async for piece in pieces:
            yield piece

    return body()


async def _pieces(
    store: ObjectStore, stored: StoredObject, download: Download
) -> AsyncIterator[bytes]:
    boundary = download.boundary
    for index, part in enumerate(download.parts):
        head = b"" if boundary is None else _part_head(stored, part, index, boundary)
        async for piece in store.stream(stored.id, part.start, part.end):
            yield head + piece
            head = b""
    if boundary is not None:
        yield _closing(boundary)


def _part_head(stored: StoredObject, part: ByteRange, index: int, boundary: str) -> bytes:
    delimiter = f"--{boundary}" if index == 0 else f"\r\n--{boundary}"
    return (
        f"{delimiter}\r\nContent-Type: {stored.content_type}\r\n"
        f"Content-Range: {part.content_range(stored.size)}\r\n\r\n"
    ).encode("latin-1")


def _closing(boundary: str) -> bytes:
    return f"\r\n--{boundary}--\r\n".encode("ascii")
