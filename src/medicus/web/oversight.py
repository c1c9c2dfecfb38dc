"""The data-protection officer's use cases in the portal: the break-glass review queue, the
audit trail browser, and the chain's verification. `access` decides who may (those who
oversee the organisation; platform admins for the whole trail) and audits every reading;
this module only asks it and puts names to the ids."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import orjson

from medicus.access.breakglass import BreakGlass
from medicus.access.repository import StoredBreakGlass
from medicus.access.trail_reader import AuditTrailReader, Entry
from medicus.audit.events import CLIENT_DETAIL
from medicus.audit.search import AuditQuery
from medicus.audit.service import ChainReport, Outcome, patients_of
from medicus.core.db import Database
from medicus.iam.service import IdentityService, Names
from medicus.web.users import PortalUser

TRAIL_PAGE = 50
QUEUE_SIZE = 200


@dataclass(frozen=True)
class Opening:
    """A break-glass opening as the review queue shows it: with the physician's and the
    reviewer's names."""

    stored: StoredBreakGlass
    physician: str
    reviewer: str | None


@dataclass(frozen=True)
class TrailFilter:
    """What the audit trail browser asks for; empty fields ask for nothing."""

    patient: str = ""
    user_email: str = ""
    outcome: str = ""
    since: dt.date | None = None
    until: dt.date | None = None
    below: int | None = None


@dataclass(frozen=True)
class TrailLine:
    seq: int
    at: dt.datetime
    actor: str
    organisation: str
    action: str
    target: str
    outcome: str
    patients: list[str]
    app: str
    reason: str


def _user_id(actor: str) -> str | None:
    kind, _, subject = actor.partition(":")
    return subject if kind == "user" else None


class OversightPages:
    def __init__(
        self,
        database: Database,
        break_glass: BreakGlass,
        trail: AuditTrailReader,
        identity: IdentityService,
    ) -> None:
        self._database = database
        self._break_glass = break_glass
        self._trail = trail
        self._identity = identity

    async def _names(self, actors: set[str], organisations: set[str], clients: set[str]) -> Names:
        users = {user for user in map(_user_id, actors) if user}
        async with self._database.snapshot() as session:
            return await self._identity.names(session, users, organisations, clients)

    async def openings(self, user: PortalUser, unreviewed: bool) -> list[Opening]:
        """The organisation's break-glass openings, newest first (403 for others)."""
        found = await self._break_glass.opened_in(user.principal, unreviewed, QUEUE_SIZE)
        actors = {o.actor for o in found} | {o.reviewed_by for o in found if o.reviewed_by}
        names = await self._names(actors, set(), set())
        return [_opening(o, names) for o in found]

    async def review(self, user: PortalUser, opening_id: str, note: str) -> None:
        await self._break_glass.review(user.principal, opening_id, note)

    async def trail(
        self, user: PortalUser, wanted: TrailFilter
    ) -> tuple[list[TrailLine], int | None]:
        """One page of the entries the filter asks for that the user may read (403 for
        those who read no trail; a user unknown by that e-mail finds nothing)."""
        actors = None
        if wanted.user_email:
            async with self._database.snapshot() as session:
                found = await self._identity.user_id_by_email(session, wanted.user_email)
            actors = frozenset({f"user:{found}" if found else "user:-"})
        query = AuditQuery(
            patients=frozenset({wanted.patient}) if wanted.patient else None,
            actors=actors,
            outcomes=frozenset({Outcome(wanted.outcome)}) if wanted.outcome else None,
            since=_start_of(wanted.since),
            until=_start_of(wanted.until + dt.timedelta(days=1) if wanted.until else None),
            below=wanted.below,
            limit=TRAIL_PAGE,
        )
        entries, following = await self._trail.search(user.principal, query, "portal trail")
        details = [_detail(entry) for entry in entries]
        clients = {str(d.get(CLIENT_DETAIL)) for d in details if d.get(CLIENT_DETAIL)}
        organisations = {str(e["organisation"]) for e in entries if e["organisation"]}
        names = await self._names({str(e["actor"]) for e in entries}, organisations, clients)
        lines = [_line(e, d, names) for e, d in zip(entries, details, strict=True)]
        return lines, following

    async def verify(self, user: PortalUser) -> ChainReport:
        return await self._trail.verify(user.principal)


def _start_of(day: dt.date | None) -> dt.datetime | None:
    return None if day is None else dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


def _detail(entry: Entry) -> dict[str, object]:
    found = orjson.loads(entry["detail"] or "{}")
    return found if isinstance(found, dict) else {}


def _opening(found: StoredBreakGlass, names: Names) -> Opening:
    def name(actor: str) -> str:
        return names.users.get(_user_id(actor) or "", actor)

    reviewer = name(found.reviewed_by) if found.reviewed_by else None
    return Opening(found, name(found.actor), reviewer)


def _line(entry: Entry, detail: dict[str, object], names: Names) -> TrailLine:
    actor = str(entry["actor"])
    client = str(detail.get(CLIENT_DETAIL, ""))
    return TrailLine(
        seq=int(entry["seq"]),
        at=entry["occurred_at"],
        actor=names.users.get(_user_id(actor) or "", actor),
        organisation=names.organisations.get(str(entry["organisation"]), ""),
        action=str(entry["action"]),
        target=str(entry["target"] or ""),
        outcome=str(entry["outcome"]),
        patients=patients_of(entry),
        app=names.clients.get(client, client),
        reason=str(detail.get("reason", "")),
    )
