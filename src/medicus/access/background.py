"""Background updates of the data `access` derives (see `core.background`): the master patient
index, the sharing and research facts, and the shares with the register of whom each record is
open to, rebuilt with today's rules as writes would make them.

The index and the facts are restated from stored resources, which `fhir` reads
(`fhir.background`); the shares are recomputed here, a batch of persons at a time. While the
shares are rebuilt the access rules fail closed: a revision that may have widened them empties
`access_share` first, so a person not yet recomputed is shared with nobody (own
organisation's data and break-glass are unaffected)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from functools import partial
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from medicus.access import research, sharing
from medicus.access.models import RECORDS
from medicus.access.patients import PatientIndex
from medicus.access.sharing import SHARING_TYPES
from medicus.core.background import Batch, UpdateStep
from medicus.core.db import utc_now

MPI_RECORDS = "access.mpi_records"
"""The master patient index: every current Patient's record, its traits, merges and person."""
SHARING_FACTS = "access.sharing_facts"
"""The consents, treatment relations and research terms of the stored resources."""
SHARES = "access.shares"
"""Every person's shares and disclosures, from the index and the facts."""
FACT_TYPES = tuple(sorted(SHARING_TYPES))
"""The types of the resources `SHARING_FACTS` restates."""


async def restate(
    session: AsyncSession,
    patients: PatientIndex,
    resource_type: str,
    fhir_id: str,
    organisation_id: str,
    patient_id: str | None,
    resource: dict[str, Any],
) -> None:
    """Bring the index or the facts up to date with a stored (current) resource, as its write
    would today. A write's checks are not made again: the resource was accepted when written,
    and what today's rules no longer count is dropped by them here. A fact's shares are left
    to the rebuild of the shares that follows (`SHARES`)."""
    if resource_type == "Patient":
        await patients.patient_stored(session, fhir_id, organisation_id, resource)
        return
    if resource_type == "Consent":
        await research.consent_written(
            session, fhir_id, organisation_id, patient_id, resource, created=False
        )
    await sharing.fact_written(
        session, resource_type, fhir_id, organisation_id, patient_id, resource, created=False
    )


async def _recompute_shares(
    clock: Callable[[], dt.datetime], session: AsyncSession, progress: dict[str, Any], size: int
) -> Batch:
    """The shares of the next `size` persons, in the order of their ids."""
    persons = list(
        (
            await session.scalars(
                select(RECORDS.c.person_id)
                .where(RECORDS.c.person_id > progress.get("after_person", ""))
                .group_by(RECORDS.c.person_id)
                .order_by(RECORDS.c.person_id)
                .limit(size)
            )
        ).all()
    )
    if not persons:
        return Batch(None, 0)
    await sharing.recompute(session, persons, clock())
    return Batch({"after_person": persons[-1]}, len(persons))


def steps(clock: Callable[[], dt.datetime] = utc_now) -> dict[str, UpdateStep]:
    """The updates of `access`'s own tables (those restated from resources: `fhir.background`)."""
    return {SHARES: partial(_recompute_shares, clock)}
