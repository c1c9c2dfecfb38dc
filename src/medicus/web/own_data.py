"""A patient's own portal (`PortalUser.is_patient`): their Patient records and who holds
them, who accessed their data (`access`'s access log of their person), and their sharing
and research consents, which they give or withdraw themselves.

A patient's consents are written as FHIR `Consent` resources about the record they were
invited for, held by the organisation that invited them (the one they logged in for), so
that `access` reads them exactly as one recorded by that hospital's staff; their source is
the patient's own declaration in the portal. The patient acts with the scope to read and
write Consent resources only, and only about their own record: the checks are here."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace

from medicus.access.patient_accounts import PatientAccounts
from medicus.access.trail_reader import AccessLogEntry, AuditTrailReader
from medicus.core.errors import ApiError
from medicus.iam.scopes import parse_scopes
from medicus.web.chart import Holder
from medicus.web.consents import PORTAL_DECLARATION_TITLE, ConsentLine, Consents
from medicus.web.service import Portal
from medicus.web.users import PortalUser

ACCESS_LOG_PAGE = 200
"""Entries a page of the access log reads (a chart view alone is about a dozen, shown as a
few lines)."""
_DECLARANT_SCOPE = "user/Consent.crus"


@dataclass(frozen=True)
class LogLine:
    """Entries of the access log that say the same thing in the same minute (a chart reads
    each section with a search of its own), shown as one line with how often."""

    entry: AccessLogEntry
    times: int

    @property
    def resource_type(self) -> str | None:
        return _type_of(self.entry)


def grouped_lines(entries: list[AccessLogEntry]) -> list[LogLine]:
    """Consecutive entries that say the same thing in the same minute as one line."""
    lines: list[LogLine] = []
    for entry in entries:
        if lines and _same(lines[-1].entry, entry):
            lines[-1] = LogLine(lines[-1].entry, lines[-1].times + 1)
        else:
            lines.append(LogLine(entry, 1))
    return lines


def _same(one: AccessLogEntry, other: AccessLogEntry) -> bool:
    said = ("actor", "organisation", "did", "why", "allowed", "app")
    same_minute = one.at[:16] == other.at[:16]
    same_type = _type_of(one) == _type_of(other)
    return same_minute and same_type and all(getattr(one, k) == getattr(other, k) for k in said)


def _type_of(entry: AccessLogEntry) -> str | None:
    target = entry.target or ""
    return target.split("/", 1)[0] if "/" in target else None


@dataclass(frozen=True)
class OwnOverview:
    """What the patient's start page shows."""

    own_record: str
    holders: dict[str, Holder]
    """Each of the person's records, and who holds it."""
    sharing: list[ConsentLine]
    research: list[ConsentLine]


class OwnData:
    def __init__(
        self,
        portal: Portal,
        accounts: PatientAccounts,
        trail: AuditTrailReader,
        consents: Consents,
    ) -> None:
        self._portal = portal
        self._accounts = accounts
        self._trail = trail
        self._consents = consents

    async def overview(self, user: PortalUser) -> OwnOverview:
        own = _own_record(user)
        records = await self._accounts.own_records(user.principal)
        holders = await self._portal.holders_of_records(user, records)
        declarant = _declarant(user)
        mine = {own: holders[own]} if own in holders else {}
        return OwnOverview(
            own,
            holders,
            await self._consents.on_record(declarant, mine),
            await self._consents.research_on_record(declarant, mine),
        )

    async def access_log(
        self, user: PortalUser, below: int | None
    ) -> tuple[list[LogLine], int | None]:
        """A page of who did what to the data of the patient's records, newest first, the
        same thing done several times in a minute as one line."""
        entries, following = await self._trail.own_access_log(
            user.principal, below, ACCESS_LOG_PAGE
        )
        return grouped_lines(entries), following

    async def declare_sharing(self, user: PortalUser, decision: str, now: dt.datetime) -> None:
        """The patient permits sharing (`permit`) or objects to it (`deny`)."""
        own = _own_record(user)
        await self._consents.record(_declarant(user), own, decision, now, PORTAL_DECLARATION_TITLE)

    async def declare_research(
        self, user: PortalUser, modules: dict[str, str], now: dt.datetime
    ) -> None:
        """The patient's Broad Consent, module by module."""
        own = _own_record(user)
        await self._consents.record_research(
            _declarant(user), own, modules, now, PORTAL_DECLARATION_TITLE
        )

    async def withdraw(self, user: PortalUser, consent_id: str) -> None:
        """Withdraw one of the patient's own consents (a 404 for any other)."""
        await self._consents.withdraw(_declarant(user), consent_id, _own_record(user))


def _own_record(user: PortalUser) -> str:
    own = user.principal.own_patient_record
    if not user.is_patient or own is None:
        raise ApiError(403, "This page is for patients.")
    return own


def _declarant(user: PortalUser) -> PortalUser:
    """The patient as the author of their own consents: allowed to read and write Consent
    resources of their organisation, which the use cases above narrow to their record."""
    _own_record(user)
    scope = parse_scopes(_DECLARANT_SCOPE)
    principal = replace(user.principal, scope=scope, scope_text=_DECLARANT_SCOPE)
    return replace(user, principal=principal)
