"""HTTP of the portal (`/portal`): pages for people, htmx fragments for the parts of a page
that change. Each handler finds the user behind the session cookie (else: to the login and
back), calls one use case of `service.Portal` and renders a template; what `access` refuses
becomes the 403 or 404 page, a form's bad value a message next to its field."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from medicus.core.errors import ApiError
from medicus.iam.admin import AdminService
from medicus.iam.login import LoginService
from medicus.iam.organisation_settings import OrganisationSettings
from medicus.iam.pages import Pages, safe_next
from medicus.web.admin_routes import build_admin_router
from medicus.web.assets import IMMUTABLE, STATIC_PREFIX
from medicus.web.chart_routes import build_chart_router
from medicus.web.collab_pages import PortalCollab
from medicus.web.collab_routes import build_collab_router
from medicus.web.doorway import Doorway
from medicus.web.imaging_study_routes import build_imaging_study_router
from medicus.web.messenger_pages import PortalMessenger as PortalMessenger
from medicus.web.messenger_routes import build_messenger_router, navigation_marks
from medicus.web.oversight import OversightPages
from medicus.web.oversight_routes import build_oversight_router
from medicus.web.own_data import OwnData
from medicus.web.own_data_routes import OWN, build_own_data_router
from medicus.web.pages import PortalPages
from medicus.web.platform_routes import build_platform_router
from medicus.web.service import MAX_QUERY, Portal
from medicus.web.settings_routes import build_settings_router
from medicus.web.stewardship import Stewardship
from medicus.web.storage_pages import PortalStorage
from medicus.web.uploads_routes import build_storage_router
from medicus.web.users import PortalUser

REASON_MIN, REASON_MAX = 10, 2000


def build_router(
    portal: Portal,
    own_data: OwnData,
    oversight: OversightPages,
    admin: AdminService,
    logins: LoginService,
    pages: PortalPages,
    settings: OrganisationSettings,
    stewardship: Stewardship,
    storage: PortalStorage,
    collab: PortalCollab,
    messenger: PortalMessenger | None = None,
    *,
    public_url: str,
) -> APIRouter:
    """Every page of the portal, and its static files (`public_url`: the portal's address
    as others reach it, for links that are shared)."""
    doorway = Doorway(logins, pages)
    router = APIRouter(include_in_schema=False, dependencies=navigation_marks(messenger))
    router.include_router(_shell(doorway, pages))
    router.include_router(_patients(doorway, portal, pages))
    router.include_router(build_chart_router(doorway, portal, pages))
    router.include_router(build_imaging_study_router(doorway, portal, pages, public_url))
    router.include_router(build_own_data_router(doorway, own_data, pages))
    router.include_router(build_oversight_router(doorway, oversight, pages))
    router.include_router(build_admin_router(doorway, admin, pages))
    router.include_router(build_settings_router(doorway, settings, pages))
    router.include_router(build_platform_router(doorway, admin, settings, stewardship, pages))
    router.include_router(build_storage_router(doorway, logins, storage, portal, pages))
    router.include_router(build_collab_router(doorway, logins, collab, portal, pages))
    router.include_router(build_messenger_router(doorway, logins, messenger, pages))
    return router


def _shell(doorway: Doorway, pages: PortalPages) -> APIRouter:
    """The start page, help, the language switch, static files and the icon."""
    router = APIRouter(include_in_schema=False)
    as_user = doorway.enter

    @router.get("/portal", response_class=HTMLResponse)
    async def home(request: Request) -> Response:
        async def show(request: Request, user: PortalUser) -> Response:
            if user.sees_patient_data:
                return RedirectResponse("/portal/patients", status_code=303)
            if user.is_patient:
                return RedirectResponse(OWN, status_code=303)
            return pages.render(request, "home.html", user=user)

        return await as_user(request, show)

    @router.get("/portal/help", response_class=HTMLResponse)
    async def help_page(request: Request) -> Response:
        async def show(request: Request, user: PortalUser) -> Response:
            return pages.render(request, "help.html", user=user)

        return await as_user(request, show)

    @router.post("/portal/language")
    async def language(request: Request) -> Response:
        fields = await Pages.form(request)
        return pages.choose_language(fields.get("language", ""), safe_next(fields.get("next")))

    @router.get(STATIC_PREFIX + "{name:path}")
    async def static(request: Request, name: str) -> Response:
        found = pages.assets.get(name)
        if found is None:
            return Response(status_code=404)
        headers = {
            "Cache-Control": IMMUTABLE,
            "X-Content-Type-Options": "nosniff",
            "Vary": "Accept-Encoding",
        }
        if "gzip" not in request.headers.get("accept-encoding", ""):
            return Response(found.content, media_type=found.media_type, headers=headers)
        content = await asyncio.to_thread(found.gzipped)
        headers["Content-Encoding"] = "gzip"
        return Response(content, media_type=found.media_type, headers=headers)

    @router.get("/favicon.ico")
    async def icon() -> Response:
        """Browsers ask for it on every page, the login pages too."""
        return RedirectResponse(pages.assets.url("icon.svg"), status_code=301)

    return router


def _patients(doorway: Doorway, portal: Portal, pages: PortalPages) -> APIRouter:
    """Patient search."""
    router = APIRouter(include_in_schema=False)
    as_user = doorway.enter

    @router.get("/portal/patients", response_class=HTMLResponse)
    async def patients(request: Request, q: str = "") -> Response:
        async def show(request: Request, user: PortalUser) -> Response:
            if not user.sees_patient_data:
                raise ApiError(403, "no clinical role")
            query = q[:MAX_QUERY]
            found = await portal.find_patients(user, query) if query.strip() else []
            template = "patient_results.html" if request.headers.get("hx-request") else None
            return pages.render(
                request, template or "patients.html", user=user, query=query, found=found
            )

        return await as_user(request, show)

    return router
