"""FHIR interactions on single resources: create, read, vread, update (also as create with a
client id), delete (a versioned tombstone) and instance history. Every interaction asks
`access` and lands in the audit trail, allowed or denied.

Resources are stored as JSON as received, with `id` and `meta.versionId`/`meta.lastUpdated`
set by the server; reads serve the stored JSON and never go through models.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from medicus.access.policy import AccessPolicy, Decision, Interaction
from medicus.audit.service import AuditEvent, AuditTrail, Outcome
from medicus.core.db import Database, utc_now
from medicus.core.errors import ApiError, ErrorDetail
from medicus.core.ids import new_id
from medicus.fhir import repository
from medicus.fhir.definitions import resource_types
from medicus.fhir.models import FhirResourceRow, FhirVersionRow
from medicus.fhir.search import query
from medicus.fhir.search.extract import extract
from medicus.fhir.search.query import SearchRequest
from medicus.iam.tokens import Principal

_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


@dataclass(frozen=True)
class SearchResult:
    resources: list[tuple[str, bytes]]
    has_more: bool
    total: int | None


@dataclass(frozen=True)
class StoredVersion:
    """A version as the routes render it."""

    resource_type: str
    fhir_id: str
    version: int
    last_updated: dt.datetime
    content: bytes | None
    created: bool = False

    @property
    def etag(self) -> str:
        return f'W/"{self.version}"'


def _fhir_time(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_resource(body: bytes, resource_type: str, fhir_id: str | None) -> dict[str, Any]:
    """The resource in a request body, checked to be a JSON object of the right type (and id)."""
    try:
        resource = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise ApiError(400, f"The body is not valid JSON ({error}).") from None
    if not isinstance(resource, dict):
        raise ApiError(400, "The body must be a FHIR resource (a JSON object).")
    if resource.get("resourceType") != resource_type:
        raise ApiError(
            422,
            f"The body is a {resource.get('resourceType')!r}, not a {resource_type}.",
            errors=[ErrorDetail("resourceType does not match the URL", expression="resourceType")],
            issue_type="invalid",
        )
    if fhir_id is not None and resource.get("id") != fhir_id:
        raise ApiError(400, "The resource's id must equal the id in the URL.", issue_type="invalid")
    return resource


class FhirService:
    def __init__(self, database: Database, access: AccessPolicy, audit: AuditTrail) -> None:
        self._database = database
        self._access = access
        self._audit = audit

    @staticmethod
    def check_type(resource_type: str) -> None:
        if resource_type not in resource_types():
            raise ApiError(
                404, f"{resource_type} is not a FHIR R4 resource type.", issue_type="not-supported"
            )

    @staticmethod
    def check_id(fhir_id: str) -> None:
        if not _ID.match(fhir_id):
            raise ApiError(400, f"'{fhir_id}' is not a valid FHIR id.", issue_type="invalid")

    async def create(self, caller: Principal, resource_type: str, body: bytes) -> StoredVersion:
        self.check_type(resource_type)
        resource = parse_resource(body, resource_type, None)
        await self._require(caller, Interaction.CREATE, resource_type, None, None)
        async with self._database.transaction() as session:
            return await self._insert(session, caller, resource_type, new_id(), resource)

    async def read(
        self, caller: Principal, resource_type: str, fhir_id: str, version: int | None = None
    ) -> StoredVersion:
        self.check_type(resource_type)
        self.check_id(fhir_id)
        interaction = Interaction.READ if version is None else Interaction.VREAD
        async with self._database.snapshot() as session:
            row = await repository.resource(session, resource_type, fhir_id)
            stored = (
                None
                if row is None
                else await repository.version(session, row.rid, version or row.version)
            )
        await self._require(caller, interaction, resource_type, fhir_id, row)
        if row is None or stored is None:
            raise ApiError(404, f"{resource_type}/{fhir_id} is not known here.")
        if stored.content is None:
            raise ApiError(410, f"{resource_type}/{fhir_id} was deleted.", issue_type="deleted")
        return _stored(row, stored)

    async def update(
        self,
        caller: Principal,
        resource_type: str,
        fhir_id: str,
        body: bytes,
        if_match: int | None,
    ) -> StoredVersion:
        self.check_type(resource_type)
        self.check_id(fhir_id)
        resource = parse_resource(body, resource_type, fhir_id)
        # The owner of a resource never changes, so asking before the write is safe.
        existing = await self._owner_row(resource_type, fhir_id)
        interaction = Interaction.CREATE if existing is None else Interaction.UPDATE
        await self._require(caller, interaction, resource_type, fhir_id, existing)
        async with self._database.transaction() as session:
            row = await repository.resource(session, resource_type, fhir_id, for_update=True)
            if row is None:
                return await self._insert(session, caller, resource_type, fhir_id, resource)
            _check_version(row, if_match)
            return await self._new_version(session, caller, row, resource, "update")

    async def delete(
        self, caller: Principal, resource_type: str, fhir_id: str, if_match: int | None
    ) -> None:
        self.check_type(resource_type)
        self.check_id(fhir_id)
        existing = await self._owner_row(resource_type, fhir_id)
        await self._require(caller, Interaction.DELETE, resource_type, fhir_id, existing)
        async with self._database.transaction() as session:
            row = await repository.resource(session, resource_type, fhir_id, for_update=True)
            if row is None or row.deleted:
                return
            _check_version(row, if_match)
            await self._new_version(session, caller, row, None, "delete")

    async def search(
        self,
        caller: Principal,
        request: SearchRequest,
        count: int,
        offset: int,
        total: bool,
    ) -> SearchResult:
        """Current resources matching `request` that the caller may see, one page of them;
        the caller's organisation is a condition of the query itself."""
        self.check_type(request.resource_type)
        await self._require(caller, Interaction.SEARCH, request.resource_type, None, None)
        statement = query.build(request, caller.organisation_id)
        async with self._database.snapshot() as session:
            rows = await repository.search(session, statement, count + 1, offset)
            matches = await repository.count(session, query.count_of(statement)) if total else None
        page = [(row.fhir_id, row.content.encode()) for row in rows[:count] if row.content]
        return SearchResult(page, has_more=len(rows) > count, total=matches)

    async def history_of_many(
        self,
        caller: Principal,
        resource_type: str | None,
        since: dt.datetime | None,
        count: int,
    ) -> list[tuple[FhirVersionRow, str]]:
        """Type history (`resource_type`) or system history (None) of what the caller may
        read: the caller's organisation and scopes are conditions of the query."""
        if resource_type is not None:
            self.check_type(resource_type)
            await self._require(caller, Interaction.HISTORY, resource_type, None, None)
            types: frozenset[str] = frozenset({resource_type})
        else:
            types = self._access.readable_types(caller, resource_types())
            await self._audit.record(
                _event(
                    caller,
                    Interaction.HISTORY,
                    "*",
                    None,
                    Decision(bool(types), "own-organisation"),
                )
            )
        async with self._database.snapshot() as session:
            rows = await repository.history(
                session, caller.organisation_id, sorted(types), since, count
            )
        return [(version, f"{kind}/{fhir_id}") for version, kind, fhir_id in rows]

    async def history(
        self, caller: Principal, resource_type: str, fhir_id: str, count: int
    ) -> list[tuple[FhirVersionRow, str]]:
        """The resource's versions, newest first, with the `fullUrl` path of each."""
        self.check_type(resource_type)
        self.check_id(fhir_id)
        async with self._database.snapshot() as session:
            row = await repository.resource(session, resource_type, fhir_id)
            rows = [] if row is None else await repository.versions(session, row.rid, count)
        await self._require(caller, Interaction.HISTORY, resource_type, fhir_id, row)
        if row is None:
            raise ApiError(404, f"{resource_type}/{fhir_id} is not known here.")
        return [(version, f"{resource_type}/{fhir_id}") for version in rows]

    async def _owner_row(self, resource_type: str, fhir_id: str) -> FhirResourceRow | None:
        async with self._database.snapshot() as session:
            return await repository.resource(session, resource_type, fhir_id)

    async def _insert(
        self,
        session: AsyncSession,
        caller: Principal,
        resource_type: str,
        fhir_id: str,
        resource: dict[str, Any],
    ) -> StoredVersion:
        now = utc_now()
        content = _with_meta(resource, fhir_id, 1, now)
        row = FhirResourceRow(
            resource_type=resource_type,
            fhir_id=fhir_id,
            version=1,
            last_updated=now,
            deleted=False,
            organisation_id=caller.organisation_id,
            content=content,
        )
        await repository.insert(session, row)
        version = FhirVersionRow(
            rid=row.rid, version=1, last_updated=now, method="create", content=content
        )
        await repository.add_version(session, version)
        index = extract(resource_type, resource)
        await repository.write_index(session, row.rid, resource_type, index)
        await self._audit.append(
            session,
            _event(
                caller,
                Interaction.CREATE,
                resource_type,
                fhir_id,
                Decision(True, "own-organisation"),
            ),
        )
        return StoredVersion(resource_type, fhir_id, 1, now, content.encode(), created=True)

    async def _new_version(
        self,
        session: AsyncSession,
        caller: Principal,
        row: FhirResourceRow,
        resource: dict[str, Any] | None,
        method: str,
    ) -> StoredVersion:
        now = utc_now()
        number = row.version + 1
        content = None if resource is None else _with_meta(resource, row.fhir_id, number, now)
        version = FhirVersionRow(
            rid=row.rid, version=number, last_updated=now, method=method, content=content
        )
        if not await repository.replace(session, row.rid, row.version, version, content is None):
            raise ApiError(
                409,
                "The resource was changed at the same time; read and retry.",
                issue_type="conflict",
            )
        await repository.add_version(session, version)
        await repository.write_index(
            session,
            row.rid,
            row.resource_type,
            None if resource is None else extract(row.resource_type, resource),
        )
        interaction = Interaction.DELETE if resource is None else Interaction.UPDATE
        await self._audit.append(
            session,
            _event(
                caller,
                interaction,
                row.resource_type,
                row.fhir_id,
                Decision(True, "own-organisation"),
            ),
        )
        return StoredVersion(
            row.resource_type, row.fhir_id, number, now, content.encode() if content else None
        )

    async def _require(
        self,
        caller: Principal,
        interaction: Interaction,
        resource_type: str,
        fhir_id: str | None,
        row: FhirResourceRow | None,
    ) -> None:
        """Ask `access`; a refusal is audited and answered with 403 — or with 404 where the
        resource belongs to another organisation, so that its existence is not revealed."""
        owner = None if row is None else row.organisation_id
        decision = self._access.decide(caller, interaction, resource_type, owner)
        if decision.allowed:
            if interaction in (Interaction.READ, Interaction.VREAD, Interaction.HISTORY):
                await self._audit.record(
                    _event(caller, interaction, resource_type, fhir_id, decision)
                )
            return
        await self._audit.record(_event(caller, interaction, resource_type, fhir_id, decision))
        if decision.reason == "other-organisation":
            raise ApiError(404, f"{resource_type}/{fhir_id} is not known here.")
        raise ApiError(403, f"Your access token does not allow {interaction} on {resource_type}.")


