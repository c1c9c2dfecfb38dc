"""HTTP of an imaging study's page (`/portal/imaging-studies/{id}`): what the FHIR hub holds
about the study, and its link to copy into a message. A study the user may not see is the
404 page of an unknown one."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from medicus.core.errors import ApiError
from medicus.web.doorway import Doorway
from medicus.web.imaging_study_pages import STUDY_PATH, PortalImaging
from medicus.web.pages import PortalPages
from medicus.web.service import Portal
from medicus.web.users import PortalUser


def build_imaging_study_router(
    doorway: Doorway, portal: Portal, pages: PortalPages, public_url: str
) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    imaging = PortalImaging(portal, public_url)

    @router.get(STUDY_PATH + "{study_id}", response_class=HTMLResponse)
    async def study(request: Request, study_id: str) -> Response:
        async def show(request: Request, user: PortalUser) -> Response:
            if not user.sees_patient_data:
                raise ApiError(403, "no clinical role")
            found = await imaging.study(user, study_id)
            return pages.render(request, "imaging_study.html", user=user, page=found)

        return await doorway.enter(request, show)

    return router
