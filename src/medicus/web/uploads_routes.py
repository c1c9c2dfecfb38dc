"""HTTP of the portal's storage: resumable uploads (the same tus protocol as the API's
`/storage/uploads`, at `/portal/uploads`, for the browser's session), filing a finished upload
as a document of a chart, downloading a document's bytes (the FHIR Binary read: `access` and
the audit trail as for the API), and the platform operator's storage page.

The browser's tus requests carry the session cookie, so each one that changes something
(POST, PATCH, DELETE) must also carry the CSRF token in `X-CSRF-Token` (double submit with
identity's cookie, as the forms do): another site's page cannot make a user's browser upload
or end an upload. Errors are problem+json (401 without a finished login, 403 without the
token), which tus clients show as they are."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from medicus.core.crypto import constant_time_equal
from medicus.core.errors import ApiError
from medicus.fhir.binary_http import binary_response
from medicus.fhir.documents import DOCUMENT_KINDS, TITLE_MAX
from medicus.iam.login import LoginService
from medicus.iam.pages import CSRF_COOKIE, SESSION_COOKIE
from medicus.iam.tokens import Principal
from medicus.storage.tus_routes import Caller, tus_router
from medicus.web.chart_routes import ChartPage
from medicus.web.doorway import Doorway
from medicus.web.pages import PortalPages
from medicus.web.service import Portal
from medicus.web.storage_pages import PortalStorage, human_bytes
from medicus.web.users import PortalUser, portal_user

UPLOADS = "/portal/uploads"
STORAGE_PAGE = "/portal/platform/storage"
CSRF_HEADER = "x-csrf-token"
_SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def session_caller(logins: LoginService) -> Caller:
    """Who sends a tus request of the portal: the user of the session cookie (401 without a
    finished login); a request that changes something needs the CSRF token too (403)."""

    async def caller(request: Request) -> Principal:
        user = portal_user(await logins.current(request.cookies.get(SESSION_COOKIE)))
        if user is None:
            raise ApiError(401, "Log in to the portal first.")
        if request.method not in _SAFE_METHODS:
            cookie = request.cookies.get(CSRF_COOKIE, "")
            sent = request.headers.get(CSRF_HEADER, "")
            if not cookie or not constant_time_equal(cookie, sent):
                raise ApiError(403, "The X-CSRF-Token header must carry the page's CSRF token.")
        return user.principal

    return caller


def build_storage_router(
    doorway: Doorway,
    logins: LoginService,
    storage: PortalStorage,
    portal: Portal,
    pages: PortalPages,
) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    router.include_router(tus_router(storage.uploads, session_caller(logins), UPLOADS))
    chart_page = ChartPage(portal, pages).render

    @router.post("/portal/patients/{patient_id}/documents", response_class=HTMLResponse)
    async def file_document(request: Request, patient_id: str) -> Response:
        async def submit(request: Request, user: PortalUser, fields: dict[str, str]) -> Response:
            if not user.sees_patient_data:
                raise ApiError(403, "no clinical role")
            kind, title = fields.get("kind", ""), " ".join(fields.get("title", "").split())
            if kind not in DOCUMENT_KINDS or not 1 <= len(title) <= TITLE_MAX:
                return await chart_page(request, user, patient_id, 422, document_error=True)
            await storage.file_document(user, patient_id, fields.get("object", ""), kind, title)
            return RedirectResponse(
                f"/portal/patients/{patient_id}?filed=1#section-DocumentReference",
                status_code=303,
            )

        return await doorway.submit(request, submit)

    @router.get("/portal/documents/{binary_id}")
    async def download(request: Request, binary_id: str) -> Response:
        async def send(request: Request, user: PortalUser) -> Response:
            if not user.sees_patient_data:
                raise ApiError(403, "no clinical role")
            return await binary_response(
                storage.stored_bytes, user.principal, binary_id, request.headers
            )

        return await doorway.enter(request, send)

    @router.get(STORAGE_PAGE, response_class=HTMLResponse)
    async def storage_page(request: Request) -> Response:
        async def show(request: Request, user: PortalUser) -> Response:
            overview = await storage.overview(user)
            return pages.render(
                request, "platform_storage.html", user=user, overview=overview, size=human_bytes
            )

        return await doorway.enter(request, show)

    return router
