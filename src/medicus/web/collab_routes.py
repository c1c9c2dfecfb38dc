"""HTTP of the portal's collaboration spaces (`/portal/spaces`, docs/portal.md): the user's
spaces and a new one, search across them, each space as a file browser (a folder's listing
with breadcrumbs, new folders, drag-and-drop uploads over tus at `/portal/space-uploads`,
filed into the folder when complete), a file's page (`collab_file_routes`), the space's
members, activity, trash and share links, and the user's app passwords for WebDAV clients
(`collab_space_routes`).

Every handler calls the collaboration services as the user (`collab_pages.PortalCollab`),
which decide and audit as over the API; what they refuse becomes the portal's 403 or 404
page (`Doorway`), a form's refused value a message on the page it came from (400, 409, 423,
507: nothing changed). Forms post with the page's CSRF token, the tus requests carry it in
a header (`uploads_routes.session_caller`). Spaces are for staff: a patient gets 403."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from medicus.core.errors import ApiError
from medicus.iam.login import LoginService
from medicus.storage.tus_routes import tus_router
from medicus.web.collab_file_routes import build_file_router
from medicus.web.collab_pages import PortalCollab
from medicus.web.collab_space_routes import build_space_router
from medicus.web.collab_views import (
    SPACE_UPLOADS,
    SPACES,
    SpaceViews,
    file_url,
    problem_of,
    space_url,
    staff,
)
from medicus.web.doorway import Doorway
from medicus.web.pages import PortalPages
from medicus.web.service import Portal
from medicus.web.uploads_routes import session_caller
from medicus.web.users import PortalUser

MAX_QUERY = 200


def build_collab_router(
    doorway: Doorway,
    logins: LoginService,
    collab: PortalCollab,
    portal: Portal,
    pages: PortalPages,
) -> APIRouter:
    """Every page of the spaces, and the tus endpoint of their uploads."""
    views = SpaceViews(collab, portal, pages)
    router = APIRouter(include_in_schema=False)
    router.include_router(tus_router(collab.uploads, session_caller(logins), SPACE_UPLOADS))
    router.include_router(_spaces(doorway, views))
    router.include_router(_folders(doorway, views))
    router.include_router(build_file_router(doorway, views))
    router.include_router(build_space_router(doorway, views))
    return router


def _spaces(doorway: Doorway, views: SpaceViews) -> APIRouter:
    """The user's spaces, a new space, and search across them."""
    router = APIRouter(include_in_schema=False)
    collab = views.collab

    @router.get(SPACES, response_class=HTMLResponse)
    async def spaces(request: Request, done: str = "") -> Response:
        async def show(request: Request, user: PortalUser) -> Response:
            return await views.spaces(request, user, done=done[:20])

        return await doorway.enter(request, show)

    @router.post(SPACES, response_class=HTMLResponse)
    async def create(request: Request) -> Response:
        async def submit(request: Request, user: PortalUser, fields: dict[str, str]) -> Response:
            staff(user)
            name, description = fields.get("name", "")[:300], fields.get("description", "")
            try:
                space = await collab.spaces.create(user.principal, name, description[:2000])
            except ApiError as refused:
                problem = problem_of(refused, (400, 403))
                return await views.spaces(
                    request, user, refused.status, problem=problem, form=fields
                )
            return RedirectResponse(space_url(space.id), status_code=303)

        return await doorway.submit(request, submit)

    @router.get(SPACES + "/search", response_class=HTMLResponse)
    async def search(request: Request, q: str = "") -> Response:
        async def show(request: Request, user: PortalUser) -> Response:
            staff(user)
            query = q[:MAX_QUERY]
            found, names = await collab.search(user, query)
            fragment = request.headers.get("hx-target") == "search-results"
            template = "collab_search_results.html" if fragment else "collab_search.html"
            return views.render(request, template, user, 200, query=query, found=found, names=names)

        return await doorway.enter(request, show)

    return router


def _folders(doorway: Doorway, views: SpaceViews) -> APIRouter:
    """A space's folder (its listing), new folders, filing an upload into a folder."""
    router = APIRouter(include_in_schema=False)
    collab = views.collab

    @router.get(SPACES + "/{space_id}", response_class=HTMLResponse)
    async def folder(request: Request, space_id: str, folder: str = "", done: str = "") -> Response:
        async def show(request: Request, user: PortalUser) -> Response:
            return await views.folder(request, user, space_id, folder or None, done=done[:20])

        return await doorway.enter(request, show)

    @router.post(SPACES + "/{space_id}/folders", response_class=HTMLResponse)
    async def create_folder(request: Request, space_id: str) -> Response:
        async def submit(request: Request, user: PortalUser, fields: dict[str, str]) -> Response:
            staff(user)
            parent = fields.get("parent") or None
            name = fields.get("name", "")[:300]
            try:
                await collab.tree.create_folder(user.principal, space_id, parent, name)
            except ApiError as refused:
                problem = "folder-" + problem_of(refused)
                return await views.folder(
                    request, user, space_id, parent, refused.status, problem=problem, form=fields
                )
            return RedirectResponse(space_url(space_id, parent, "folder"), status_code=303)

        return await doorway.submit(request, submit)

    @router.post(SPACES + "/{space_id}/files")
    async def file_upload(request: Request, space_id: str) -> Response:
        """File the user's finished upload (its id, or its tus address) into the folder:
        201 with the file's page as Location (the page's script refreshes the listing)."""

        async def submit(request: Request, user: PortalUser, fields: dict[str, str]) -> Response:
            staff(user)
            upload = fields.get("upload", "").rstrip("/").rpartition("/")[2]
            folder_id = fields.get("folder") or None
            node = await collab.uploads.finish(user.principal, space_id, folder_id, upload)
            return Response(status_code=201, headers={"Location": file_url(space_id, node.id)})

        return await doorway.submit(request, submit)

    return router
