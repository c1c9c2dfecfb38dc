"""FHIR interactions: reads (read, vread, history, search) here; writes through
`ResourceWriter` in a transaction of their own. Every interaction asks `access` and lands in
the audit trail, allowed or denied.

Reads serve the stored JSON and never go through models.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import NoReturn, TypeVar
from urllib.parse import urlencode

import orjson
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from medicus.access.policy import Decision, Interaction, Viewpoint
from medicus.audit.events import NOT_KNOWN
from medicus.audit.service import AuditRecord, AuditTrail, Outcome
from medicus.core.crypto import SecretBox
from medicus.core.db import Database
from medicus.core.errors import ApiError
from medicus.fhir import repository, search_repository
from medicus.fhir.definitions import resource_types
from medicus.fhir.guard import AccessDenied, Guard, audit_event
from medicus.fhir.models import LARGEST_VERSION, StoredResource, VersionRow
from medicus.fhir.resources import StoredVersion, check_id, check_type
from medicus.fhir.search import paging, planning, sorting
from medicus.fhir.search.extract import position
from medicus.fhir.search.geo import distance
from medicus.fhir.search.request import SearchRequest
from medicus.fhir.writer import ResourceWriter
from medicus.iam.tokens import Principal

T = TypeVar("T")


@dataclass(frozen=True)
class SearchResult:
    resources: list[tuple[str, bytes]]
    next_cursor: str | None  # None: the last page
    total: int | None
    included: tuple[tuple[str, str, bytes], ...] = ()
    distances: dict[str, float] = field(default_factory=dict)
    """Metres from the search's `near` point to each match with a position, by id."""
    previous_cursor: str | None = None  # None: no page before, or offset paging


