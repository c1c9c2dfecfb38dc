"""Who may read the audit trail, and what of it: the FHIR `AuditEvent` view and the access log
of a patient ("who looked at my data, when and why").

The rules:
- platform admins (the operator's security team) search the whole trail;
- those who oversee an organisation (`oversight`: its data protection officers, or its
  admins while it has named none) see
  what their organisation's staff and services did, and everything done to the data of
  Patient records their organisation holds, whoever did it (`patient=`): a hospital answers
  for the data it holds;
- patients read their own access log: everything done to the data of their Patient records
  (the master patient index's records of their person), as recorded, each entry showing
  only their own records (`own_access_log`);
- nobody else reads it.

Every reading of the trail is itself audited, refusals too, concerning the Patient records
it asked about.

What an entry shows depends on who reads it (`_as_seen`): a refusal must not tell the refused
organisation what it was refused. Platform admins see entries as recorded. Others see the
Patient records an entry concerns where their organisation holds the record, or where the
entry is an allowed access of their own organisation's (its staff were shown the record);
and a refusal of data held elsewhere (`other-organisation`) as the refusal of an id that
nothing is known by (`not-known`, as a request for an id that no resource has is recorded),
unless their organisation holds the record: the refused organisation's view tells no more
than the 404 did, the holder's tells all.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, NoReturn

import orjson
from sqlalchemy import RowMapping

from medicus.access import repository
from medicus.access.oversight import Oversight
from medicus.access.patient_accounts import records_of_person
from medicus.access.policy import audited
from medicus.audit.events import CLIENT_DETAIL, NOT_KNOWN
from medicus.audit.search import AuditQuery
from medicus.audit.service import AuditRecord, AuditTrail, ChainReport, Outcome, patients_of
from medicus.core.db import Database
from medicus.core.errors import ApiError
from medicus.core.i18n import translatable
from medicus.iam.roles import Role
from medicus.iam.service import IdentityService, Names
from medicus.iam.tokens import Principal

Entry = Mapping[str, Any] | RowMapping
"""A sealed entry, or the view of one that a reader may see."""

_NOT_A_READER = (
    "Only data protection officers (admins while their organisation has named none) "
    "and platform admins read the audit trail."
)


@dataclass(frozen=True)
class AccessLogEntry:
    """One entry of a patient's access log, in words a patient understands."""

    seq: int
    at: str
    actor: str
    actor_name: str | None
    organisation: str | None
    organisation_name: str | None
    did: str
    target: str | None
    why: str | None
    allowed: bool
    app: str | None = None
    """The app (OAuth client) it was done through, and its name."""
    app_name: str | None = None


_DID = {
    "fhir.read": translatable("looked at"),
    "fhir.vread": translatable("looked at an earlier version of"),
    "fhir.history": translatable("looked at the history of"),
    "fhir.search": translatable("searched"),
    "fhir.everything": translatable("looked at the whole record"),
    "fhir.create": translatable("added"),
    "fhir.update": translatable("changed"),
    "fhir.delete": translatable("deleted"),
    "access.break-glass": translatable("opened the record in an emergency"),
    "access.break-glass.review": translatable("reviewed an emergency opening of the record"),
    "access.mpi.read": translatable("looked up the records of the same person"),
    "access.mpi.link": translatable("linked the record with another one of the same person"),
    "access.mpi.unlink": translatable("unlinked the record from another one"),
    "access.disclosures.read": translatable("looked at whom the record is open to"),
    "access.disclosures.search": translatable(
        "looked at whom the organisation's records were opened to"
    ),
    "audit.search": translatable("looked at the access log"),
    "audit.read": translatable("looked at the access log"),
    "iam.invitation.create": translatable("invited the patient to the portal"),
}
_WHY = {
    "own-organisation": translatable("the data is held by their own organisation"),
    "consent-and-treatment": translatable(
        "the patient consented to sharing and is being treated there"
    ),
    "break-glass": translatable("emergency access"),
    "other-organisation": translatable("the data is held by another organisation"),
    "held-elsewhere": translatable("only the organisation holding the data may change it"),
    "scope": translatable("their access rights do not cover it"),
    "research-consent": translatable("the patient's research consent permits it"),
    "no-research-consent": translatable("the patient's research consent does not permit it"),
    "not-care-provider": translatable(
        "only care providers record consents and treatment relations"
    ),
}


