"""The MPI steward's use cases in the portal (platform admins): the pairs of Patient records
of different hospitals that may be one person, to link or to mark as distinct. `access`
decides (only the platform's stewards) and audits every list and every decision; this module
only asks it and puts the holders' names to the records. As the API, the page shows why a
pair is proposed (how alike each trait is), not the patients' names (docs/access.md)."""

from __future__ import annotations

from dataclasses import dataclass

from medicus.access.patients import MatchCandidate, PatientIndex, PatientRecord
from medicus.core.db import Database
from medicus.iam.service import IdentityService
from medicus.web.users import PortalUser

CANDIDATE_PAGE = 20
TRAITS = ("birth_date", "family", "given", "postal_code")


@dataclass(frozen=True)
class Record:
    patient_id: str
    holder: str
    """The name of the organisation that holds the record."""


@dataclass(frozen=True)
class Candidate:
    one: Record
    other: Record
    score: float
    traits: dict[str, float]


@dataclass(frozen=True)
class Candidates:
    pairs: list[Candidate]
    following: str | None
    """`after` of the next page (None: the last page)."""


class Stewardship:
    def __init__(
        self, database: Database, patients: PatientIndex, identity: IdentityService
    ) -> None:
        self._database = database
        self._patients = patients
        self._identity = identity

    async def candidates(
        self, user: PortalUser, patient_id: str | None, after: tuple[str, str] | None
    ) -> Candidates:
        """A page of candidate pairs (of record `patient_id`, or all), best first."""
        found, following = await self._patients.candidates(
            user.principal, patient_id, after, CANDIDATE_PAGE
        )
        holders = {record.organisation_id for c in found for record in (c.one, c.other)}
        async with self._database.snapshot() as session:
            names = (await self._identity.names(session, (), holders, ())).organisations

        def record(found: PatientRecord) -> Record:
            return Record(found.patient_id, names.get(found.organisation_id, found.organisation_id))

        def pair(found: MatchCandidate) -> Candidate:
            return Candidate(record(found.one), record(found.other), found.score, found.traits)

        return Candidates(
            [pair(candidate) for candidate in found],
            None if following is None else ",".join(following),
        )

    async def link(self, user: PortalUser, one: str, other: str) -> None:
        """Link the two records as one person."""
        await self._patients.link(user.principal, one, other)

    async def mark_distinct(self, user: PortalUser, one: str, other: str) -> None:
        """Record that the two records are different persons."""
        await self._patients.mark_distinct(user.principal, one, other)
