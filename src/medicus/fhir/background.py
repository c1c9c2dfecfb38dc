"""Background updates over the stored resources (see `core.background`): each reads the
current resources of some types a batch at a time, in row-id order, and restates what is
derived from them as a write of each would today: the search index (`SEARCH_INDEX`; of the
Patients alone, `PATIENT_SEARCH_INDEX`), and the master patient index and sharing facts that
`access` keeps (`access.background`); and one that stores the current content once
(`CONTENT_ONCE`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from medicus.access import background as access_updates
from medicus.access.patients import PatientIndex
from medicus.core.background import Batch, UpdateStep
from medicus.fhir import repository
from medicus.fhir.models import FhirResourceRow
from medicus.fhir.search.extract import extract

SEARCH_INDEX = "fhir.search_index"
"""The search index rows of every current resource."""

PATIENT_SEARCH_INDEX = "fhir.patient_search_index"
"""The search index rows of every current Patient (migration 0029: Patient `phonetic`)."""

CONTENT_ONCE = "fhir.content_once"
"""The current version's content in its resource row only: the copy that version rows
written before migration 0025 hold is dropped."""

Restate = Callable[[AsyncSession, list[FhirResourceRow]], Awaitable[None]]


async def _replay(
    types: Sequence[str] | None,
    restate: Restate,
    session: AsyncSession,
    progress: dict[str, Any],
    size: int,
) -> Batch:
    """Restate the next `size` current resources (of `types`; None: of every type)."""
    resource = FhirResourceRow
    query = (
        select(resource)
        .where(
            resource.rid > progress.get("after_rid", 0),
            resource.deleted.is_(False),
            resource.content.is_not(None),
        )
        .order_by(resource.rid)
        .limit(size)
    )
    if types is not None:
        query = query.where(resource.resource_type.in_(types))
    rows = list((await session.scalars(query)).all())
    if not rows:
        return Batch(None, 0)
    await restate(session, rows)
    return Batch({"after_rid": rows[-1].rid}, len(rows))


async def _index(session: AsyncSession, rows: list[FhirResourceRow]) -> None:
    await repository.rewrite_indexes(
        session,
        [(row.rid, row.resource_type, extract(row.resource_type, _content(row))) for row in rows],
    )


def _content(row: FhirResourceRow) -> dict[str, Any]:
    content: dict[str, Any] = orjson.loads(row.content or "{}")
    return content


def _for_access(patients: PatientIndex) -> Restate:
    async def restate(session: AsyncSession, rows: list[FhirResourceRow]) -> None:
        for row in rows:
            await access_updates.restate(
                session,
                patients,
                row.resource_type,
                row.fhir_id,
                row.organisation_id,
                row.patient_id,
                _content(row),
            )

    return restate


async def content_once(session: AsyncSession, progress: dict[str, Any], size: int) -> Batch:
    """Drop the copy of the current content from the version rows of the next `size`
    resources (in row-id order). Their resource rows are locked first, skipping those a
    write holds (PostgreSQL): a write that makes a new version current keeps the old one's
    content in its version row, which this update, deciding on the version it saw current,
    would otherwise drop. A skipped resource keeps its second copy, which reads ignore."""
    rids = list(
        (
            await session.scalars(
                select(FhirResourceRow.rid)
                .where(FhirResourceRow.rid > progress.get("after_rid", 0))
                .order_by(FhirResourceRow.rid)
                .limit(size)
                .with_for_update(skip_locked=True)
            )
        ).all()
    )
    if not rids:
        return Batch(None, 0)
    await session.execute(repository.DROP_CURRENT_CONTENT, {"rids": rids})
    return Batch({"after_rid": rids[-1]}, len(rids))


def steps(patients: PatientIndex) -> dict[str, UpdateStep]:
    """The updates derived from stored resources."""
    for_access = _for_access(patients)
    return {
        SEARCH_INDEX: partial(_replay, None, _index),
        PATIENT_SEARCH_INDEX: partial(_replay, ("Patient",), _index),
        CONTENT_ONCE: content_once,
        access_updates.MPI_RECORDS: partial(_replay, ("Patient",), for_access),
        access_updates.SHARING_FACTS: partial(_replay, access_updates.FACT_TYPES, for_access),
    }
