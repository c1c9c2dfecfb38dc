"""HTTP of the master patient index, for the platform's MPI stewards: the records of a person,
and linking or unlinking two records (bearer tokens of platform admins)."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from medicus.access.patients import PatientIndex, PatientRecord
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


def build_router(patients: PatientIndex, tokens: TokenService) -> APIRouter:
    api = json_router(prefix="/api/mpi", tags=["master patient index"])
    caller = Depends(bearer_principal(tokens))

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
