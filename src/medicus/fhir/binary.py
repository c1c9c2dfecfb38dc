"""Binary resources whose bytes are kept in storage (`medicus.storage`), not in the database,
and who may read them.

A stored Binary's JSON has no `data`: an extension on `_data` names the object that holds
its bytes (`STORED_OBJECT`, its `valueString` the object's id). Objects are kept with the
owner `Binary/{id}` and the Binary's organisation, and a pointer is followed only to an
object whose owner and organisation are the Binary's: no client can point a Binary of its
own at someone else's bytes.

Reading asks `access` as FHIR R4 intends with `Binary.securityContext`: a Binary whose
securityContext names a resource that the Binary's holder holds too is read exactly as that
resource would be (its type's scopes; the holder's staff; consent sharing and break-glass;
audited with its Patient); any other Binary as a resource of its holder alone (a Binary is in
no patient compartment). Either way the audit event is `fhir.read` (or `fhir.vread`) of
`Binary/{id}`, and another organisation's Binary is a 404, as if it did not exist."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, replace
from typing import Any, NoReturn

from medicus.access.policy import Interaction
from medicus.audit.events import NOT_KNOWN
from medicus.audit.service import AuditRecord, AuditTrail
from medicus.core.db import Database
from medicus.core.errors import ApiError
from medicus.fhir import repository
from medicus.fhir.definitions import resource_types
from medicus.fhir.guard import AccessDenied, Guard
from medicus.fhir.models import LARGEST_VERSION
from medicus.fhir.resources import StoredVersion, check_id, dump_json, load_stored
from medicus.iam.tokens import Principal
from medicus.storage.service import ObjectStore, StoredObject

STORED_OBJECT = "https://medicus.example/fhir/StructureDefinition/stored-object"
"""The extension (on `Binary._data`) naming the stored object that holds a Binary's bytes."""
DATA_URL = "https://medicus.example/fhir/StructureDefinition/data-url"
"""The extension (on `Binary._data`) of a JSON answer without `data`: where the bytes are."""
JSON_DATA_BYTES = 1024 * 1024
"""Bytes up to which a Binary read as FHIR JSON carries its data base64-encoded; a larger
one is answered without `data`, and its bytes are read in their own type."""

_LOCAL_REFERENCE = re.compile(r"^([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/[0-9]+)?$")


def object_of(resource: dict[str, Any]) -> str | None:
    """The id of the stored object that a Binary's JSON names, None if it names none."""
    extras = resource.get("_data")
    found = extras.get("extension") if isinstance(extras, dict) else None
    for extension in found if isinstance(found, list) else ():
        if isinstance(extension, dict) and extension.get("url") == STORED_OBJECT:
            value = extension.get("valueString")
            return value if isinstance(value, str) else None
    return None


def with_object(resource: dict[str, Any], object_id: str | None) -> dict[str, Any]:
    """A Binary's JSON naming `object_id` as its bytes (None: no object) instead of the
    object it named, without `data`; other extensions of `_data` are kept."""
    changed = {key: value for key, value in resource.items() if key not in ("data", "_data")}
    extras = resource.get("_data")
    extras = dict(extras) if isinstance(extras, dict) else {}
    given = extras.get("extension")
    kept = [
        extension
        for extension in (given if isinstance(given, list) else [])
        if not (isinstance(extension, dict) and extension.get("url") == STORED_OBJECT)
    ]
    if object_id is not None:
        kept.append({"url": STORED_OBJECT, "valueString": object_id})
    if kept:
        extras["extension"] = kept
    else:
        extras.pop("extension", None)
    if extras:
        changed["_data"] = extras
    return changed


def local_reference(reference: Any, base: str) -> tuple[str, str] | None:
    """The (type, id) a reference names on this server (`Type/id`, with a version or as an
    absolute URL of the hub), None for any other reference."""
    if not isinstance(reference, dict) or not isinstance(reference.get("reference"), str):
        return None
    text = reference["reference"].removeprefix(f"{base}/")
    found = _LOCAL_REFERENCE.match(text)
    if found is None or found.group(1) not in resource_types():
        return None
    return found.group(1), found.group(2)


@dataclass(frozen=True)
class OpenedBinary:
    """A Binary that the caller may read (audited), for an answer in its own type: the
    version read, its content type, and its bytes: a stored object or inline `data` (a
    Binary written before its bytes went to storage), or neither (a Binary without data)."""

    version: StoredVersion
    content_type: str
    stored: StoredObject | None
    inline: bytes | None


def unknown(fhir_id: str) -> ApiError:
    return ApiError(404, f"Binary/{fhir_id} is not known here.")


