"""HTTP of a patient's own portal (`own_data.OwnData`): the start page with their records
and consents, the access log, and the consent forms. A form's bad value re-renders the page
(422) with a message next to the field and changes nothing."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from medicus.core.db import utc_now
from medicus.web.consents import DECISIONS, RESEARCH_MODULES
from medicus.web.doorway import Doorway
from medicus.web.own_data import OwnData
from medicus.web.pages import PortalPages
from medicus.web.users import PortalUser

OWN = "/portal/me"


def build_own_data_router(doorway: Doorway, own: OwnData, pages: PortalPages) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    as_user = doorway.enter

    async def own_page(
        request: Request, user: PortalUser, status: int = 200, **extra: Any
    ) -> Response:
        overview = await own.overview(user)
        context = {"own": overview, "modules": RESEARCH_MODULES, "errors": set(), **extra}
        return pages.render(request, "own_data.html", status, user=user, **context)

    @router.get(OWN, response_class=HTMLResponse)
    async def start(request: Request) -> Response:
        return await as_user(request, own_page)

    @router.get(OWN + "/access-log", response_class=HTMLResponse)
    async def access_log(
        request: Request, before: int | None = Query(default=None, ge=1, le=2**62)
    ) -> Response:
        async def show(request: Request, user: PortalUser) -> Response:
            entries, following = await own.access_log(user, before)
            return pages.render(
                request, "own_access_log.html", user=user, entries=entries, following=following
            )

        return await as_user(request, show)

    @router.post(OWN + "/sharing", response_class=HTMLResponse)
    async def sharing(request: Request) -> Response:
        async def submit(request: Request, user: PortalUser, fields: dict[str, str]) -> Response:
            decision = fields.get("decision", "")
            if decision not in DECISIONS:
                return await own_page(request, user, 422, errors={"sharing"})
            if decision == "permit" and fields.get("informed") != "yes":
                return await own_page(request, user, 422, errors={"sharing-informed"})
            await own.declare_sharing(user, decision, utc_now())
            return RedirectResponse(OWN + "#sharing", status_code=303)

        return await doorway.submit(request, submit)

    @router.post(OWN + "/research", response_class=HTMLResponse)
    async def research(request: Request) -> Response:
        async def submit(request: Request, user: PortalUser, fields: dict[str, str]) -> Response:
            modules = {m: fields[m] for m in RESEARCH_MODULES if fields.get(m) in DECISIONS}
            if len(modules) != len(RESEARCH_MODULES):
                return await own_page(request, user, 422, errors={"research"}, form=fields)
            if "permit" in modules.values() and fields.get("informed") != "yes":
                return await own_page(request, user, 422, errors={"research-informed"}, form=fields)
            await own.declare_research(user, modules, utc_now())
            return RedirectResponse(OWN + "#research", status_code=303)

        return await doorway.submit(request, submit)

    @router.post(OWN + "/consents/{consent_id}/withdraw", response_class=HTMLResponse)
    async def withdraw(request: Request, consent_id: str) -> Response:
        async def submit(request: Request, user: PortalUser, _fields: dict[str, str]) -> Response:
            await own.withdraw(user, consent_id)
            return RedirectResponse(OWN, status_code=303)

        return await doorway.submit(request, submit)

    return router
