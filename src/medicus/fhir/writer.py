"""Writes of FHIR resources inside a caller's transaction: create, update, patch, delete and
their conditional forms. Single interactions and transaction bundles share these, so a bundle
entry obeys exactly the rules of the same request on its own.

Each write asks `access` (through `Guard`), validates the resource, stores the new version and
its search index, and appends its audit event to the same transaction: work and audit entry
commit together or not at all.

One module over 500 lines on purpose: create, update, patch and delete, plain and conditional,
are the same few steps in different orders; kept together, each step is written once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import anyio.to_thread
import jsonpatch
from sqlalchemy.ext.asyncio import AsyncSession

from medicus.access.patients import PatientIndex
from medicus.access.policy import Interaction
from medicus.audit.events import NOT_KNOWN
from medicus.audit.service import AuditRecord, AuditTrail
from medicus.core.db import hold_lock, utc_now
from medicus.core.errors import ApiError, ErrorDetail
from medicus.core.ids import new_id
from medicus.fhir import fhirpath_patch, repository
from medicus.fhir.definitions import patient_compartment
from medicus.fhir.fhirpath_patch import FhirPathPatch
from medicus.fhir.guard import AccessDenied, Guard
from medicus.fhir.models import FhirResourceRow, StoredResource
from medicus.fhir.resources import (
    LARGE_BODY,
    StoredVersion,
    check_id,
    check_resource,
    check_type,
    load_stored,
    with_meta,
)
from medicus.fhir.search import query
from medicus.fhir.search.extract import IndexRows, extract
from medicus.fhir.search.request import SearchRequest
from medicus.fhir.search.template import Values
from medicus.iam.tokens import Principal

Conditions = Sequence[tuple[str, str]]


class Issue(Protocol):
    """A finding of validation (see `medicus.fhir.validation`)."""

    @property
    def severity(self) -> str: ...
    @property
    def code(self) -> str: ...
    @property
    def expression(self) -> str: ...
    @property
    def diagnostics(self) -> str: ...


Validator = Callable[[dict[str, Any]], Sequence[Issue]]


def require_valid(issues: Sequence[Issue]) -> None:
    """A resource with errors is a 422 whose issues name the offending elements."""
    errors = [issue for issue in issues if issue.severity in ("error", "fatal")]
    if errors:
        raise ApiError(
            422,
            f"The resource is not valid FHIR R4 ({len(errors)} problem(s)).",
            errors=[
                ErrorDetail(i.diagnostics, expression=i.expression, code=i.code) for i in errors
            ],
            issue_type=errors[0].code,
        )


def _conflict() -> ApiError:
    return ApiError(
        409, "The resource was changed at the same time; read and retry.", issue_type="conflict"
    )


def _check_version(row: FhirResourceRow, if_match: int | None) -> None:
    if if_match is not None and if_match != row.version:
        raise ApiError(
            412, f"The resource is at version {row.version}, not {if_match}.", issue_type="conflict"
        )


def _several(resource_type: str, conditions: Conditions) -> ApiError:
    criteria = "&".join(f"{k}={v}" for k, v in conditions)
    return ApiError(
        412,
        f"More than one {resource_type} matches {criteria}; the condition must select one.",
        issue_type="multiple-matches",
    )


def apply_patch(current: bytes, operations: Any) -> dict[str, Any]:
    """A resource changed by a FHIRPath Patch (`FhirPathPatch`) or a JSON Patch (RFC 6902); a
    patch that does not apply is a 422."""
    if isinstance(operations, FhirPathPatch):
        return fhirpath_patch.apply(operations.parameters, load_stored(current))
    if not isinstance(operations, list):
        raise ApiError(400, "A JSON Patch is an array of operations.", issue_type="invalid")
    try:
        patched = jsonpatch.apply_patch(load_stored(current), operations)
    except jsonpatch.JsonPatchTestFailed as failed:
        raise ApiError(
            422, f"A test of the patch failed: {failed}.", issue_type="processing"
        ) from None
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, TypeError) as wrong:
        # jsonpointer names the document it searched ("… not found in {…}"): the stored
        # resource, which an error message should not carry along.
        reason = str(wrong).split(" in {", 1)[0]
        raise ApiError(
            422, f"The patch does not apply: {reason}.", issue_type="processing"
        ) from None
    if not isinstance(patched, dict):
        raise ApiError(422, "The patch must leave a resource.", issue_type="processing")
    return patched


def id_prefix(organisation_id: str) -> str:
    """How the ids begin that an organisation's clients may assign (update as create): its
    id and a dot. Server ids (UUIDs) have no dot, so no client id takes one."""
    return f"{organisation_id}."


def assignable(caller: Principal, fhir_id: str) -> bool:
    """Whether the caller may create a resource with this id: one of its organisation's
    namespace (`id_prefix`), which no other organisation can take."""
    prefix = id_prefix(caller.organisation_id)
    return fhir_id.startswith(prefix) and len(fhir_id) > len(prefix)


class NotKnown(AccessDenied):
    """A change of a resource the caller cannot see (another organisation holds it, and does
    not share it), or of none at all: the two are answered alike, so that the answer does not
    tell which. The audit event records which — the refusal `other-organisation` naming the
    record, or `not-known` — and the trail shows the refused organisation no more than the
    answer did (`access.trail_reader`)."""


def patient_of(resource_type: str, fhir_id: str, index: IndexRows) -> str | None:
    """The id of the Patient record whose compartment a resource is in: a Patient's own id;
    otherwise the first Patient that one of its type's compartment parameters refers to, in
    the definition's order (an Observation's `subject` before its `performer`); None for
    resources that are no patient's data (Practitioner, Medication, Organization)."""
    if resource_type == "Patient":
        return fhir_id
    parameters = patient_compartment().get(resource_type, ())
    for parameter in parameters:
        for code, target_type, target_id in index.references:
            if code == parameter and target_type == "Patient":
                return target_id
    return None