class BinaryReader:
    def __init__(
        self, database: Database, guard: Guard, audit: AuditTrail, storage: ObjectStore, base: str
    ) -> None:
        self._database = database
        self._guard = guard
        self._audit = audit
        self._storage = storage
        self._base = base

    async def read(
        self, caller: Principal, fhir_id: str, version: int | None = None
    ) -> StoredVersion:
        """Read or vread as FHIR JSON, with `data` filled in from storage up to
        `JSON_DATA_BYTES`; a larger Binary is answered without it and with `DATA_URL`."""
        found, content = await self._allowed(caller, fhir_id, version)
        resource = load_stored(content)
        stored = await self.object(fhir_id, found.owner, resource)
        if stored is not None and 0 < stored.size <= JSON_DATA_BYTES:
            data = await self._storage.read_range(stored.id, 0, stored.size)
            resource["data"] = base64.b64encode(data).decode()
        elif stored is not None and stored.size > JSON_DATA_BYTES:
            resource = _pointing_to(resource, f"{self._base}/Binary/{fhir_id}")
        return StoredVersion(
            "Binary", fhir_id, found.version, found.last_updated, dump_json(resource)
        )

    async def open(self, caller: Principal, fhir_id: str) -> OpenedBinary:
        """The current version for an answer in its own type (410 if its bytes are gone)."""
        found, content = await self._allowed(caller, fhir_id, None)
        resource = load_stored(content)
        version = StoredVersion("Binary", fhir_id, found.version, found.last_updated, None)
        content_type = str(resource.get("contentType") or "application/octet-stream")
        if isinstance(resource.get("data"), str):
            inline = base64.b64decode(resource["data"])
            return OpenedBinary(version, content_type, None, inline)
        stored = await self.object(fhir_id, found.owner, resource)
        if stored is None and object_of(resource) is not None:
            raise ApiError(
                410, f"The bytes of Binary/{fhir_id} were deleted.", issue_type="deleted"
            )
        return OpenedBinary(version, content_type, stored, None)

    async def object(
        self, fhir_id: str, organisation_id: str, resource: dict[str, Any]
    ) -> StoredObject | None:
        """The stored object holding the Binary's bytes: None if it names none, if the
        object was deleted, or if the object is not this Binary's."""
        object_id = object_of(resource)
        stored = None if object_id is None else await self._storage.describe(object_id)
        if stored is None or stored.owner != f"Binary/{fhir_id}":
            return None
        return stored if stored.organisation_id == organisation_id else None

    async def _allowed(
        self, caller: Principal, fhir_id: str, version: int | None
    ) -> tuple[repository.LookedUp, str]:
        """The Binary (current version or `version`) and its content, if the caller may
        read it: the allowance is recorded; a refusal is recorded and raised (404 for
        another organisation's Binary), as is a deleted one (410)."""
        check_id(fhir_id)
        interaction = Interaction.READ if version is None else Interaction.VREAD
        found = await self._looked_up("Binary", fhir_id, caller, version)
        if found is None:
            await self._not_known(caller, interaction, fhir_id)
        event = await self._decide(caller, interaction, fhir_id, found)
        await self._audit.record(event)
        if found.content is None:
            raise ApiError(410, f"Binary/{fhir_id} was deleted.", issue_type="deleted")
        return found, found.content

    async def _decide(
        self,
        caller: Principal,
        interaction: Interaction,
        fhir_id: str,
        found: repository.LookedUp,
    ) -> AuditRecord:
        """Ask `access` as for the Binary's securityContext, if its holder holds that
        resource, else as for the Binary itself; the event names the Binary."""
        context = None
        if found.content is not None:
            context = local_reference(load_stored(found.content).get("securityContext"), self._base)
        proxy = None if context is None else await self._looked_up(*context, caller, None)
        if context is None or proxy is None or proxy.owner != found.owner:
            proxy, context = found, ("Binary", fhir_id)
        try:
            event = self._guard.check(
                caller,
                interaction,
                *context,
                proxy.owner,
                proxy.shared,
                proxy.opened,
                proxy.patient_id,
            )
        except AccessDenied as denied:
            await self._audit.record(_as_binary(denied.event, fhir_id, context))
            if denied.error.status == 404:
                raise unknown(fhir_id) from None
            raise denied.error from None
        return _as_binary(event, fhir_id, context)

    async def _looked_up(
        self, resource_type: str, fhir_id: str, caller: Principal, version: int | None
    ) -> repository.LookedUp | None:
        if version is not None and version > LARGEST_VERSION:
            return None
        viewpoint = self._guard.viewpoint(caller)
        row = await self._database.fetch_one(
            *repository.lookup(resource_type, fhir_id, version, viewpoint)
        )
        return None if row is None else repository.LookedUp.of(row)

    async def _not_known(
        self, caller: Principal, interaction: Interaction, fhir_id: str
    ) -> NoReturn:
        """A 404 alike for no such Binary and another organisation's (see `FhirService`)."""
        try:
            event = self._guard.check(caller, interaction, "Binary", fhir_id, None)
        except AccessDenied as denied:
            await self._audit.record(denied.event)
            raise denied.error from None
        await self._audit.record(event.refused(NOT_KNOWN))
        raise unknown(fhir_id)


def _as_binary(event: AuditRecord, fhir_id: str, context: tuple[str, str]) -> AuditRecord:
    """The event of a decision about a Binary, taken as for `context` (the Binary itself, or
    its securityContext, which the event then names)."""
    if context == ("Binary", fhir_id):
        return event
    return replace(event, target=f"Binary/{fhir_id}").noting(securityContext="/".join(context))


def _pointing_to(resource: dict[str, Any], url: str) -> dict[str, Any]:
    """A Binary's JSON without data, saying (`DATA_URL`) where its bytes are read."""
    extras = dict(resource.get("_data") or {})
    extras["extension"] = [*extras.get("extension", []), {"url": DATA_URL, "valueUrl": url}]
    return {**resource, "_data": extras}
