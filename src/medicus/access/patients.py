"""The master patient index: the Patient records of different organisations that are one
person. Records with the same KVNR (`http://fhir.de/sid/gkv/kvid-10`, or the PKV system, which
carries the same lifelong number) are one person, and so are records that an MPI steward linked
explicitly, and records that a hospital merged (a `Patient.link` of type `replaced-by` or
`replaces` between two records it holds itself); a person is the connected group of records
under these rules. A `Patient.link` to another hospital's record links nothing (a hospital
could otherwise join that record to a person it treats). Nothing is linked on a guess: records
that merely look alike (name, birth date) are only proposed for review.

The FHIR hub keeps the index current in the transaction that writes a Patient, so that the
person is never behind the records, and with it the shares (`sharing`) of the persons whose
records, consents or treatment relations changed. Links and unlinks are audited."""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from medicus.access import repository, research, sharing
from medicus.access.matching import THRESHOLD, likeness, traits_of
from medicus.access.policy import AccessDenied, audited
from medicus.access.sharing import SHARING_TYPES
from medicus.audit.service import AuditRecord, AuditTrail, Outcome
from medicus.core.clock import Clock
from medicus.core.db import Database, hold_lock, utc_now
from medicus.core.errors import ApiError
from medicus.iam.roles import Role
from medicus.iam.tokens import Principal

KVNR_SYSTEMS = frozenset({"http://fhir.de/sid/gkv/kvid-10", "http://fhir.de/sid/pkv/kvid-10"})
_KVNR = re.compile(r"[A-Z][0-9]{9}")
_LINKS_LOCK = "access.mpi.links"
MERGING_LINKS = frozenset({"replaced-by", "replaces"})
"""The `Patient.link` types by which a hospital merges its own duplicate records."""
_BLOCK_PAGE = 500
"""Pairs read at a time while looking for a page of candidates."""


def kvnr_of(patient: dict[str, Any]) -> str | None:
    """The KVNR a Patient resource carries (the first well-formed one), in capitals."""
    for identifier in patient.get("identifier") or []:
        if not isinstance(identifier, dict) or identifier.get("system") not in KVNR_SYSTEMS:
            continue
        value = identifier.get("value")
        if isinstance(value, str) and _KVNR.fullmatch(value.strip().upper()):
            return value.strip().upper()
    return None


@dataclass(frozen=True)
class PatientRecord:
    patient_id: str
    organisation_id: str


@dataclass(frozen=True)
class MatchCandidate:
    """Two records that may be one person: how likely (`score`, 0 to 1) and how alike each
    trait is (`traits`). The traits' values are not shown: the steward needs to know why,
    not the patient's name."""

    one: PatientRecord
    other: PatientRecord
    score: float
    traits: dict[str, float]


def merged_with(patient: dict[str, Any]) -> set[str]:
    """The ids of the records a Patient resource states it replaces or is replaced by (its
    `link`s of those types to a relative `Patient/{id}`)."""
    found = set()
    for link in patient.get("link") or []:
        if not isinstance(link, dict) or link.get("type") not in MERGING_LINKS:
            continue
        other = link.get("other")
        reference = other.get("reference") if isinstance(other, dict) else None
        if isinstance(reference, str) and reference.startswith("Patient/"):
            found.add(reference.removeprefix("Patient/"))
    return found


def persons(
    records: Iterable[tuple[str, str | None]], links: Iterable[tuple[str, str]]
) -> dict[str, str]:
    """The person of each record (`patient_id`, `kvnr`): records with the same KVNR and
    linked records are one person, named by the smallest record id among them."""
    parent: dict[str, str] = {}

    def root(record: str) -> str:
        while parent[record] != record:
            parent[record] = parent[parent[record]]
            record = parent[record]
        return record

    def join(one: str, other: str) -> None:
        first, second = sorted((root(one), root(other)))
        parent[second] = first

    first_with_kvnr: dict[str, str] = {}
    for patient_id, kvnr in records:
        parent.setdefault(patient_id, patient_id)
        if kvnr is not None:
            join(patient_id, first_with_kvnr.setdefault(kvnr, patient_id))
    for one, other in links:
        if one in parent and other in parent:
            join(one, other)
    return {record: root(record) for record in parent}


