"""The background updates of every capability, by name (see `core.background`): one list,
which the running server (`platform`) and `medicus migrate` (`migrations.upgrade`) both run.
A capability that schedules an update in a migration registers its step here."""

from __future__ import annotations

from medicus.access import background as access_updates
from medicus.access.patients import PatientIndex
from medicus.audit.service import AuditTrail
from medicus.core.background import UpdateStep
from medicus.core.db import Database
from medicus.fhir import background as fhir_updates


def update_steps(patients: PatientIndex) -> dict[str, UpdateStep]:
    """Every capability's steps, writing through the server's own patient index."""
    return {**fhir_updates.steps(patients), **access_updates.steps()}


def offline_update_steps(database: Database) -> dict[str, UpdateStep]:
    """The same steps for a process that builds no platform (`medicus migrate`)."""
    return update_steps(PatientIndex(database, AuditTrail(database)))
