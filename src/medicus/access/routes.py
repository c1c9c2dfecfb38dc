"""HTTP of `access`: the master patient index for the platform's MPI stewards (the records of
a person, linking and unlinking records), and break-glass for physicians and their
organisation's data protection review."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from medicus.access.breakglass import BreakGlass
from medicus.access.patients import PatientIndex, PatientRecord
from medicus.access.repository import StoredBreakGlass
from medicus.core.http import json_router
from medicus.iam.http import bearer_principal
from medicus.iam.tokens import Principal, TokenService

_FHIR_ID = r"^[A-Za-z0-9\-.]{1,64}$"


class Link(BaseModel):
    patient: str = Field(pattern=_FHIR_ID, description="id of a Patient record")
    other: str = Field(pattern=_FHIR_ID, description="id of the Patient record to link it with")


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


def build_router(
    patients: PatientIndex, break_glass: BreakGlass, tokens: TokenService
) -> APIRouter:
    router = APIRouter()
    caller = Depends(bearer_principal(tokens))
    router.include_router(_mpi(patients, caller))
    router.include_router(_break_glass(break_glass, caller))
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

    return api