async def _check_relation(
    session: AsyncSession,
    resource_type: str,
    organisation_id: str,
    resource: dict[str, Any],
    event: AuditRecord,
) -> None:
    """Refuse a sharing consent or treatment relation that `organisation_id` may not
    record: one by an organisation that is no care provider (403, audited as refused,
    `not-care-provider`), or a permit that names no source document (422)."""
    if not sharing.states_relation(resource_type, resource):
        return
    if not await repository.of_types(session, {organisation_id}, sharing.CARE_PROVIDERS):
        raise AccessDenied(
            replace(event, outcome=Outcome.DENIED).noting(reason="not-care-provider"),
            ApiError(
                403,
                "Only care providers (hospitals, practices, laboratories) record consents "
                f"to share and treatment relations; this {resource_type} is refused.",
            ),
        )
    if resource_type == "Consent" and _permits(resource) and not sharing.has_source(resource):
        raise ApiError(
            422,
            "A consent to share must name its source document: the signed form "
            "(Consent.sourceAttachment) or what it was taken from (Consent.sourceReference).",
            issue_type="business-rule",
        )


def _permits(consent: dict[str, Any]) -> bool:
    provision = consent.get("provision")
    return isinstance(provision, dict) and provision.get("type") == "permit"


class PatientIndex:
    def __init__(
        self,
        database: Database,
        audit: AuditTrail,
        clock: Clock = utc_now,
    ) -> None:
        self._database = database
        self._audit = audit
        self._clock = clock

    async def resource_written(
        self,
        session: AsyncSession,
        resource_type: str,
        fhir_id: str,
        organisation_id: str,
        patient_id: str | None,
        resource: dict[str, Any] | None,
        created: bool,
        event: AuditRecord,
    ) -> None:
        """Bring the index and the shares up to date with a resource as just written (None:
        deleted; `created`: its first version), in the writer's transaction: a Patient, a
        Consent, an Encounter, an EpisodeOfCare or a ServiceRequest; nothing to do for other
        types. A sharing consent or treatment relation that its writer may not record is
        refused (`event`: the write's audit event, recorded as refused)."""
        if resource_type == "Patient":
            await self._patient_written(session, fhir_id, organisation_id, resource, created)
        elif resource_type in SHARING_TYPES:
            if resource is not None:
                await _check_relation(session, resource_type, organisation_id, resource, event)
            if resource_type == "Consent":
                await research.consent_written(
                    session, fhir_id, organisation_id, patient_id, resource, created
                )
            changed = await sharing.fact_written(
                session, resource_type, fhir_id, organisation_id, patient_id, resource, created
            )
            await sharing.recompute(session, changed, self._clock())

    async def patient_stored(
        self, session: AsyncSession, patient_id: str, organisation_id: str, patient: dict[str, Any]
    ) -> None:
        """Index a stored Patient record again as its write would today (a rebuild of the
        index, `access.background`); one not in the index yet as its first version."""
        indexed = await repository.record(session, patient_id) is not None
        await self._patient_written(
            session, patient_id, organisation_id, patient, created=not indexed
        )

    async def _patient_written(
        self,
        session: AsyncSession,
        patient_id: str,
        organisation_id: str,
        patient: dict[str, Any] | None,
        created: bool,
    ) -> None:
        """Bring the index up to date with a Patient record as just written (None: deleted),
        in the writer's transaction. A new record whose KVNR no other record has (most of
        them) is a person of its own: only facts written before it in the same transaction
        could give it shares."""
        if patient is None:
            former = await repository.delete_record(session, patient_id, self._clock())
            await repository.end_disclosures_of(session, patient_id, self._clock())
            if former is not None:
                await self._regroup(session, {former}, set())
            return
        kvnr = kvnr_of(patient)
        if kvnr is not None:
            await hold_lock(session, f"access.mpi.kvnr.{kvnr}")
        former = await repository.put_record(
            session, patient_id, organisation_id, kvnr, traits_of(patient), created
        )
        merged = await self._merges_written(session, patient_id, organisation_id, patient, created)
        kvnrs = {kvnr} if kvnr else set()
        if (
            created
            and not merged
            and await repository.persons_with_kvnrs(session, kvnrs) <= {patient_id}
        ):
            if await repository.has_facts(session, patient_id):
                await sharing.recompute(session, {patient_id}, self._clock())
            return
        persons_before = await repository.persons_of(session, merged)
        await self._regroup(session, {former or patient_id, *persons_before}, kvnrs)

    async def _merges_written(
        self,
        session: AsyncSession,
        patient_id: str,
        organisation_id: str,
        patient: dict[str, Any],
        created: bool,
    ) -> set[str]:
        """Keep the merges a Patient record states with records its organisation holds; the
        records whose merge with it began or ended. Merges change persons as links do, so
        they take turns with links (only records that merge pay for that)."""
        stated = merged_with(patient) - {patient_id}
        merging = await repository.held_now(session, stated, organisation_id)
        before = set() if created else await repository.merges_of(session, patient_id)
        if merging == before:
            return set()
        await hold_lock(session, _LINKS_LOCK)
        await repository.replace_merges(session, patient_id, merging)
        return merging ^ before

    async def person_of(self, caller: Principal, patient_id: str) -> list[PatientRecord]:
        """Every record of the person `patient_id` belongs to (for an MPI steward)."""
        await self._require_steward(caller, "access.mpi.read", patient_id)
        async with self._database.transaction() as session:
            found = await repository.record(session, patient_id)
            if found is None:
                raise _not_in_index(patient_id)
            records = await repository.records_of_persons(session, {found.person_id})
            await self._audit.append(
                session,
                audited(caller, "access.mpi.read", f"Patient/{patient_id}").about(
                    *(record.patient_id for record in records)
                ),
            )
        return [PatientRecord(r.patient_id, r.organisation_id) for r in records]

    async def records_of_same_person(self, patient_id: str) -> list[PatientRecord]:
        """The records the index joins with `patient_id` (itself included; only itself when
        it is not in the index). For a caller that then reads each through `access`, which
        decides which of them it may see: this reveals nothing on its own."""
        async with self._database.snapshot() as session:
            found = await repository.record(session, patient_id)
            if found is None:
                return []
            records = await repository.records_of_persons(session, {found.person_id})
        return [PatientRecord(r.patient_id, r.organisation_id) for r in records]

    async def holders_of(self, patient_ids: Collection[str]) -> dict[str, str]:
        """The organisation holding each of the records `patient_ids` that the index knows,
        for a caller that has read them through `access`."""
        async with self._database.snapshot() as session:
            found = await repository.records(session, patient_ids)
        return {record.patient_id: record.organisation_id for record in found}

    async def link(self, caller: Principal, one: str, other: str) -> list[PatientRecord]:
        """Link two records as one person; the person's records afterwards."""
        return await self._change_link(caller, one, other, linked=True)

    async def unlink(self, caller: Principal, one: str, other: str) -> list[PatientRecord]:
        """Remove an explicit link; the first record's person's records afterwards (the same
        KVNR keeps records together whatever the links say)."""
        return await self._change_link(caller, one, other, linked=False)

    async def _change_link(
        self, caller: Principal, one: str, other: str, linked: bool
    ) -> list[PatientRecord]:
        pair = (min(one, other), max(one, other))
        action = "access.mpi.link" if linked else "access.mpi.unlink"
        await self._require_steward(caller, action, *pair)
        if one == other:
            raise ApiError(422, "A record cannot be linked to itself.")
        async with self._database.transaction() as session:
            await hold_lock(session, _LINKS_LOCK)
            ends = [await repository.record(session, patient_id) for patient_id in pair]
            for patient_id, end in zip(pair, ends, strict=True):
                if end is None:
                    raise _not_in_index(patient_id)
            if linked:
                changed = await repository.add_link(session, pair, caller.actor, self._clock())
            else:
                changed = await repository.remove_link(session, pair)
            if not changed:
                raise ApiError(409 if linked else 404, _unchanged(pair, linked))
            await self._regroup(session, {end.person_id for end in ends if end}, set())
            found = await repository.record(session, one)
            assert found is not None
            records = await repository.records_of_persons(session, {found.person_id})
            target = f"Patient/{pair[0]}"
            await self._audit.append(
                session,
                audited(caller, action, target, {"other": f"Patient/{pair[1]}"}).about(*pair),
            )
        return [PatientRecord(r.patient_id, r.organisation_id) for r in records]

    async def candidates(
        self, caller: Principal, patient_id: str | None, after: tuple[str, str] | None, limit: int
    ) -> tuple[list[MatchCandidate], tuple[str, str] | None]:
        """Pairs of records of different persons that may be one (of record `patient_id`, or
        all), best first within a page, for a steward to link or mark as distinct; and the
        pair the next page starts after (None: no more). Never links anything."""
        action = "access.mpi.candidates"
        await self._require_steward(caller, action, *filter(None, [patient_id]))
        async with self._database.snapshot() as session:
            if patient_id is not None and await repository.record(session, patient_id) is None:
                raise _not_in_index(patient_id)
            found, after = await _scored_pairs(session, after, patient_id, limit)
        concerned = {record.patient_id for c in found for record in (c.one, c.other)}
        target = f"Patient/{patient_id}" if patient_id else "Patient"
        await self._audit.record(audited(caller, action, target).about(*concerned))
        return sorted(found, key=lambda candidate: -candidate.score), after

    async def mark_distinct(self, caller: Principal, one: str, other: str) -> None:
        """Record a steward's finding that two records are different persons: they are no
        longer proposed as a match."""
        pair = (min(one, other), max(one, other))
        action = "access.mpi.distinct"
        await self._require_steward(caller, action, *pair)
        if one == other:
            raise ApiError(422, "A record is never distinct from itself.")
        async with self._database.transaction() as session:
            for patient_id in pair:
                if await repository.record(session, patient_id) is None:
                    raise _not_in_index(patient_id)
            if not await repository.add_distinct(session, pair, caller.actor, self._clock()):
                raise ApiError(
                    409, f"Patient/{pair[0]} and Patient/{pair[1]} are marked distinct already."
                )
            await self._audit.append(
                session,
                audited(
                    caller, action, f"Patient/{pair[0]}", {"other": f"Patient/{pair[1]}"}
                ).about(*pair),
            )

    async def _regroup(
        self, session: AsyncSession, person_ids: Collection[str], kvnrs: Collection[str]
    ) -> None:
        """Recompute the persons of every record of `person_ids` and of records with one of
        `kvnrs` (joining or parting only ever touches these), then their shares."""
        affected = set(person_ids) | await repository.persons_with_kvnrs(session, kvnrs)
        records = await repository.records_of_persons(session, affected)
        ids = {record.patient_id for record in records}
        person = persons(
            ((r.patient_id, r.kvnr) for r in records), await repository.links_among(session, ids)
        )
        groups: dict[str, list[str]] = {}
        for record in records:
            if record.person_id != person[record.patient_id]:
                groups.setdefault(person[record.patient_id], []).append(record.patient_id)
        for person_id, members in groups.items():
            await repository.move_to_person(session, members, person_id)
        await sharing.recompute(session, affected | set(person.values()), self._clock())

    async def _require_steward(self, caller: Principal, action: str, *patient_ids: str) -> None:
        """Linking records decides whose data a hospital may later see: only the platform's
        MPI stewards (platform admins) link, unlink and look at persons. A refusal is
        audited too, concerning the records `patient_ids` (the first is its target, if any)."""
        if caller.role == Role.PLATFORM_ADMIN and caller.kind == "user":
            return
        target = f"Patient/{patient_ids[0]}" if patient_ids else "Patient"
        refusal = audited(caller, action, target, outcome=Outcome.DENIED)
        await self._audit.record(refusal.about(*patient_ids))
        raise ApiError(403, "Only the platform's MPI stewards (platform admins) may do this.")


