"""HTTP of the directory (`/directory/fhir`): the FHIR search and read of its five resource
types for staff of the platform's organisations, answered by the FHIR hub as the directory's
reader (so the audit trail names who searched). Nothing is written here: the directory is a
projection of `iam` (`messenger.directory`)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from medicus.core.errors import ApiError
from medicus.core.ids import is_fhir_id
from medicus.fhir.router import FhirRouter
from medicus.fhir.routes import fhir_request, http_response
from medicus.iam.bearer import bearer_principal
from medicus.iam.tokens import Principal, TokenService
from medicus.messenger.directory import TYPES, reader
from medicus.messenger.repository import STAFF_ROLES


def build_router(hub: FhirRouter, tokens: TokenService, base: str) -> APIRouter:
    """`hub` is the FHIR hub's router rebased at `base` (`…/directory/fhir`)."""
    routes = APIRouter(prefix="/directory/fhir", tags=["messenger"])
    caller = Depends(bearer_principal(tokens))

    async def answer(request: Request, who: Principal) -> Response:
        if who.kind != "user" or who.role not in STAFF_ROLES:
            raise ApiError(403, "The directory is for staff of the platform's organisations.")
        return http_response(await hub.handle(reader(who), await fhir_request(request)), base)

    @routes.get("/{resource_type}", summary="Search the directory")
    async def search(resource_type: str, request: Request, who: Principal = caller) -> Response:
        """Search Organization, Practitioner, PractitionerRole, HealthcareService or Endpoint
        with the FHIR search parameters (and `_include`), as at `/fhir`."""
        _directory_type(resource_type)
        return await answer(request, who)

    @routes.get("/{resource_type}/{fhir_id}", summary="Read a directory entry")
    async def read(
        resource_type: str, fhir_id: str, request: Request, who: Principal = caller
    ) -> Response:
        """The current entry only: no history (`_history` would show whom an organisation
        listed once and took off), and a removed entry is as unknown as one never made."""
        _directory_type(resource_type)
        if not is_fhir_id(fhir_id):
            raise ApiError(404, "The directory has no such entry.", issue_type="not-found")
        try:
            return await answer(request, who)
        except ApiError as failed:
            if failed.status == 410:
                raise ApiError(
                    404, "The directory has no such entry.", issue_type="not-found"
                ) from None
            raise

    return routes


def _directory_type(resource_type: str) -> None:
    if resource_type not in TYPES:
        raise ApiError(
            404,
            f"The directory holds {', '.join(TYPES)}; not {resource_type[:64]}.",
            issue_type="not-found",
        )