class FhirService:
    def __init__(
        self,
        database: Database,
        guard: Guard,
        audit: AuditTrail,
        writer: ResourceWriter,
        cursors: SecretBox,
        pair_rows: search_repository.PairRows,
    ) -> None:
        self._database = database
        self.pair_rows = pair_rows
        self._cursors = cursors
        self._guard = guard
        self._audit = audit
        self.writer = writer

    check_type = staticmethod(check_type)

    @asynccontextmanager
    async def writing(self) -> AsyncIterator[AsyncSession]:
        """A writing transaction for `ResourceWriter` work. A refusal of `access` rolls the
        work back but its audit entry is still recorded; two writers creating the same id
        at once get a 409 instead of a database error."""
        try:
            async with self._database.transaction() as session:
                yield session
                await self.writer.flush(session)
        except AccessDenied as denied:
            await self._audit.record(denied.event)
            raise denied.error from None
        except IntegrityError:
            raise ApiError(
                409,
                "The resource was created at the same time; read and retry.",
                issue_type="conflict",
            ) from None

    async def write(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """Run `work` (writer calls) in one writing transaction."""
        async with self.writing() as session:
            return await work(session)

    async def read(
        self, caller: Principal, resource_type: str, fhir_id: str, version: int | None = None
    ) -> StoredVersion:
        """Read (current version) or vread: one lookup, then `access` on its owner."""
        check_type(resource_type)
        check_id(fhir_id)
        interaction = Interaction.READ if version is None else Interaction.VREAD
        row = (
            None  # no such version, and not a number the database would take
            if version is not None and version > LARGEST_VERSION
            else await self._database.fetch_one(
                *repository.lookup(resource_type, fhir_id, version, self._guard.viewpoint(caller))
            )
        )
        if row is None:
            await self._not_known(caller, interaction, resource_type, fhir_id)
        found = repository.LookedUp.of(row)
        await self._audit.record(
            await self._allowed(
                caller,
                interaction,
                resource_type,
                fhir_id,
                found.owner,
                found.shared,
                found.opened,
                patient=found.patient_id,
            )
        )
        if found.content is None:
            raise ApiError(410, f"{resource_type}/{fhir_id} was deleted.", issue_type="deleted")
        return StoredVersion(
            resource_type, fhir_id, found.version, found.last_updated, found.content.encode()
        )

    async def search(
        self,
        caller: Principal,
        request: SearchRequest,
        count: int,
        offset: int,
        total: bool,
    ) -> SearchResult:
        """Current resources matching `request` that the caller may see, one page of them;
        the caller's organisation is a condition of the query itself. Chains, `_has` and
        `_include` only look into the types the caller's scopes may read; what `_include`
        adds is audited as a read of each included type. The audit entries name the Patient
        records whose data the page shows."""
        self.check_type(request.resource_type)
        event = await self._allowed(caller, Interaction.SEARCH, request.resource_type, None, None)
        event = event.noting(query=urlencode(request.parameters))
        try:
            request, keys, found = await self._page(caller, request, count, offset, total)
        except ApiError:
            await self._audit.record(replace(event, outcome=Outcome.FAILED))
            raise
        organisation = caller.organisation_id
        await self._audit.record(
            event.about(*(row.patient_id for row in found.rows)),
            *self.included_events(caller, found.included),
        )
        page = [(row.fhir_id, row.content.encode()) for row in found.rows if row.content]
        extra = tuple(
            (row.resource_type, row.fhir_id, row.content.encode())
            for row in found.included
            if row.content
        )
        following = preceding = None
        if found.next_values is not None:
            following = paging.cursor(request, organisation, keys, found.next_values, self._cursors)
        if found.previous_values is not None:
            preceding = paging.cursor(
                request, organisation, keys, found.previous_values, self._cursors, backward=True
            )
        centre = sorting.near_point(request)
        distances = {} if centre is None else _distances(page, centre)
        return SearchResult(page, following, found.total, extra, distances, preceding)

    async def _page(
        self, caller: Principal, request: SearchRequest, count: int, offset: int, total: bool
    ) -> tuple[SearchRequest, list[sorting.SortKey], search_repository.SearchPage]:
        """The search as run (limited to the types the caller's scopes may read), its sort
        keys, and one page of it."""
        readable = self._guard.readable_types(caller, resource_types())
        request = SearchRequest(
            request.resource_type,
            request.parameters,
            request.lenient,
            None if readable == resource_types() else readable,
        )
        pairs = await self.pair_rows.complete()
        keys = sorting.sort_keys(request, pairs)
        position = paging.start(request, caller.organisation_id, keys, self._cursors)
        per_execution = planning.planned_per_execution(request)
        async with self._database.reading(per_execution) as connection:
            found = await search_repository.search_page(
                connection,
                request,
                self._guard.viewpoint(caller),
                count,
                offset,
                total,
                keys,
                position,
                pairs,
            )
        return request, keys, found

    async def history_of_many(
        self,
        caller: Principal,
        resource_type: str | None,
        since: dt.datetime | None,
        count: int,
    ) -> list[tuple[VersionRow, str]]:
        """Type history (`resource_type`) or system history (None) of what the caller may
        read: the caller's organisation and scopes are conditions of the query."""
        if resource_type is not None:
            check_type(resource_type)
            event = await self._allowed(caller, Interaction.HISTORY, resource_type, None, None)
            types: frozenset[str] = frozenset({resource_type})
        else:
            types = self._guard.readable_types(caller, resource_types())
            decision = Decision(bool(types), "own-organisation")
            event = audit_event(caller, Interaction.HISTORY, "*", decision)
        async with self._database.snapshot() as session:
            rows = await repository.history(
                session, self._guard.viewpoint(caller), sorted(types), since, count
            )
        await self._audit.record(event.about(*(patient for *_, patient in rows)))
        return [(version, f"{kind}/{fhir_id}") for version, kind, fhir_id, _ in rows]

    async def history(
        self, caller: Principal, resource_type: str, fhir_id: str, count: int
    ) -> list[tuple[VersionRow, str]]:
        """The resource's versions, newest first, with the `fullUrl` path of each."""
        check_type(resource_type)
        check_id(fhir_id)
        async with self._database.snapshot() as session:
            row = await repository.resource(session, resource_type, fhir_id)
            rows = [] if row is None else await repository.versions(session, row.rid, count)
            # Only another organisation's resource needs the question asked.
            other = None if row is None or row.organisation_id == caller.organisation_id else row
            elsewhere = await repository.readable_elsewhere(
                session, None if other is None else other.patient_id, self._guard.viewpoint(caller)
            )
        if row is None:
            await self._not_known(caller, Interaction.HISTORY, resource_type, fhir_id)
        await self._audit.record(
            await self._allowed(
                caller,
                Interaction.HISTORY,
                resource_type,
                fhir_id,
                row.organisation_id,
                *elsewhere,
                patient=row.patient_id,
            )
        )
        return [(version, f"{resource_type}/{fhir_id}") for version in rows]

    async def allowed(
        self, caller: Principal, interaction: Interaction, resource_type: str, fhir_id: str
    ) -> AuditRecord:
        """Ask `access` about an interaction with an existing resource that has been read:
        a refusal is recorded and raised; the allowance is returned, for the caller to record
        with the Patient records the interaction showed."""
        return await self._allowed(caller, interaction, resource_type, fhir_id, None)

    async def record(self, *events: AuditRecord) -> None:
        await self._audit.record(*events)

    @staticmethod
    def included_events(
        caller: Principal, included: Sequence[StoredResource], via: str = "_include"
    ) -> list[AuditRecord]:
        """The audit events of the resources a search or operation added beyond its matches:
        a read of each of their types, naming the Patient records whose data they are (they
        were found by key, within what the caller may read)."""
        decision = Decision(True, "own-organisation")
        patients: dict[str, set[str | None]] = {}
        for row in included:
            patients.setdefault(row.resource_type, set()).add(row.patient_id)
        return [
            audit_event(caller, Interaction.READ, kind, decision, {"via": via}).about(*concerned)
            for kind, concerned in sorted(patients.items())
        ]

    def viewpoint(self, caller: Principal) -> Viewpoint:
        return self._guard.viewpoint(caller)

    def readable_types(self, caller: Principal, types: frozenset[str]) -> frozenset[str]:
        return self._guard.readable_types(caller, types)

    async def _not_known(
        self, caller: Principal, interaction: Interaction, resource_type: str, fhir_id: str
    ) -> NoReturn:
        """Refuse an interaction with a resource there is none of (or no such version): a 404
        exactly like that of another organisation's resource the caller may not see, and an
        audit entry that its organisation reads alike (`NOT_KNOWN`)."""
        event = await self._allowed(caller, interaction, resource_type, fhir_id, None)
        await self._audit.record(event.refused(NOT_KNOWN))
        raise ApiError(404, f"{resource_type}/{fhir_id} is not known here.")

    async def _allowed(
        self,
        caller: Principal,
        interaction: Interaction,
        resource_type: str,
        fhir_id: str | None,
        owner: str | None,
        shared: bool = False,
        opened: bool = False,
        patient: str | None = None,
    ) -> AuditRecord:
        """Ask `access` about an interaction with a resource held by organisation `owner`
        (None: no such resource, or a search) whose patient's data is `shared` with the
        caller's organisation or `opened` by the caller's break-glass, or neither. A refusal
        is recorded here and raised; the allowance's audit event, concerning Patient record
        `patient`, is returned for the caller to record (with what the interaction showed)."""
        try:
            return self._guard.check(
                caller, interaction, resource_type, fhir_id, owner, shared, opened, patient
            )
        except AccessDenied as denied:
            await self._audit.record(denied.event)
            raise denied.error from None


def _distances(page: list[tuple[str, bytes]], centre: tuple[float, float]) -> dict[str, float]:
    """Metres from `centre` to the position of each resource that has one (a Location)."""
    found = {}
    for fhir_id, content in page:
        where = position(orjson.loads(content).get("position"))
        if where is not None:
            found[fhir_id] = distance(centre, where[:2])
    return found
