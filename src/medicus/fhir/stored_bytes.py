"""The FHIR hub's bytes in storage: Binary resources and the large attachments of
DocumentReference and Media (`binary`, `attachments`).

A write's bytes go to storage *before* its database transaction (`prepare`: an upload must
not hold the transaction open, and on SQLite the storage's own bookkeeping would wait for
it); inside the transaction (`around`) the write records what it used, creates the Binaries
of moved attachments and checks the urls of attachments; after it (`settle`) the objects it
replaced are deleted (crypto-shredded), and if it failed or did not use them (a conditional
create that found a match) those it put (`discard`). A single request does all three here
(`staging`); a transaction bundle stages all its entries before its one transaction
(`staging_entries`).

What is kept: a Binary's bytes for as long as the Binary is not deleted or replaced by PUT;
the Binaries of moved attachments for as long as the Binary itself (deleting or changing the
DocumentReference leaves them: its older versions still name them, and stay readable)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from medicus.access.policy import Decision, Interaction
from medicus.audit.service import AuditTrail
from medicus.core.db import Database
from medicus.core.errors import ApiError
from medicus.core.http import is_json_media_type
from medicus.core.ids import new_id
from medicus.core.logging import get_logger
from medicus.fhir import repository
from medicus.fhir.attachments import (
    ATTACHING,
    INLINE_ATTACHMENT_BYTES,
    Moved,
    binary_named,
    decoded,
    invalid,
    large_inline,
    move_large,
    named_binaries,
)
from medicus.fhir.binary import BinaryReader, object_of, with_object
from medicus.fhir.guard import Guard, audit_event
from medicus.fhir.resources import (
    StoredVersion,
    check_id,
    check_resource,
    load_stored,
    parse_body,
)
from medicus.fhir.router import FhirRequest, Resource, Unparsed
from medicus.fhir.writer import ResourceWriter
from medicus.iam.tokens import Principal
from medicus.storage.service import NewObject, ObjectStore
from medicus.storage.sniffing import SNIFF_BYTES, is_media_type, settle

log = get_logger("medicus.fhir.stored_bytes")

Work = Callable[[AsyncSession], Awaitable[StoredVersion | None]]
_PIECE = 1024 * 1024


@dataclass
class Staged:
    """What one write keeps in storage: the id chosen beforehand for a new Binary, the
    objects put for it (deleted again unless the write used them), the Binaries to create
    for moved attachments, and once written, the objects it replaced."""

    fhir_id: str | None = None
    objects: list[str] = field(default_factory=list)
    moved: list[Moved] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    used: bool = False


class _Entry(Protocol):
    """A bundle's entry, as staging sees it."""

    index: int
    request: FhirRequest


def _replaced_by_put() -> ApiError:
    return ApiError(
        405,
        "A Binary's bytes are kept in storage: it is replaced with PUT Binary/{id} and deleted "
        "with DELETE Binary/{id}; PATCH and conditional updates and deletes of Binary are not "
        "supported.",
        issue_type="not-supported",
    )


def _raw_binary(body: Unparsed, security_context: str | None) -> dict[str, Any]:
    """The Binary of bytes sent in their own type (R4: `X-Security-Context` names its
    securityContext)."""
    if not body.content_type.strip():
        raise ApiError(
            415,
            "Send a Binary's bytes with their Content-Type (such as application/pdf), or a "
            "Binary resource as application/fhir+json.",
            issue_type="not-supported",
        )
    if not body.data:
        raise ApiError(
            400, "The body is empty: a Binary's bytes are the body.", issue_type="invalid"
        )
    resource: dict[str, Any] = {"resourceType": "Binary", "contentType": body.content_type}
    if security_context:
        resource["securityContext"] = {"reference": security_context}
    return resource


async def _resource(request: FhirRequest) -> Any:
    """A write's resource, parsed once (None: a body that is no JSON)."""
    if isinstance(request.body, Resource):
        return request.body.value
    if isinstance(request.body, Unparsed) and is_json_media_type(request.body.content_type):
        return await parse_body(request.body.data)
    return None


async def _binary_body(
    request: FhirRequest, fhir_id: str | None
) -> tuple[dict[str, Any] | None, bytes | None]:
    """The Binary a POST or PUT (of `fhir_id`) sends, without its data, and its bytes (None:
    none): the body itself in its own type, or a Binary resource with base64 `data`. A new
    Binary may not name a stored object (only the server does)."""
    body = request.body
    if isinstance(body, Unparsed) and not is_json_media_type(body.content_type):
        resource = _raw_binary(body, request.header("x-security-context"))
        return (resource if fhir_id is None else {**resource, "id": fhir_id}), body.data
    given = await _resource(request)
    if given is None:
        return None, None
    resource = check_resource(given, "Binary", None)
    if request.method == "POST" and object_of(resource) is not None:
        raise invalid("Binary._data", "names a stored object: only the server does")
    data = None
    if "data" in resource:
        data, _ = await decoded(resource["data"], "Binary.data")
    return with_object(resource, object_of(resource)), data


