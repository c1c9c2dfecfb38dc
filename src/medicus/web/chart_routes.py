"""HTTP of a patient's chart: the page, its `$everything` download, break-glass, and the
sharing consent's forms. A form's bad value re-renders the chart (422) with a message next
to the field and changes nothing."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from medicus.core.db import utc_now
from medicus.core.errors import ApiError
from medicus.fhir.documents import DOCUMENT_KINDS
from medicus.iam.admin import NewInvitation
from medicus.iam.roles import Role
from medicus.web.chart import plot
from medicus.web.consents import DECISIONS, RESEARCH_MODULES
from medicus.web.doorway import Doorway
from medicus.web.pages import PortalPages
from medicus.web.service import Portal
from medicus.web.storage_pages import may_file_documents
from medicus.web.users import PortalUser

REASON_MIN, REASON_MAX = 10, 2000


class ChartPage:
    """The chart page of one patient for one user, with whatever a refused form adds."""

    def __init__(self, portal: Portal, pages: PortalPages) -> None:
        self._portal = portal
        self._pages = pages

    async def render(
        self, request: Request, user: PortalUser, patient_id: str, status: int = 200, **extra: Any
    ) -> Response:
        if not user.sees_patient_data:
            raise ApiError(403, "no clinical role")
        found = await self._portal.chart(user, patient_id)
        consents = await self._portal.consents.on_record(user, found.holders)
        research = await self._portal.consents.research_on_record(user, found.holders)
        context = {
            "chart": found,
            "consents": consents,
            "research": research,
            "modules": RESEARCH_MODULES,
            "invite_errors": set(),
            "plot": plot,
            "may_file": may_file_documents(user) and found.patient.holder.own,
            "document_kinds": DOCUMENT_KINDS,
            **extra,
        }
        return self._pages.render(request, "chart.html", status, user=user, **context)


def build_chart_router(doorway: Doorway, portal: Portal, pages: PortalPages) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    as_user = doorway.enter
    chart_page = ChartPage(portal, pages).render
    router.include_router(_consent_router(doorway, portal, pages))

    @router.get("/portal/patients/{patient_id}", response_class=HTMLResponse)
    async def chart(
        request: Request, patient_id: str, invited: bool = False, filed: bool = False
    ) -> Response:
        """`invited`: an invitation was just sent (its address stays out of the URL, which
        access logs keep); `filed`: a document was just filed."""

        async def show(request: Request, user: PortalUser) -> Response:
            return await chart_page(request, user, patient_id, invited=invited, filed=filed)

        return await as_user(request, show)

    @router.get("/portal/patients/{patient_id}/everything")
    async def everything(request: Request, patient_id: str) -> Response:
        async def download(request: Request, user: PortalUser) -> Response:
            if not user.sees_patient_data:
                raise ApiError(403, "no clinical role")
            bundle = await portal.everything(user, patient_id)
            name = "".join(c for c in patient_id if c.isalnum() or c in "-.")[:64]
            headers = {
                "Content-Disposition": f'attachment; filename="patient-{name}.json"',
                "Cache-Control": "no-store",
                "X-Content-Type-Options": "nosniff",
            }
            return Response(bundle, media_type="application/fhir+json", headers=headers)

        return await as_user(request, download)

    @router.post("/portal/patients/{patient_id}/break-glass", response_class=HTMLResponse)
    async def break_glass(request: Request, patient_id: str) -> Response:
        async def submit(request: Request, user: PortalUser, fields: dict[str, str]) -> Response:
            reason = " ".join(fields.get("reason", "").split())
            if not REASON_MIN <= len(reason) <= REASON_MAX:
                return await chart_page(
                    request, user, patient_id, 422, reason_error=True, reason=reason
                )
            await portal.open_break_glass(user, patient_id, reason)
            return RedirectResponse(f"/portal/patients/{patient_id}", status_code=303)

        return await doorway.submit(request, submit)

    return router


def _consent_router(doorway: Doorway, portal: Portal, pages: PortalPages) -> APIRouter:
    """Recording and withdrawing a patient's sharing consent."""
    router = APIRouter(include_in_schema=False)
    chart_page = ChartPage(portal, pages).render

    @router.post("/portal/patients/{patient_id}/consent", response_class=HTMLResponse)
    async def consent(request: Request, patient_id: str) -> Response:
        async def submit(request: Request, user: PortalUser, fields: dict[str, str]) -> Response:
            decision = fields.get("decision", "")
            unsigned = decision == "permit" and fields.get("signed") != "yes"
            if decision not in DECISIONS or unsigned:
                return await chart_page(request, user, patient_id, 422, consent_error=True)
            await portal.consents.record(user, patient_id, decision, utc_now())
            return RedirectResponse(f"/portal/patients/{patient_id}#consent", status_code=303)

        return await doorway.submit(request, submit)

    @router.post(
        "/portal/patients/{patient_id}/consent/{consent_id}/withdraw",
        response_class=HTMLResponse,
    )
    async def withdraw(request: Request, patient_id: str, consent_id: str) -> Response:
        async def submit(request: Request, user: PortalUser, _fields: dict[str, str]) -> Response:
            await portal.consents.withdraw(user, consent_id)
            return RedirectResponse(f"/portal/patients/{patient_id}#consent", status_code=303)

        return await doorway.submit(request, submit)

    @router.post("/portal/patients/{patient_id}/research", response_class=HTMLResponse)
    async def research(request: Request, patient_id: str) -> Response:
        async def submit(request: Request, user: PortalUser, fields: dict[str, str]) -> Response:
            modules = {m: fields[m] for m in RESEARCH_MODULES if fields.get(m) in DECISIONS}
            unsigned = "permit" in modules.values() and fields.get("signed") != "yes"
            if len(modules) != len(RESEARCH_MODULES) or unsigned:
                return await chart_page(
                    request, user, patient_id, 422, research_error=True, form=fields
                )
            await portal.consents.record_research(user, patient_id, modules, utc_now())
            return RedirectResponse(f"/portal/patients/{patient_id}#research", status_code=303)

        return await doorway.submit(request, submit)

    @router.post("/portal/patients/{patient_id}/invite", response_class=HTMLResponse)
    async def invite(request: Request, patient_id: str) -> Response:
        async def submit(request: Request, user: PortalUser, fields: dict[str, str]) -> Response:
            try:
                invited = NewInvitation.model_validate({**fields, "role": Role.PATIENT})
            except ValidationError as invalid:
                errors = {str(error["loc"][0]) for error in invalid.errors() if error["loc"]}
                return await chart_page(
                    request, user, patient_id, 422, invite_errors=errors, form=fields
                )
            await portal.invite_patient(user, patient_id, invited)
            return RedirectResponse(
                f"/portal/patients/{patient_id}?invited=1#invite", status_code=303
            )

        return await doorway.submit(request, submit)

    return router
