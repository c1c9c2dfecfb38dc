"""HTTP of an organisation's settings pages for its administrators (platform admins: of any
organisation, from the organisations page): its apps and backend services (register,
deactivate) and how its people log in (second-factor policy, the hospital's own identity
provider). Each action calls identity's `OrganisationSettings` as the logged-in admin, which
decides and audits; a bad value comes back next to its field (422) and changes nothing."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from medicus.core.errors import ApiError
from medicus.iam.organisation_settings import OrganisationSettings, UpstreamChange
from medicus.iam.roles import PATIENT_DATA_ROLES
from medicus.web.doorway import Doorway
from medicus.web.pages import PortalPages
from medicus.web.users import PortalUser

ORGANISATION = "/portal/admin/organisations/{organisation_id}"
CLIENTS = ORGANISATION + "/clients"
SIGN_IN = ORGANISATION + "/sign-in"
_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
"""What the ids of organisations and clients look like (a uuid, a test's `hospital-b`)."""
SAVED = ("mfa", "upstream", "removed")


def field_errors(refusal: ApiError) -> dict[str, str]:
    """The messages of a refused form, by field (a 422 whose errors point at fields); the
    refusal itself when it is about no field."""
    errors = {
        error.pointer.lstrip("/"): error.message
        for error in refusal.errors
        if error.pointer and refusal.status == 422
    }
    if not errors:
        raise refusal
    return errors


def _known(identifier: str) -> str:
    """An id of an organisation or a client from a page's address; anything else names
    none (and never reaches the database)."""
    if not _ID.fullmatch(identifier):
        raise ApiError(404, "There is nothing at this address.")
    return identifier


def build_settings_router(
    doorway: Doorway, settings: OrganisationSettings, pages: PortalPages
) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    router.include_router(_clients(doorway, settings, pages))
    router.include_router(_sign_in(doorway, settings, pages))
    return router


async def _register(
    settings: OrganisationSettings, user: PortalUser, organisation_id: str, fields: dict[str, str]
) -> str:
    """Register the client a form describes: a public app or a backend service."""
    kind, name, scope = fields.get("kind"), fields.get("name", ""), fields.get("scope", "")
    if kind == "public":
        uris = fields.get("redirect_uris", "").splitlines()
        return await settings.register_app(user.principal, organisation_id, name, uris, scope)
    if kind == "backend":
        jwks = fields.get("jwks", "")
        return await settings.register_backend(user.principal, organisation_id, name, jwks, scope)
    raise ApiError(400, "unknown kind of client")


def _clients(doorway: Doorway, settings: OrganisationSettings, pages: PortalPages) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    async def clients_page(
        request: Request, user: PortalUser, organisation_id: str, status: int = 200, **extra: Any
    ) -> Response:
        listing = await settings.clients(user.principal, organisation_id)
        context = {"errors": {}, "form": {}, "registered": None, **extra}
        base = CLIENTS.format(organisation_id=organisation_id)
        return pages.render(
            request, "clients.html", status, user=user, listing=listing, base=base, **context
        )

    @router.get(CLIENTS, response_class=HTMLResponse)
    async def clients(request: Request, organisation_id: str, registered: str = "") -> Response:
        async def show(request: Request, user: PortalUser) -> Response:
            organisation = _known(organisation_id)
            return await clients_page(request, user, organisation, registered=registered[:64])

        return await doorway.enter(request, show)

    @router.post(CLIENTS, response_class=HTMLResponse)
    async def register(request: Request, organisation_id: str) -> Response:
        async def submit(request: Request, user: PortalUser, fields: dict[str, str]) -> Response:
            organisation = _known(organisation_id)
            try:
                client_id = await _register(settings, user, organisation, fields)
            except ApiError as refusal:
                errors = field_errors(refusal)
                # A refused JWKS is not shown again: it may hold a private key.
                form = {k: v for k, v in fields.items() if k != "jwks" or "jwks" not in errors}
                return await clients_page(
                    request, user, organisation, 422, errors=errors, form=form
                )
            location = CLIENTS.format(organisation_id=organisation) + f"?registered={client_id}"
            return RedirectResponse(location, status_code=303)

        return await doorway.submit(request, submit)

    @router.post(CLIENTS + "/{client_id}/deactivate", response_class=HTMLResponse)
    async def deactivate(request: Request, organisation_id: str, client_id: str) -> Response:
        async def submit(request: Request, user: PortalUser, fields: dict[str, str]) -> Response:
            organisation = _known(organisation_id)
            await settings.deactivate_client(user.principal, organisation, _known(client_id))
            return RedirectResponse(CLIENTS.format(organisation_id=organisation), status_code=303)

        return await doorway.submit(request, submit)

    return router


def _upstream(fields: dict[str, str]) -> UpstreamChange:
    """The upstream provider a form describes (checkboxes are "on" when ticked)."""
    return UpstreamChange(
        issuer=fields.get("issuer", ""),
        client_id=fields.get("client_id", ""),
        client_secret=fields.get("client_secret") or None,
        forget_secret=fields.get("forget_secret") == "on",
        trust_upstream_mfa=fields.get("trust_upstream_mfa") == "on",
    )


def _saved(organisation_id: str, what: str) -> Response:
    """Back to the sign-in page, saying what was saved."""
    location = SIGN_IN.format(organisation_id=organisation_id) + f"?saved={what}"
    return RedirectResponse(location, status_code=303)


def _sign_in(doorway: Doorway, settings: OrganisationSettings, pages: PortalPages) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    async def sign_in_page(
        request: Request, user: PortalUser, organisation_id: str, status: int = 200, **extra: Any
    ) -> Response:
        current = await settings.sign_in(user.principal, organisation_id)
        context = {"errors": {}, "form": {}, "saved": None, **extra}
        base = SIGN_IN.format(organisation_id=organisation_id)
        guarded = sorted(PATIENT_DATA_ROLES)
        return pages.render(
            request,
            "sign_in_settings.html",
            status,
            user=user,
            current=current,
            base=base,
            guarded=guarded,
            **context,
        )

    @router.get(SIGN_IN, response_class=HTMLResponse)
    async def sign_in(request: Request, organisation_id: str, saved: str = "") -> Response:
        async def show(request: Request, user: PortalUser) -> Response:
            organisation = _known(organisation_id)
            shown = saved if saved in SAVED else None
            return await sign_in_page(request, user, organisation, saved=shown)

        return await doorway.enter(request, show)

    @router.post(SIGN_IN + "/mfa-policy", response_class=HTMLResponse)
    async def mfa_policy(request: Request, organisation_id: str) -> Response:
        async def submit(request: Request, user: PortalUser, fields: dict[str, str]) -> Response:
            organisation = _known(organisation_id)
            policy = fields.get("mfa_policy", "")
            try:
                await settings.set_mfa_policy(user.principal, organisation, policy)
            except ApiError as refusal:
                errors = field_errors(refusal)
                return await sign_in_page(request, user, organisation, 422, errors=errors)
            return _saved(organisation, "mfa")

        return await doorway.submit(request, submit)

    @router.post(SIGN_IN + "/upstream", response_class=HTMLResponse)
    async def upstream(request: Request, organisation_id: str) -> Response:
        async def submit(request: Request, user: PortalUser, fields: dict[str, str]) -> Response:
            organisation = _known(organisation_id)
            try:
                await settings.set_upstream(user.principal, organisation, _upstream(fields))
            except ApiError as refusal:
                errors = field_errors(refusal)
                # The secret is never shown again, not even to the one who typed it.
                form = {k: v for k, v in fields.items() if k != "client_secret"}
                return await sign_in_page(
                    request, user, organisation, 422, errors=errors, form=form
                )
            return _saved(organisation, "upstream")

        return await doorway.submit(request, submit)

    @router.post(SIGN_IN + "/upstream/remove", response_class=HTMLResponse)
    async def remove_upstream(request: Request, organisation_id: str) -> Response:
        async def submit(request: Request, user: PortalUser, fields: dict[str, str]) -> Response:
            organisation = _known(organisation_id)
            await settings.remove_upstream(user.principal, organisation)
            return _saved(organisation, "removed")

        return await doorway.submit(request, submit)

    return router