def _condition_lock(caller: Principal, resource_type: str, conditions: Conditions) -> str:
    """Concurrent conditional writes with the same condition take turns on a lock of this
    name, so that `If-None-Exist` cannot create twice."""
    criteria = sorted(f"{k}={v}" for k, v in conditions)
    return "\n".join(["fhir.condition", caller.organisation_id, resource_type, *criteria])


_QUEUE = "medicus.fhir.queued_writes"
_TARGETS = "medicus.fhir.looked_up_targets"


@dataclass(frozen=True)
class _Creation:
    row: dict[str, Any]
    index: IndexRows
    event: AuditRecord


@dataclass(frozen=True)
class _Change:
    change: repository.Change
    event: AuditRecord


def _queue(session: AsyncSession) -> list[_Creation | _Change]:
    queued: list[_Creation | _Change] = session.info.setdefault(_QUEUE, [])
    return queued


class ResourceWriter:
    def __init__(
        self, guard: Guard, audit: AuditTrail, validate: Validator, patients: PatientIndex
    ) -> None:
        self._guard = guard
        self._audit = audit
        self._validate = validate
        self._patients = patients

    async def find(
        self,
        session: AsyncSession,
        caller: Principal,
        resource_type: str,
        conditions: Conditions,
        limit: int = 2,
    ) -> list[StoredResource]:
        """Current resources of the caller's organisation that match a condition (the query
        part of a conditional interaction); an empty or unknown condition is a 400."""
        check_type(resource_type)
        if not conditions:
            raise ApiError(
                400, "A conditional interaction needs search parameters.", issue_type="invalid"
            )
        await self._audit.append(
            session, self._guard.check(caller, Interaction.SEARCH, resource_type, None, None)
        )
        await self.flush(session)
        await hold_lock(session, _condition_lock(caller, resource_type, conditions))
        values = Values()
        request = SearchRequest(resource_type, conditions)
        statement = query.build(values, request, self._guard.viewpoint(caller, sharing=False))
        return await repository.matching(session, values, statement, limit)

    async def create(
        self,
        session: AsyncSession,
        caller: Principal,
        resource_type: str,
        resource: dict[str, Any],
        if_none_exist: Conditions | None = None,
        fhir_id: str | None = None,
    ) -> StoredVersion:
        """Create with a server id (new, or `fhir_id` chosen beforehand by a transaction);
        with `if_none_exist`, return the one match instead."""
        check_type(resource_type)
        check_resource(resource, resource_type, resource.get("id"))
        if if_none_exist is not None:
            existing = await self.existing(session, caller, resource_type, if_none_exist)
            if existing is not None:
                return existing
        return await self._insert(session, caller, resource_type, fhir_id or new_id(), resource)

    async def create_for(
        self,
        session: AsyncSession,
        caller: Principal,
        resource_type: str,
        fhir_id: str,
        resource: dict[str, Any],
        event: AuditRecord,
    ) -> StoredVersion:
        """Create a resource that an allowed write of another one makes (the Binary of an
        attachment moved to storage): that write's allowance, `event`, is this one's."""
        return await self._insert(session, caller, resource_type, fhir_id, resource, event)

    async def existing(
        self, session: AsyncSession, caller: Principal, resource_type: str, conditions: Conditions
    ) -> StoredVersion | None:
        """The one resource matching an `If-None-Exist` condition (None: no match; several
        matches are a 412)."""
        matches = await self.find(session, caller, resource_type, conditions)
        if len(matches) > 1:
            raise _several(resource_type, conditions)
        return _current(matches[0]) if matches else None

    async def update(
        self,
        session: AsyncSession,
        caller: Principal,
        resource_type: str,
        fhir_id: str,
        resource: dict[str, Any],
        if_match: int | None = None,
    ) -> StoredVersion:
        """Update, or create with the client's id if there is no such resource and the id is
        in the caller organisation's namespace (`assignable`). Any other id that the caller
        cannot see — none, or another organisation's — is refused alike (`NotKnown`)."""
        check_type(resource_type)
        check_id(fhir_id)
        check_resource(resource, resource_type, fhir_id)
        row = await self._target(session, resource_type, fhir_id)
        if row is None and assignable(caller, fhir_id):
            return await self._insert(session, caller, resource_type, fhir_id, resource)
        event = await self._check_change(
            session, caller, Interaction.UPDATE, resource_type, fhir_id, row
        )
        assert row is not None  # `_check_change` refuses a change of no resource
        _check_version(row, if_match)
        return await self._new_version(session, event, row, resource, "update")

    async def conditional_update(
        self,
        session: AsyncSession,
        caller: Principal,
        resource_type: str,
        conditions: Conditions,
        resource: dict[str, Any],
        if_match: int | None = None,
    ) -> StoredVersion:
        """Update the one match of `conditions`; with none, create (with the body's id, if it
        has one); several matches are a 412."""
        check_resource(resource, resource_type, None)
        matches = await self.find(session, caller, resource_type, conditions)
        if len(matches) > 1:
            raise _several(resource_type, conditions)
        if not matches:
            if "id" in resource:
                return await self.update(
                    session, caller, resource_type, str(resource["id"]), resource
                )
            return await self._insert(session, caller, resource_type, new_id(), resource)
        if resource.get("id", matches[0].fhir_id) != matches[0].fhir_id:
            raise ApiError(
                400,
                "The body's id differs from the resource the condition selects.",
                issue_type="invalid",
            )
        with_id = {**resource, "id": matches[0].fhir_id}
        return await self.update(session, caller, resource_type, with_id["id"], with_id, if_match)

    async def patch(
        self,
        session: AsyncSession,
        caller: Principal,
        resource_type: str,
        fhir_id: str,
        operations: Any,
        if_match: int | None = None,
    ) -> StoredVersion:
        check_type(resource_type)
        check_id(fhir_id)
        row = await self._target(session, resource_type, fhir_id)
        event = await self._check_change(
            session, caller, Interaction.UPDATE, resource_type, fhir_id, row
        )
        assert row is not None  # `_check_change` refuses a change of no resource
        if row.content is None:
            raise ApiError(
                410, f"{resource_type}/{fhir_id} was deleted: there is nothing to patch."
            )
        _check_version(row, if_match)
        patched = apply_patch(row.content.encode(), operations)
        if patched.get("resourceType") != resource_type or patched.get("id") != fhir_id:
            raise ApiError(
                422, "A patch must not change resourceType or id.", issue_type="processing"
            )
        return await self._new_version(session, event, row, patched, "patch")

    async def conditional_patch(
        self,
        session: AsyncSession,
        caller: Principal,
        resource_type: str,
        conditions: Conditions,
        operations: Any,
        if_match: int | None = None,
    ) -> StoredVersion:
        matches = await self.find(session, caller, resource_type, conditions)
        if len(matches) != 1:
            if matches:
                raise _several(resource_type, conditions)
            raise ApiError(404, f"No {resource_type} matches the condition.")
        return await self.patch(
            session, caller, resource_type, matches[0].fhir_id, operations, if_match
        )

    async def delete(
        self,
        session: AsyncSession,
        caller: Principal,
        resource_type: str,
        fhir_id: str,
        if_match: int | None = None,
    ) -> StoredVersion | None:
        """Delete as a versioned tombstone; deleting what is gone, never was, or is not the
        caller's to see is no error (204 alike), but the last two are audited as refused."""
        check_type(resource_type)
        check_id(fhir_id)
        row = await self._target(session, resource_type, fhir_id)
        try:
            event = await self._check_change(
                session, caller, Interaction.DELETE, resource_type, fhir_id, row
            )
        except NotKnown as unknown:
            await self._audit.append(session, unknown.event)
            return None
        assert row is not None  # `_check_change` refuses a change of no resource
        if row.deleted:
            return None
        _check_version(row, if_match)
        return await self._new_version(session, event, row, None, "delete")

    async def conditional_delete(
        self,
        session: AsyncSession,
        caller: Principal,
        resource_type: str,
        conditions: Conditions,
    ) -> StoredVersion | None:
        """Delete the one match of `conditions` (none: nothing to do; several: 412)."""
        matches = await self.find(session, caller, resource_type, conditions)
        if len(matches) > 1:
            raise _several(resource_type, conditions)
        if not matches:
            return None
        return await self.delete(session, caller, resource_type, matches[0].fhir_id)

    async def look_up(self, session: AsyncSession, keys: Sequence[tuple[str, str]]) -> None:
        """Look up the stored resources that updates, patches and deletes of this
        transaction will change (type, id), in one query instead of one per entry; each
        write of one of them takes its row from here (`_target`)."""
        await self.flush(session)
        found = await repository.targets(session, keys)
        looked_up = session.info.setdefault(_TARGETS, {})
        looked_up.update({key: found.get(key) for key in keys})

    async def _target(
        self, session: AsyncSession, resource_type: str, fhir_id: str
    ) -> FhirResourceRow | None:
        """The stored resource a write changes (None: there is none), locked on PostgreSQL:
        as `look_up` found it, or else looked up now, after writing what is queued (the
        lookup must see the resources this transaction created)."""
        looked_up: dict[tuple[str, str], FhirResourceRow | None] = session.info.get(_TARGETS, {})
        key = (resource_type, fhir_id)
        if key in looked_up:
            return looked_up.pop(key)
        await self.flush(session)
        return await repository.resource(session, resource_type, fhir_id, for_update=True)

    async def _check_change(
        self,
        session: AsyncSession,
        caller: Principal,
        interaction: Interaction,
        resource_type: str,
        fhir_id: str,
        row: FhirResourceRow | None,
    ) -> AuditRecord:
        """Ask `access` whether the caller may change the stored resource `row` (None: there
        is none). Whether the caller may read it although another organisation holds it is
        asked only then: such a change is refused as read-only (403). A change of data the
        caller cannot see, and of no resource at all, raise `NotKnown` (404 alike)."""
        target = f"{resource_type}/{fhir_id}"
        unknown = f"{target} is not known here."
        if interaction is Interaction.UPDATE:
            unknown += (
                f" A client creates resources with ids of its own only in its organisation's"
                f" namespace: ids beginning with {id_prefix(caller.organisation_id)!r}."
            )
        if row is None:
            event = self._guard.check(caller, interaction, resource_type, fhir_id, None)
            raise NotKnown(event.refused(NOT_KNOWN), ApiError(404, unknown))
        elsewhere = (False, False)
        if row.organisation_id != caller.organisation_id:
            elsewhere = await repository.readable_elsewhere(
                session, row.patient_id, self._guard.viewpoint(caller)
            )
        try:
            return self._guard.check(
                caller,
                interaction,
                resource_type,
                fhir_id,
                row.organisation_id,
                *elsewhere,
                patient_id=row.patient_id,
            )
        except AccessDenied as denied:
            if denied.event.detail.get("reason") == "other-organisation":
                raise NotKnown(denied.event, ApiError(404, unknown)) from None
            raise

    async def _insert(
        self,
        session: AsyncSession,
        caller: Principal,
        resource_type: str,
        fhir_id: str,
        resource: dict[str, Any],
        allowed: AuditRecord | None = None,
    ) -> StoredVersion:
        """Queue a new resource (`allowed`: the allowance, if asked already); `flush` writes
        all queued ones together, which turns a transaction bundle's hundreds of statements
        into a few."""
        event = allowed or self._guard.check(
            caller, Interaction.CREATE, resource_type, fhir_id, None
        )
        now = utc_now()
        content = with_meta(resource, fhir_id, 1, now)
        index = await self._checked_index(resource_type, resource, content)
        patient_id = patient_of(resource_type, fhir_id, index)
        row = {
            "resource_type": resource_type,
            "fhir_id": fhir_id,
            "version": 1,
            "last_updated": now,
            "deleted": False,
            "organisation_id": caller.organisation_id,
            "content": content,
            "patient_id": patient_id,
        }
        _queue(session).append(_Creation(row, index, event.about(patient_id)))
        await self._patients.resource_written(
            session,
            resource_type,
            fhir_id,
            caller.organisation_id,
            patient_id,
            resource,
            created=True,
            event=event,
        )
        return StoredVersion(resource_type, fhir_id, 1, now, content.encode(), created=True)

    async def _checked_index(
        self, resource_type: str, resource: dict[str, Any], content: str
    ) -> IndexRows:
        """Validate `resource` (422 if it is not valid) and extract its index rows; for a
        large one (`content` its JSON) in a worker thread, where this work (tens of
        milliseconds per megabyte) does not hold up other requests."""

        def work() -> IndexRows:
            require_valid(self._validate(resource))
            return extract(resource_type, resource)

        if len(content) < LARGE_BODY:
            return work()
        return await anyio.to_thread.run_sync(work)

    async def flush(self, session: AsyncSession) -> None:
        """Write the queued writes: new resources with their first versions and index rows
        (on PostgreSQL in one statement), then the new versions of stored ones (a statement
        per table for all), then the audit entries in the order of the writes."""
        queued: list[_Creation | _Change] = session.info.pop(_QUEUE, [])
        if not queued:
            return
        creations = [q for q in queued if isinstance(q, _Creation)]
        changes = [q.change for q in queued if isinstance(q, _Change)]
        if creations:
            rows = [c.row for c in creations]
            await repository.insert_new(
                session,
                rows,
                lambda rids: [
                    repository.new_versions(rids, rows),
                    *repository.index_batches(
                        rids, [(c.row["resource_type"], c.index) for c in creations]
                    ),
                ],
            )
        if changes and not await repository.replace(session, changes):
            raise _conflict()
        await self._audit.append(session, *(q.event for q in queued))

    async def _new_version(
        self,
        session: AsyncSession,
        event: AuditRecord,
        row: FhirResourceRow,
        resource: dict[str, Any] | None,
        method: str,
    ) -> StoredVersion:
        """Queue a new version of a stored resource (None: a deletion); `flush` writes it
        together with the transaction's other writes."""
        now = utc_now()
        number = row.version + 1
        content = None if resource is None else with_meta(resource, row.fhir_id, number, now)
        index = None
        if resource is not None and content is not None:
            index = await self._checked_index(row.resource_type, resource, content)
        # A deleted resource stays in its patient's compartment: its history is that patient's.
        patient_id = (
            row.patient_id if index is None else patient_of(row.resource_type, row.fhir_id, index)
        )
        change = repository.Change(
            row.rid, row.resource_type, row.version, number, now, method, content, patient_id, index
        )
        await self._patients.resource_written(
            session,
            row.resource_type,
            row.fhir_id,
            row.organisation_id,
            patient_id,
            resource,
            created=False,
            event=event,
        )
        _queue(session).append(_Change(change, event.about(patient_id)))
        return StoredVersion(
            row.resource_type, row.fhir_id, number, now, content.encode() if content else None
        )


def _current(row: StoredResource) -> StoredVersion:
    """The stored current version of a row that a conditional create found."""
    assert row.content is not None
    return StoredVersion(
        row.resource_type, row.fhir_id, row.version, row.last_updated, row.content.encode()
    )
