"""HTTP of `access`: the master patient index for the platform's MPI stewards (the records of
a person, linking and unlinking records), break-glass for physicians and their organisation's
data protection review, and the audit trail as FHIR `AuditEvent` and as a patient's access
log."""

from __future__ import annotations

import datetime as dt
from typing import Any, cast
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from medicus.access.breakglass import BreakGlass
from medicus.access.disclosures import Disclosures
from medicus.access.patients import PatientIndex, PatientRecord
from medicus.access.repository import StoredBreakGlass, StoredDisclosure
from medicus.access.trail_reader import AccessLogEntry, AuditTrailReader
from medicus.audit.events import as_audit_event
from medicus.audit.search import parse_search
from medicus.core.errors import FHIR_JSON, ApiError
from medicus.core.http import json_router
from medicus.iam.bearer import bearer_principal
from medicus.iam.tokens import Principal, TokenService

_FHIR_ID = r"^[A-Za-z0-9\-.]{1,64}$"
_CURSOR = r"^[A-Za-z0-9\-.]{1,64},[A-Za-z0-9\-.]{1,64}$"


class Link(BaseModel):
    patient: str = Field(pattern=_FHIR_ID, description="id of a Patient record")
    other: str = Field(pattern=_FHIR_ID, description="id of the Patient record to link it with")


class Candidate(BaseModel):
    patient: str
    patient_organisation: str
    other: str
    other_organisation: str
    score: float = Field(description="how likely one person, 0 to 1 (proposed from 0.7)")
    traits: dict[str, float] = Field(description="how alike each trait is, 0 to 1")


class Candidates(BaseModel):
    candidates: list[Candidate]
    next: str | None = Field(description="`after` of the next page (None: the last)")


class Person(BaseModel):
    records: list[dict[str, str]]


def _person(records: list[PatientRecord]) -> Person:
    return Person(
        records=[
            {"patient": f"Patient/{r.patient_id}", "organisation": r.organisation_id}
            for r in records
        ]
    )


class Opening(BaseModel):
    # A reason of blanks is no reason: blanks are stripped before the length is checked.
    model_config = ConfigDict(str_strip_whitespace=True)

    patient: str = Field(pattern=_FHIR_ID, description="id of a Patient record of the person")
    reason: str = Field(min_length=10, max_length=2000, description="why, for the review")


class Review(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True)

    note: str = Field(min_length=1, max_length=2000)


class Opened(BaseModel):
    id: str
    physician: str
    patient: str
    reason: str
    started_at: dt.datetime
    ends_at: dt.datetime
    reviewed_by: str | None
    reviewed_at: dt.datetime | None
    review_note: str | None


def _opened(found: StoredBreakGlass) -> Opened:
    return Opened(
        id=found.id,
        physician=found.actor,
        patient=f"Patient/{found.patient_id}",
        reason=found.reason,
        started_at=found.started_at,
        ends_at=found.ends_at,
        reviewed_by=found.reviewed_by,
        reviewed_at=found.reviewed_at,
        review_note=found.review_note,
    )


class AccessLog(BaseModel):
    entries: list[AccessLogEntry]
    next_cursor: int | None = Field(description="`cursor` of the next page (None: the last)")


class Disclosure(BaseModel):
    patient: str = Field(description="the Patient record, `Patient/{id}`")
    organisation: str = Field(description="who may see its data, `Organization/{id}`")
    consents: list[dict[str, str | None]] = Field(
        description="the consents that open it: `consent`, `recorded_by`, `valid_from`, "
        "`valid_until`"
    )
    treatments: list[str] = Field(description="the treatment relations of that organisation")
    gained_at: dt.datetime
    ended_at: dt.datetime | None


def _disclosure(found: StoredDisclosure) -> Disclosure:
    return Disclosure(
        patient=f"Patient/{found.patient_id}",
        organisation=f"Organization/{found.organisation_id}",
        consents=found.reasons.get("consents", []),
        treatments=found.reasons.get("treatments", []),
        gained_at=found.gained_at,
        ended_at=found.ended_at,
    )


class DisclosureNews(BaseModel):
    disclosures: list[Disclosure]
    next_cursor: int | None = Field(description="`cursor` of the next page (None: the last)")


def build_router(
    patients: PatientIndex,
    break_glass: BreakGlass,
    trail_reader: AuditTrailReader,
    disclosures: Disclosures,
    tokens: TokenService,
    fhir_base: str,
) -> APIRouter:
    """The routes of `access`; `fhir_base` is the hub's public base URL, the root of the
    AuditEvent bundles' links whatever `Host` a request names."""
    router = APIRouter()
    caller = Depends(bearer_principal(tokens))
    router.include_router(_mpi(patients, caller))
    router.include_router(_break_glass(break_glass, caller))
    router.include_router(_audit_events(trail_reader, caller, fhir_base))
    router.include_router(_disclosures(disclosures, caller))
    return router


def _disclosures(disclosures: Disclosures, caller: Any) -> APIRouter:
    """Whom a hospital's records are open to, for those who oversee it."""
    router = APIRouter()
    records = json_router(prefix="/api/patients", tags=["access"])

    @records.get("/{patient_id}/disclosures", summary="Who may see a record's data, and why")
    async def of_record(
        patient_id: str = Path(pattern=_FHIR_ID), principal: Principal = caller
    ) -> list[Disclosure]:
        return [_disclosure(d) for d in await disclosures.of_record(principal, patient_id)]

    news = json_router(prefix="/api/access", tags=["access"])

    @news.get("/disclosures", summary="Organisations that gained sight of our records")
    async def gained(
        cursor: int | None = Query(default=None, ge=1, le=2**62),
        limit: int = Query(default=100, ge=1, le=1000),
        principal: Principal = caller,
    ) -> DisclosureNews:
        found, following = await disclosures.news(principal, cursor, limit)
        return DisclosureNews(disclosures=[_disclosure(d) for d in found], next_cursor=following)

    router.include_router(records)
    router.include_router(news)
    return router