async def _scored_pairs(
    session: AsyncSession, after: tuple[str, str] | None, patient_id: str | None, limit: int
) -> tuple[list[MatchCandidate], tuple[str, str] | None]:
    """Up to `limit` candidates in block order after the pair `after`, and the pair the next
    page starts after (None: every block was read). Blocks are read a page at a time: most
    pairs of a block score too low."""
    found: list[MatchCandidate] = []
    while len(found) < limit:
        pairs = await repository.match_blocks(session, after, patient_id, _BLOCK_PAGE)
        for one, other in pairs:
            alike = likeness(one.traits, other.traits)
            if alike.score >= THRESHOLD:
                found.append(
                    MatchCandidate(_record(one), _record(other), alike.score, alike.traits)
                )
        if len(pairs) < _BLOCK_PAGE:
            return found[:limit], _pair(found[limit - 1]) if len(found) > limit else None
        after = (pairs[-1][0].patient_id, pairs[-1][1].patient_id)
    return found[:limit], _pair(found[limit - 1]) if len(found) > limit else after


def _pair(candidate: MatchCandidate) -> tuple[str, str]:
    return candidate.one.patient_id, candidate.other.patient_id


def _record(matched: repository.MatchTraits) -> PatientRecord:
    return PatientRecord(matched.patient_id, matched.organisation_id)


def _not_in_index(patient_id: str) -> ApiError:
    return ApiError(404, f"Patient/{patient_id} is not in the master patient index.")


def _unchanged(pair: tuple[str, str], linked: bool) -> str:
    state = "already linked" if linked else "not linked"
    return f"Patient/{pair[0]} and Patient/{pair[1]} are {state}."