def _check_version(row: FhirResourceRow, if_match: int | None) -> None:
    if if_match is not None and if_match != row.version:
        raise ApiError(
            412, f"The resource is at version {row.version}, not {if_match}.", issue_type="conflict"
        )


def _with_meta(resource: dict[str, Any], fhir_id: str, version: int, now: dt.datetime) -> str:
    meta = dict(resource.get("meta") or {})
    meta["versionId"] = str(version)
    meta["lastUpdated"] = _fhir_time(now)
    return orjson.dumps({**resource, "id": fhir_id, "meta": meta}).decode()


def _stored(row: FhirResourceRow, version: FhirVersionRow) -> StoredVersion:
    assert version.content is not None
    return StoredVersion(
        row.resource_type,
        row.fhir_id,
        version.version,
        version.last_updated,
        version.content.encode(),
    )


def _event(
    caller: Principal,
    interaction: Interaction,
    resource_type: str,
    fhir_id: str | None,
    decision: Decision,
) -> AuditEvent:
    return AuditEvent(
        f"fhir.{interaction}",
        caller.actor,
        outcome=Outcome.SUCCESS if decision.allowed else Outcome.DENIED,
        organisation=caller.organisation_id,
        target=f"{resource_type}/{fhir_id}" if fhir_id else resource_type,
        detail={"reason": decision.reason},
    )