def _audit_events(trail_reader: AuditTrailReader, caller: Any, fhir_base: str) -> APIRouter:
    """The audit trail as FHIR AuditEvent (read and search only: the trail is written by
    the platform, never through its API) and as the access log of a patient."""
    router = APIRouter()

    @router.get("/fhir/AuditEvent", tags=["audit"], summary="search the audit trail")
    async def search(request: Request, principal: Principal = caller) -> Response:
        parameters = list(request.query_params.multi_items())
        query = parse_search(parameters)
        entries, following = await trail_reader.search(principal, query, urlencode(parameters))
        base = f"{fhir_base}/AuditEvent"
        kept = [(name, value) for name, value in parameters if name != "_cursor"]
        links = [{"relation": "self", "url": f"{base}?{urlencode(parameters)}"}]
        if following is not None:
            links.append(
                {"relation": "next", "url": f"{base}?{urlencode([*kept, ('_cursor', following)])}"}
            )
        bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset", "link": links}
        if entries:  # R4 forbids an empty array (ele-1)
            bundle["entry"] = [
                {
                    "fullUrl": f"{base}/{entry['seq']}",
                    "resource": as_audit_event(entry),
                    "search": {"mode": "match"},
                }
                for entry in entries
            ]
        return Response(orjson.dumps(bundle), media_type=FHIR_JSON)

    @router.get("/fhir/AuditEvent/{seq}", tags=["audit"], summary="one audit entry")
    async def read(seq: str, principal: Principal = caller) -> Response:
        if not (seq.isascii() and seq.isdigit()) or len(seq) > 18:
            raise ApiError(404, f"AuditEvent/{seq} is not known here.")
        entry = await trail_reader.entry(principal, int(seq))
        return Response(orjson.dumps(as_audit_event(entry)), media_type=FHIR_JSON)

    api = json_router(prefix="/api/patients", tags=["audit"])

    @api.get("/{patient_id}/access-log", summary="Who accessed a patient's data, when and why")
    async def access_log(
        patient_id: str = Path(pattern=_FHIR_ID),
        cursor: int | None = Query(default=None, ge=1, le=2**62),
        limit: int = Query(default=100, ge=1, le=1000),
        principal: Principal = caller,
    ) -> AccessLog:
        entries, following = await trail_reader.access_log(principal, patient_id, cursor, limit)
        return AccessLog(entries=entries, next_cursor=following)

    router.include_router(api)
    return router


def _break_glass(break_glass: BreakGlass, caller: Any) -> APIRouter:
    api = json_router(prefix="/api/break-glass", tags=["break-glass"])

    @api.post("", status_code=201, summary="Open a person's record in an emergency")
    async def open_record(body: Opening, principal: Principal = caller) -> Opened:
        return _opened(await break_glass.open(principal, body.patient, body.reason))

    @api.get("", summary="The organisation's break-glass accesses, for review")
    async def opened(
        unreviewed: bool = False,
        limit: int = Query(default=100, ge=1, le=1000),
        principal: Principal = caller,
    ) -> list[Opened]:
        return [
            _opened(found) for found in await break_glass.opened_in(principal, unreviewed, limit)
        ]

    @api.post("/{break_glass_id}/review", summary="Record the review of a break-glass access")
    async def review(break_glass_id: str, body: Review, principal: Principal = caller) -> Opened:
        return _opened(await break_glass.review(principal, break_glass_id, body.note))

    return api


def _mpi(patients: PatientIndex, caller: Any) -> APIRouter:
    api = json_router(prefix="/api/mpi", tags=["master patient index"])

    @api.get("/persons/{patient_id}", summary="The records of a Patient record's person")
    async def person(patient_id: str, principal: Principal = caller) -> Person:
        return _person(await patients.person_of(principal, patient_id))

    @api.post("/links", summary="Link two Patient records as one person")
    async def link(body: Link, principal: Principal = caller) -> Person:
        return _person(await patients.link(principal, body.patient, body.other))

    @api.delete(
        "/links/{patient_id}/{other_id}",
        summary="Remove the explicit link between two Patient records",
    )
    async def unlink(patient_id: str, other_id: str, principal: Principal = caller) -> Person:
        return _person(await patients.unlink(principal, patient_id, other_id))

    @api.get("/candidates", summary="Pairs of records that may be one person, for review")
    async def candidates(
        patient: str | None = Query(default=None, pattern=_FHIR_ID),
        after: str | None = Query(default=None, pattern=_CURSOR, description="`next` of a page"),
        limit: int = Query(default=50, ge=1, le=500),
        principal: Principal = caller,
    ) -> Candidates:
        start = None if after is None else cast(tuple[str, str], tuple(after.split(",")))
        found, following = await patients.candidates(principal, patient, start, limit)
        return Candidates(
            candidates=[
                Candidate(
                    patient=f"Patient/{c.one.patient_id}",
                    patient_organisation=c.one.organisation_id,
                    other=f"Patient/{c.other.patient_id}",
                    other_organisation=c.other.organisation_id,
                    score=c.score,
                    traits=c.traits,
                )
                for c in found
            ],
            next=None if following is None else ",".join(following),
        )

    @api.post("/distinct", status_code=204, summary="Two records are different persons")
    async def distinct(body: Link, principal: Principal = caller) -> None:
        await patients.mark_distinct(principal, body.patient, body.other)

    return api