class AuditTrailReader:
    """Reads the audit trail (`audit.AuditTrail`) for a caller: what of it the caller may see,
    as the caller may see it, each reading audited."""

    def __init__(
        self,
        database: Database,
        audit: AuditTrail,
        identity: IdentityService,
        oversight: Oversight,
    ) -> None:
        self._database = database
        self._audit = audit
        self._identity = identity
        self._oversight = oversight
        self._verifying = asyncio.Lock()

    async def search(
        self, caller: Principal, query: AuditQuery, asked: str
    ) -> tuple[list[Entry], int | None]:
        """One page of the entries `query` asks for that the caller may read, as the caller
        may see them (`asked`: the query as the caller wrote it, for the audit entry of this
        search)."""
        event = audited(caller, "audit.search", "AuditEvent", {"query": asked}).about(
            *(query.patients or ())
        )
        scoped = await self._scoped(caller, query, event)
        page, following = await self._audit.search(scoped)
        await self._audit.record(event)
        return await self._as_seen(caller, page), following

    async def entry(self, caller: Principal, seq: int) -> Entry:
        """One entry, if the caller may read it (else, or if there is none, a 404), as the
        caller may see it."""
        event = audited(caller, "audit.read", f"AuditEvent/{seq}")
        if not await self._reads_trail(caller):
            await self._refuse(event, _NOT_A_READER)
        found = await self._audit.entry(seq)
        if found is None or not await self._may_read(caller, found):
            await self._audit.record(replace(event, outcome=Outcome.DENIED))
            raise ApiError(404, f"AuditEvent/{seq} is not known here.")
        (seen,) = await self._as_seen(caller, [found])
        await self._audit.record(event.about(*patients_of(seen)))
        return seen

    async def verify(self, caller: Principal) -> ChainReport:
        """Walk the whole chain (`AuditTrail.verify`) for someone who reads the trail; one
        walk at a time per process, since it reads every entry."""
        event = audited(caller, "audit.verify", "AuditEvent")
        if not await self._reads_trail(caller):
            await self._refuse(event, _NOT_A_READER)
        async with self._verifying:
            report = await self._audit.verify()
        await self._audit.record(event.noting(entries=report.entries, intact=report.intact))
        return report

    async def access_log(
        self, caller: Principal, patient_id: str, below: int | None, limit: int
    ) -> tuple[list[AccessLogEntry], int | None]:
        """Who did what to the data of Patient record `patient_id`, newest first, with the
        names of the people and organisations; a page, and the cursor of the next."""
        query = AuditQuery(patients=frozenset({patient_id}), below=below, limit=limit)
        entries, following = await self.search(caller, query, f"access-log Patient/{patient_id}")
        return await self._in_words(entries), following

    async def own_access_log(
        self, caller: Principal, below: int | None, limit: int
    ) -> tuple[list[AccessLogEntry], int | None]:
        """A patient's own access log: who did what to the data of any record of their
        person, newest first; a page, and the cursor of the next. A 403 for anyone who is
        not a patient."""
        own = caller.own_patient_record
        event = audited(caller, "audit.search", "AuditEvent", {"query": "own access log"})
        if own is None:
            await self._refuse(event, "Only patients read their own access log.")
        async with self._database.snapshot() as session:
            records = set(await records_of_person(session, own))
        query = AuditQuery(patients=frozenset(records), below=below, limit=limit)
        page, following = await self._audit.search(query)
        await self._audit.record(event.about(*records))
        seen = [_only_records(entry, records) for entry in page]
        return await self._in_words(seen), following

    async def _in_words(self, entries: Sequence[Entry]) -> list[AccessLogEntry]:
        actors = {entry["actor"] for entry in entries}
        users = {actor.partition(":")[2] for actor in actors if actor.startswith("user:")}
        organisations = {entry["organisation"] for entry in entries if entry["organisation"]}
        details = [_detail(entry) for entry in entries]
        clients = {str(d[CLIENT_DETAIL]) for d in details if d.get(CLIENT_DETAIL)}
        async with self._database.snapshot() as session:
            names = await self._identity.names(session, users, organisations, clients)
        return [_in_words(e, d, names) for e, d in zip(entries, details, strict=True)]

    async def _scoped(self, caller: Principal, query: AuditQuery, event: AuditRecord) -> AuditQuery:
        """`query` narrowed to what the caller may read; a refusal is audited and raised."""
        if not await self._reads_trail(caller):
            await self._refuse(event, _NOT_A_READER)
        if caller.role == Role.PLATFORM_ADMIN:
            return query
        if query.patients is None:
            return replace(query, organisation=caller.organisation_id)
        async with self._database.snapshot() as session:
            held = await repository.held_by(session, query.patients, caller.organisation_id)
        if held != query.patients:
            await self._refuse(
                event,
                "Only the audit trail of your organisation's Patient records is yours to read.",
            )
        return query

    async def _as_seen(self, caller: Principal, entries: Sequence[RowMapping]) -> list[Entry]:
        """The entries as the caller may see them (see the module's documentation)."""
        if _platform_admin(caller):
            return list(entries)
        concerned = {patient for entry in entries for patient in patients_of(entry)}
        async with self._database.snapshot() as session:
            held = await repository.held_by(session, concerned, caller.organisation_id)
        return [_seen_by(entry, caller.organisation_id, held) for entry in entries]

    async def _may_read(self, caller: Principal, entry: RowMapping) -> bool:
        if caller.role == Role.PLATFORM_ADMIN or entry["organisation"] == caller.organisation_id:
            return True
        async with self._database.snapshot() as session:
            return bool(
                await repository.held_by(session, patients_of(entry), caller.organisation_id)
            )

    async def _reads_trail(self, caller: Principal) -> bool:
        return _platform_admin(caller) or await self._oversight.oversees(caller)

    async def _refuse(self, event: AuditRecord, message: str) -> NoReturn:
        await self._audit.record(replace(event, outcome=Outcome.DENIED))
        raise ApiError(403, message)


