"""HTTP of the platform administrator's pages: the platform's organisations (list, create)
and the MPI steward's candidates (link two records as one person, or mark them distinct).
Identity's services and `access` decide (platform admins only) and audit each use; a bad
value comes back next to its field (422) and changes nothing."""

from __future__ import annotations

import re
from typing import Any, cast

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from medicus.core.errors import ApiError
from medicus.iam.admin import AdminService
from medicus.iam.admin_routes import NewOrganisation
from medicus.iam.organisation_settings import OrganisationSettings
from medicus.iam.roles import MfaPolicy, OrganisationType
from medicus.iam.settings_checks import checked_name
from medicus.web.doorway import Doorway
from medicus.web.pages import PortalPages
from medicus.web.stewardship import TRAITS, Stewardship
from medicus.web.users import PortalUser

ORGANISATIONS = "/portal/platform/organisations"
MPI = "/portal/platform/mpi"
DECISIONS = ("link", "distinct")
OUTCOMES = (*DECISIONS, "decided-before")
"""What a decision may come to: a pair decided by another steward meanwhile is left as is."""
_RECORD_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_ORGANISATION_FIELDS = ("name", "type", "iknr", "mfa_policy")


def build_platform_router(
    doorway: Doorway,
    admin: AdminService,
    settings: OrganisationSettings,
    stewardship: Stewardship,
    pages: PortalPages,
) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    router.include_router(_organisations(doorway, admin, settings, pages))
    router.include_router(_mpi(doorway, stewardship, pages))
    return router


def _new_organisation(fields: dict[str, str]) -> tuple[NewOrganisation | None, set[str]]:
    """The organisation a form describes, or the names of its fields that are not right."""
    given = {name: fields.get(name, "").strip() for name in _ORGANISATION_FIELDS}
    errors: set[str] = set()
    try:
        checked_name(given["name"])
    except ApiError:
        errors.add("name")
    try:
        wanted = NewOrganisation.model_validate({**given, "iknr": given["iknr"] or None})
    except ValidationError as invalid:
        errors |= {str(error["loc"][0]) for error in invalid.errors() if error["loc"]}
    return (None, errors) if errors else (wanted, errors)


def _organisations(
    doorway: Doorway, admin: AdminService, settings: OrganisationSettings, pages: PortalPages
) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    async def organisations_page(
        request: Request, user: PortalUser, status: int = 200, **extra: Any
    ) -> Response:
        listing = await settings.organisations(user.principal)
        context = {"errors": set(), "form": {}, "created": None, **extra}
        return pages.render(
            request,
            "organisations.html",
            status,
            user=user,
            organisations=listing,
            types=list(OrganisationType),
            policies=list(MfaPolicy),
            **context,
        )

    @router.get(ORGANISATIONS, response_class=HTMLResponse)
    async def organisations(request: Request, created: str = "") -> Response:
        async def show(request: Request, user: PortalUser) -> Response:
            return await organisations_page(request, user, created=created[:64] or None)

        return await doorway.enter(request, show)

    @router.post(ORGANISATIONS, response_class=HTMLResponse)
    async def create(request: Request) -> Response:
        async def submit(request: Request, user: PortalUser, fields: dict[str, str]) -> Response:
            wanted, errors = _new_organisation(fields)
            if wanted is not None:
                try:
                    created = await admin.create_organisation(
                        user.principal,
                        wanted.name,
                        wanted.type,
                        wanted.iknr,
                        None,
                        wanted.mfa_policy,
                    )
                except ApiError as refusal:
                    if refusal.status != 409:
                        raise
                    errors = {"iknr-taken"}
                else:
                    return RedirectResponse(f"{ORGANISATIONS}?created={created}", status_code=303)
            return await organisations_page(request, user, 422, errors=errors, form=fields)

        return await doorway.submit(request, submit)

    return router


def _cursor(after: str) -> tuple[str, str] | None:
    """A page's start (`next` of the one before), or None for the first page."""
    parts = after.split(",")
    if len(parts) != 2 or not all(_RECORD_ID.fullmatch(part) for part in parts):
        return None
    return cast(tuple[str, str], tuple(parts))


def _mpi(doorway: Doorway, stewardship: Stewardship, pages: PortalPages) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get(MPI, response_class=HTMLResponse)
    async def candidates(
        request: Request, patient: str = "", after: str = "", decided: str = ""
    ) -> Response:
        async def show(request: Request, user: PortalUser) -> Response:
            wanted = patient.strip()
            valid = not wanted or _RECORD_ID.fullmatch(wanted) is not None
            try:
                found = await stewardship.candidates(
                    user, wanted if valid and wanted else None, _cursor(after)
                )
            except ApiError as refusal:
                if refusal.status != 404 or not wanted:
                    raise
                found, valid = await stewardship.candidates(user, None, None), False
            return pages.render(
                request,
                "mpi_candidates.html",
                200 if valid else 422,
                user=user,
                found=found,
                patient=wanted[:64],
                errors=set() if valid else {"patient"},
                traits=TRAITS,
                decided=decided if decided in OUTCOMES else None,
            )

        return await doorway.enter(request, show)

    @router.post(MPI + "/decisions", response_class=HTMLResponse)
    async def decide(request: Request) -> Response:
        async def submit(request: Request, user: PortalUser, fields: dict[str, str]) -> Response:
            one, other = fields.get("patient", ""), fields.get("other", "")
            decision = fields.get("decision", "")
            ids_ok = all(_RECORD_ID.fullmatch(value) for value in (one, other))
            if decision not in DECISIONS or not ids_ok:
                raise ApiError(400, "unknown decision")
            outcome = decision
            try:
                if decision == "link":
                    await stewardship.link(user, one, other)
                else:
                    await stewardship.mark_distinct(user, one, other)
            except ApiError as refusal:
                if refusal.status != 409:
                    raise
                outcome = "decided-before"
            if request.headers.get("hx-request"):
                return pages.render(
                    request, "mpi_decision.html", user=user, one=one, other=other, outcome=outcome
                )
            return RedirectResponse(f"{MPI}?decided={outcome}", status_code=303)

        return await doorway.submit(request, submit)

    return router
