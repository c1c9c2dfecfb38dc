"""Attachments of DocumentReference (`content[].attachment`) and Media (`content`) whose
data is large: on every create and update, data of more than `INLINE_ATTACHMENT_BYTES`
(decoded) moves to storage as a Binary of its own, whose securityContext is the resource it
is attached to, and the attachment names it by `url` (`Binary/{id}`, relative to the hub),
with its `size` and `hash` (R4: the base64 SHA-1 of the data). Smaller data stays inline.

An attachment `url` that names a Binary of this hub must name one that the writer's
organisation holds: nobody attaches another organisation's bytes to a resource of theirs
(which would not let them read the bytes, but would make them part of a record that others
read)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import anyio.to_thread

from medicus.core.errors import ApiError, ErrorDetail
from medicus.core.ids import is_fhir_id, new_id

INLINE_ATTACHMENT_BYTES = 64 * 1024
"""Decoded bytes of an attachment's data up to which it stays inline in its resource."""
ATTACHING = frozenset({"DocumentReference", "Media"})
"""The resource types whose attachments move to storage."""

_WHITESPACE = re.compile(r"\s+", re.ASCII)

Keep = Callable[[str, str, bytes, str], Awaitable[tuple[str, str]]]
"""Keeps bytes in storage for a new Binary (its id, the declared content type, the bytes, the
FHIRPath of that type for errors): the object's id and the content type kept."""


@dataclass(frozen=True)
class Located:
    """An attachment of a resource, and the FHIRPath of it (for errors)."""

    attachment: dict[str, Any]
    path: str


@dataclass(frozen=True)
class Moved:
    """An attachment's data moved to storage: the Binary to create for it (its id, content
    type, and the object holding its bytes)."""

    fhir_id: str
    content_type: str
    object_id: str


def located(resource_type: str, resource: dict[str, Any]) -> list[Located]:
    """The attachments of a DocumentReference or Media (none for other types)."""
    if resource_type == "Media":
        content = resource.get("content")
        return [Located(content, "Media.content")] if isinstance(content, dict) else []
    if resource_type != "DocumentReference" or not isinstance(resource.get("content"), list):
        return []
    found = []
    for index, item in enumerate(resource["content"]):
        attachment = item.get("attachment") if isinstance(item, dict) else None
        if isinstance(attachment, dict):
            path = f"DocumentReference.content[{index}].attachment"
            found.append(Located(attachment, path))
    return found


def invalid(expression: str, message: str, issue_type: str = "value") -> ApiError:
    return ApiError(
        422,
        f"{expression} {message}.",
        errors=[ErrorDetail(message, expression=expression)],
        issue_type=issue_type,
    )


def decode(value: Any, expression: str) -> tuple[bytes, str]:
    """The bytes of base64 `value` and their SHA-1 (base64, as `Attachment.hash` has it);
    a 422 naming `expression` if it is no base64."""
    if not isinstance(value, str):
        raise invalid(expression, "must be a base64 string")
    try:
        data = base64.b64decode(_WHITESPACE.sub("", value), validate=True)
    except (binascii.Error, ValueError):
        raise invalid(expression, "is not base64") from None
    return data, base64.b64encode(hashlib.sha1(data, usedforsecurity=False).digest()).decode()


async def decoded(value: Any, expression: str) -> tuple[bytes, str]:
    """`decode`, in a worker thread: megabytes of base64 take milliseconds."""
    return await anyio.to_thread.run_sync(decode, value, expression)


def _may_be_large(value: Any, threshold: int) -> bool:
    """Whether base64 `value` may decode to more than `threshold` bytes (4 characters are
    at most 3 bytes), so that small data is never decoded here."""
    return isinstance(value, str) and len(value) // 4 * 3 > threshold


async def move_large(
    resource_type: str, resource: dict[str, Any], threshold: int, keep: Keep
) -> list[Moved]:
    """Move the data of the resource's attachments of more than `threshold` bytes to
    storage (`keep`), changing the attachments in place; the Binaries to create for them."""
    moved = []
    for found in located(resource_type, resource):
        attachment = found.attachment
        if not _may_be_large(attachment.get("data"), threshold):
            continue
        data, sha1 = await decoded(attachment["data"], f"{found.path}.data")
        if len(data) <= threshold:
            continue
        _check_description(found, len(data), sha1)
        content_type = attachment.get("contentType") or "application/octet-stream"
        if not isinstance(content_type, str):
            raise invalid(f"{found.path}.contentType", "must be a string")
        binary_id = new_id()
        object_id, kept_type = await keep(
            binary_id, content_type, data, f"{found.path}.contentType"
        )
        moved.append(Moved(binary_id, kept_type, object_id))
        del attachment["data"]
        attachment.update(url=f"Binary/{binary_id}", size=len(data), hash=sha1)
    return moved


def _check_description(found: Located, size: int, sha1: str) -> None:
    """An attachment about to be moved: it has no url of its own (its url will name the
    Binary), and its size and hash, if given, are those of its data."""
    attachment, path = found.attachment, found.path
    if "url" in attachment:
        raise invalid(
            f"{path}.url",
            f"must be left out when data has more than {INLINE_ATTACHMENT_BYTES} bytes: "
            "the data is kept as a Binary, which the url will name",
            "business-rule",
        )
    if attachment.get("size", size) != size:
        raise invalid(f"{path}.size", f"is not the size of the data ({size} bytes)")
    if attachment.get("hash", sha1) != sha1:
        raise invalid(f"{path}.hash", "is not the SHA-1 of the data (base64)")


def large_inline(resource_type: str, resource: dict[str, Any], threshold: int) -> None:
    """Refuse inline data above `threshold` in a resource that a patch left (a patch is
    applied inside the write, after the data could have been moved)."""
    for found in located(resource_type, resource):
        if _may_be_large(found.attachment.get("data"), threshold):
            raise invalid(
                f"{found.path}.data",
                f"may have at most {threshold} bytes in a patch: send the resource with PUT "
                "(its larger data is then kept as a Binary), or a Binary and its url",
                "too-long",
            )


def binary_named(url: Any, base: str) -> str | None:
    """The id of the Binary of this hub that an attachment url names, None otherwise."""
    if not isinstance(url, str):
        return None
    path = url.removeprefix(f"{base}/")
    kind, _, fhir_id = path.partition("/")
    return fhir_id if kind == "Binary" and is_fhir_id(fhir_id) else None


def named_binaries(resource_type: str, resource: dict[str, Any], base: str) -> list[Located]:
    """The attachments that name a Binary of this hub by their url."""
    return [
        found
        for found in located(resource_type, resource)
        if binary_named(found.attachment.get("url"), base) is not None
    ]


def resolve_urls(resource_type: str, resource: Any, ids: Mapping[str, str]) -> None:
    """Attachment urls that are the fullUrl of a transaction's entry (`urn:uuid:…`) as the
    `Type/id` it was given (R4: a transaction replaces every url of its entries' fullUrls)."""
    if not isinstance(resource, dict):
        return
    for found in located(resource_type, resource):
        url = found.attachment.get("url")
        if isinstance(url, str) and url in ids:
            found.attachment["url"] = ids[url]