async def _pieces(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), _PIECE):
        yield data[start : start + _PIECE]


class StoredBytes:
    def __init__(
        self,
        database: Database,
        guard: Guard,
        audit: AuditTrail,
        writer: ResourceWriter,
        storage: ObjectStore,
        base: str,
        inline_bytes: int = INLINE_ATTACHMENT_BYTES,
    ) -> None:
        """`base` is the hub's public base URL; `inline_bytes` the attachment data kept
        inline at most (`attachments.INLINE_ATTACHMENT_BYTES`)."""
        self.reader = BinaryReader(database, guard, audit, storage, base)
        self.storage = storage
        self._writer = writer
        self._base = base
        self._inline = inline_bytes

    # --- a write's life ----------------------------------------------------------------

    @asynccontextmanager
    async def staging(
        self, caller: Principal, request: FhirRequest, path: list[str], own: bool
    ) -> AsyncIterator[FhirRequest]:
        """A write as it goes on: with its bytes in storage, which are settled once the
        block ends (`own`: a request of its own; otherwise a transaction's entry, which its
        bundle staged and settles)."""
        if not own:
            yield request
            return
        prepared = await self.prepare(caller, request, path)
        try:
            yield prepared
        except BaseException:
            await self.discard(prepared.staged)
            raise
        await self.settle(prepared.staged)

    @asynccontextmanager
    async def staging_entries(
        self,
        caller: Principal,
        entries: Sequence[_Entry],
        located: Callable[[int, ApiError], ApiError],
    ) -> AsyncIterator[None]:
        """A transaction's writes, their bytes in storage before it begins (each entry's
        request replaced by its prepared one; `located` names an entry in its error) and
        settled once it has committed, or discarded if it failed."""
        prepared: list[Staged] = []
        try:
            for entry in entries:
                try:
                    entry.request = await self.prepare(caller, entry.request, _path(entry.request))
                except ApiError as error:
                    raise located(entry.index, error) from None
                if entry.request.staged is not None:
                    prepared.append(entry.request.staged)
            yield
        except BaseException:
            for staged in prepared:
                await self.discard(staged)
            raise
        for staged in prepared:
            await self.settle(staged)

    async def prepare(
        self, caller: Principal, request: FhirRequest, path: list[str]
    ) -> FhirRequest:
        """The write with its bytes in storage: a Binary's `data` or body, the large data of
        attachments (the request's resource changed to name them)."""
        kind = path[0] if path else ""
        if kind == "Binary" and request.method in ("POST", "PUT", "PATCH", "DELETE"):
            return await self._prepare_binary(caller, request, path)
        if kind in ATTACHING and request.method in ("POST", "PUT"):
            resource = await _resource(request)
            if not isinstance(resource, dict):
                return request
            staged = Staged()
            keep = partial(self._keep, caller, staged)
            try:
                staged.moved = await move_large(kind, resource, self._inline, keep)
            except BaseException:
                await self.discard(staged)
                raise
            return replace(request, body=Resource(resource), staged=staged)
        return request

    async def _prepare_binary(
        self, caller: Principal, request: FhirRequest, path: list[str]
    ) -> FhirRequest:
        one = len(path) == 2
        if len(path) > 2 or (request.method == "POST" and one):
            return request  # no interaction: the router answers so
        if request.method == "PATCH" or (request.method != "POST" and not one):
            raise _replaced_by_put()
        if one:
            check_id(path[1])
        staged = Staged(fhir_id=None if one else new_id())
        if request.method == "DELETE":
            return replace(request, staged=staged)
        resource, data = await _binary_body(request, path[1] if one else None)
        if resource is None:
            return request  # no body, or one that is no resource: the router answers so
        if data is not None:
            content_type = resource.get("contentType")
            if not isinstance(content_type, str):
                raise invalid("Binary.contentType", "is required, a string")
            binary_id = path[1] if one else str(staged.fhir_id)
            raw = isinstance(request.body, Unparsed) and not is_json_media_type(
                request.body.content_type
            )
            where = None if raw else "Binary.contentType"
            object_id, kept_type = await self._keep(
                caller, staged, binary_id, content_type, data, where
            )
            resource = with_object({**resource, "contentType": kept_type}, object_id)
        return replace(request, body=Resource(resource), staged=staged)

    async def _keep(
        self,
        caller: Principal,
        staged: Staged,
        binary_id: str,
        declared: str,
        data: bytes,
        where: str | None,
    ) -> tuple[str, str]:
        """Keep `data` as the bytes of Binary `binary_id`, declared as `declared`: the
        object's id and the content type kept (checked against the bytes as any upload is,
        `storage.sniffing`; a 415 for bytes sent in their own type, else a 422 naming
        `where`)."""
        try:
            if not is_media_type(declared):
                raise ApiError(
                    415,
                    f"{declared[:64]!r} is not a media type (type/subtype, at most 255 "
                    "characters).",
                )
            content_type = settle(declared, data[:SNIFF_BYTES])
        except ApiError as error:
            if where is None:
                raise
            raise invalid(where, error.detail.rstrip("."), "business-rule") from None
        new = NewObject(
            caller.organisation_id,
            len(data),
            content_type,
            owner=f"Binary/{binary_id}",
            created_by=caller.actor,
        )
        stored = await self.storage.put(new, _pieces(data))
        staged.objects.append(stored.id)
        return stored.id, content_type

    def around(self, caller: Principal, request: FhirRequest, path: list[str], work: Work) -> Work:
        """The write's work in its transaction, with what its bytes need there."""
        kind = path[0] if path else ""
        if kind == "Binary" and request.staged is not None:
            return partial(self._binary_work, request, path, work)
        if kind in ATTACHING and request.method in ("POST", "PUT", "PATCH"):
            return partial(self._attaching_work, caller, request, kind, work)
        return work

    async def _binary_work(
        self, request: FhirRequest, path: list[str], work: Work, session: AsyncSession
    ) -> StoredVersion | None:
        """A Binary's write: the object its stored version named is replaced if the new
        version names another (or none); a client may name only the object it names."""
        staged = request.staged
        assert staged is not None
        current = None
        if len(path) == 2:
            row = await repository.resource(session, "Binary", path[1], for_update=True)
            current = object_of(load_stored(row.content)) if row and row.content else None
        stored = await work(session)
        if stored is None or (request.method == "POST" and not stored.created):
            return stored
        staged.used = True
        kept = None
        if isinstance(request.body, Resource):
            kept = object_of(request.body.value)
        if kept is not None and kept != current and kept not in staged.objects:
            raise invalid("Binary._data", "names a stored object that is not this Binary's")
        if current is not None and current != kept:
            staged.replaced.append(current)
        return stored

    async def _attaching_work(
        self,
        caller: Principal,
        request: FhirRequest,
        kind: str,
        work: Work,
        session: AsyncSession,
    ) -> StoredVersion | None:
        """A DocumentReference's or Media's write: the Binaries of its moved attachments
        are created, and the Binaries its urls name must be its organisation's."""
        stored = await work(session)
        if stored is None or stored.content is None:
            return stored
        if request.method == "POST" and not stored.created:
            return stored
        staged = request.staged
        moved = [] if staged is None else staged.moved
        if staged is not None:
            staged.used = True
        resource = load_stored(stored.content)
        if request.method == "PATCH":
            large_inline(kind, resource, self._inline)
        made = {binary.fhir_id for binary in moved}
        named = [
            found
            for found in named_binaries(kind, resource, self._base)
            if binary_named(found.attachment["url"], self._base) not in made
        ]
        if not named and not moved:
            return stored
        await self._writer.flush(session)
        for found in named:
            binary_id = binary_named(found.attachment["url"], self._base)
            row = await repository.resource(session, "Binary", str(binary_id))
            if row is None or row.organisation_id != caller.organisation_id:
                raise invalid(
                    f"{found.path}.url",
                    f"names Binary/{binary_id}, which is no Binary of your organisation",
                    "business-rule",
                )
        await self._create_binaries(session, caller, kind, stored.fhir_id, moved)
        return stored

    async def _create_binaries(
        self,
        session: AsyncSession,
        caller: Principal,
        kind: str,
        fhir_id: str,
        moved: list[Moved],
    ) -> None:
        """The Binaries of moved attachments, their securityContext the resource they are
        attached to; each audited as created, concerning that resource's Patient."""
        if not moved:
            return
        owner = await repository.resource(session, kind, fhir_id)
        patient = None if owner is None else owner.patient_id
        reference = f"{kind}/{fhir_id}"
        allowed = Decision(True, "own-organisation")
        for binary in moved:
            resource = {
                "resourceType": "Binary",
                "contentType": binary.content_type,
                "securityContext": {"reference": reference},
            }
            target = f"Binary/{binary.fhir_id}"
            event = audit_event(
                caller, Interaction.CREATE, target, allowed, {"attachment_of": reference}
            ).about(patient)
            await self._writer.create_for(
                session,
                caller,
                "Binary",
                binary.fhir_id,
                with_object(resource, binary.object_id),
                event,
            )

    async def discard(self, staged: Staged | None) -> None:
        """Delete what a write that failed put in storage."""
        if staged is not None:
            await self._delete(staged.objects)

    async def settle(self, staged: Staged | None) -> None:
        """After a write committed: delete the objects it replaced, or those it put but did
        not use."""
        if staged is not None:
            await self._delete(staged.replaced if staged.used else staged.objects)

    async def _delete(self, object_ids: list[str]) -> None:
        """Delete objects (crypto-shredding); one that cannot be deleted now is left, and
        logged by its id (it holds nobody's data that a resource names)."""
        for object_id in object_ids:
            try:
                await self.storage.delete(object_id)
            except Exception as error:  # the write's own outcome stands
                log.warning(
                    "stored object left behind",
                    object_id=object_id,
                    error_type=type(error).__name__,
                )


def _path(request: FhirRequest) -> list[str]:
    return [segment for segment in request.path.split("/") if segment]