def _platform_admin(caller: Principal) -> bool:
    return caller.kind == "user" and caller.role == Role.PLATFORM_ADMIN


def _seen_by(entry: RowMapping, organisation: str, held: Collection[str]) -> Entry:
    """`entry` as a reader of `organisation`, which holds the records `held`, sees it."""
    patients = patients_of(entry)
    holder = any(patient in held for patient in patients)
    if entry["organisation"] == organisation and entry["outcome"] == Outcome.SUCCESS:
        shown = patients
    else:
        shown = [patient for patient in patients if patient in held]
    detail = _detail(entry)
    if detail.get("reason") == "other-organisation" and not holder:
        detail = {**detail, "reason": NOT_KNOWN}
    if shown == patients and detail == _detail(entry):
        return entry
    return {
        **entry,
        "patients": " ".join(shown) or None,
        "detail": orjson.dumps(detail, option=orjson.OPT_SORT_KEYS).decode(),
    }


def _only_records(entry: Entry, records: Collection[str]) -> Entry:
    """`entry` showing of the Patient records it concerns only those in `records` (a search
    may have concerned other people's records too)."""
    shown = [patient for patient in patients_of(entry) if patient in records]
    return {**entry, "patients": " ".join(shown) or None}


def _detail(entry: Entry) -> dict[str, Any]:
    detail = orjson.loads(entry["detail"] or "{}")
    return detail if isinstance(detail, dict) else {}


def _in_words(entry: Entry, detail: dict[str, Any], names: Names) -> AccessLogEntry:
    kind, _, subject = entry["actor"].partition(":")
    client = detail.get(CLIENT_DETAIL)
    app = client if isinstance(client, str) else None
    return AccessLogEntry(
        seq=entry["seq"],
        at=entry["occurred_at"].isoformat(),
        actor=f"Practitioner/{subject}" if kind == "user" else entry["actor"],
        actor_name=names.users.get(subject) if kind == "user" else None,
        organisation=entry["organisation"] and f"Organization/{entry['organisation']}",
        organisation_name=names.organisations.get(entry["organisation"] or ""),
        did=_DID.get(entry["action"]) or str(entry["action"]),
        target=entry["target"],
        why=_reason(entry, detail),
        allowed=entry["outcome"] == Outcome.SUCCESS,
        app=app,
        app_name=names.clients.get(app or ""),
    )


def _reason(entry: Entry, detail: dict[str, Any]) -> str | None:
    """Why it was allowed or refused: the access decision's reason, or what a physician
    stated when opening the record in an emergency."""
    reason = detail.get("reason")
    if entry["action"] == "access.break-glass" and reason:
        return f"emergency: {reason}"
    return _WHY.get(reason) if isinstance(reason, str) else None
