"""HTTP of a file in a space (`/portal/spaces/{space}/files/{file}`): its page, its bytes
(a download, or a preview), renaming, moving and copying it (a folder too), the trash,
restoring an older version, comments, the lock for editing, and its link to a patient.

Previews: only PNG, JPEG, GIF, WebP and PDF are ever answered inline (`?preview=1`), in a
sandbox (`Content-Security-Policy: sandbox`, `X-Content-Type-Options: nosniff`) that only
the portal itself may frame; every other type, HTML and SVG above all, is a download."""

from __future__ import annotations

import dataclasses

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from medicus.core.errors import ApiError
from medicus.storage import downloads
from medicus.web.collab_pages import PREVIEWED
from medicus.web.collab_views import SPACES, SpaceViews, file_url, problem_of, space_url, staff
from medicus.web.doorway import Doorway
from medicus.web.users import PortalUser

FILE = SPACES + "/{space_id}/files/{node_id}"
NODE = SPACES + "/{space_id}/nodes/{node_id}"
PREVIEW_POLICY = "default-src 'none'; frame-ancestors 'self'; sandbox"


def preview_headers(headers: dict[str, str], content_type: str) -> dict[str, str]:
    """The headers of a download, made a sandboxed inline preview if its type is one that
    is previewed (unchanged otherwise: still an attachment)."""
    if content_type.split(";", 1)[0].strip().lower() not in PREVIEWED:
        return headers
    disposition = headers.get("Content-Disposition", "attachment")
    return {
        **headers,
        "Content-Disposition": "inline" + disposition.removeprefix("attachment"),
        "Content-Security-Policy": PREVIEW_POLICY,
        "X-Content-Type-Options": "nosniff",
    }


def build_file_router(doorway: Doorway, views: SpaceViews) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    collab = views.collab

    @router.get(FILE, response_class=HTMLResponse)
    async def file(
        request: Request, space_id: str, node_id: str, done: str = "", patient: str = ""
    ) -> Response:
        async def show(request: Request, user: PortalUser) -> Response:
            return await views.file(
                request, user, space_id, node_id, done=done[:20], patient_query=patient[:200]
            )

        return await doorway.enter(request, show)

    @router.get(FILE + "/content")
    async def content(
        request: Request,
        space_id: str,
        node_id: str,
        version: int | None = None,
        preview: bool = False,
    ) -> Response:
        """The file's bytes (its current version or `version`): a read, audited as one."""

        async def send(request: Request, user: PortalUser) -> Response:
            staff(user)
            node, stored = await collab.files.open(user.principal, space_id, node_id, version)
            stored = dataclasses.replace(stored, file_name=node.name)
            download = downloads.plan("GET", request.headers, stored)
            headers = download.headers
            if preview and download.boundary is None:
                headers = preview_headers(headers, stored.content_type)
            if not download.parts:
                return Response(status_code=download.status, headers=headers)
            body = await downloads.content(collab.files.storage, stored, download)
            return StreamingResponse(body, status_code=download.status, headers=headers)

        return await doorway.enter(request, send)

    _changes(router, doorway, views)
    _editing(router, doorway, views)
    return router


def _changes(router: APIRouter, doorway: Doorway, views: SpaceViews) -> None:
    """Rename or move, and the trash, of a file or a folder."""
    collab = views.collab

    async def refused_page(
        request: Request,
        user: PortalUser,
        space_id: str,
        node_id: str,
        error: ApiError,
        act: str,
        fields: dict[str, str],
    ) -> Response:
        """The page the form came from (the file's, or the folder's), with the refusal and
        what was typed."""
        problem = f"{act}-{problem_of(error)}"
        node = await collab.files.node(user.principal, space_id, node_id)
        show = views.folder if node.is_folder else views.file
        return await show(
            request, user, space_id, node_id, error.status, problem=problem, form=fields
        )

    async def place(request: Request, space_id: str, node_id: str, act: str) -> Response:
        """Move or copy (`act`) to the folder and under the name of the form."""

        async def submit(request: Request, user: PortalUser, fields: dict[str, str]) -> Response:
            staff(user)
            name = fields.get("name", "")[:300] or None
            target = fields.get("parent") or None
            tree = collab.tree
            try:
                if act == "copy":
                    placed = await tree.copy(user.principal, space_id, node_id, target, name)
                else:
                    placed = await tree.move(user.principal, space_id, node_id, target, name)
            except ApiError as refused:
                return await refused_page(request, user, space_id, node_id, refused, act, fields)
            done = "copied" if act == "copy" else "moved"
            url = space_url if placed.is_folder else file_url
            return RedirectResponse(url(space_id, placed.id, done), status_code=303)

        return await doorway.submit(request, submit)

    @router.post(NODE + "/move", response_class=HTMLResponse)
    async def move(request: Request, space_id: str, node_id: str) -> Response:
        return await place(request, space_id, node_id, "move")

    @router.post(NODE + "/copy", response_class=HTMLResponse)
    async def copy(request: Request, space_id: str, node_id: str) -> Response:
        return await place(request, space_id, node_id, "copy")

    @router.post(NODE + "/trash", response_class=HTMLResponse)
    async def trash(request: Request, space_id: str, node_id: str) -> Response:
        async def submit(request: Request, user: PortalUser, fields: dict[str, str]) -> Response:
            staff(user)
            try:
                node = await collab.tree.trash(user.principal, space_id, node_id)
            except ApiError as refused:
                return await refused_page(
                    request, user, space_id, node_id, refused, "trash", fields
                )
            back = space_url(space_id, node.parent_id, "trashed")
            return RedirectResponse(back, status_code=303)

        return await doorway.submit(request, submit)


def _editing(router: APIRouter, doorway: Doorway, views: SpaceViews) -> None:
    """Versions, comments and the lock of a file."""
    collab = views.collab

    @router.post(FILE + "/versions/{number}/restore", response_class=HTMLResponse)
    async def restore_version(
        request: Request, space_id: str, node_id: str, number: int
    ) -> Response:
        async def submit(request: Request, user: PortalUser, fields: dict[str, str]) -> Response:
            staff(user)
            try:
                await collab.files.restore_version(user.principal, space_id, node_id, number)
            except ApiError as refused:
                problem = "restore-" + problem_of(refused)
                return await views.file(
                    request, user, space_id, node_id, refused.status, problem=problem
                )
            return RedirectResponse(file_url(space_id, node_id, "restored"), status_code=303)

        return await doorway.submit(request, submit)

    @router.post(FILE + "/comments", response_class=HTMLResponse)
    async def comment(request: Request, space_id: str, node_id: str) -> Response:
        async def submit(request: Request, user: PortalUser, fields: dict[str, str]) -> Response:
            staff(user)
            body = fields.get("body", "")[:6000]
            try:
                await collab.editing.comment(user.principal, space_id, node_id, body)
            except ApiError as refused:
                problem = "comment-" + problem_of(refused)
                return await views.file(
                    request, user, space_id, node_id, refused.status, problem=problem, form=fields
                )
            return RedirectResponse(
                file_url(space_id, node_id, "commented") + "#comments", status_code=303
            )

        return await doorway.submit(request, submit)

    @router.post(FILE + "/patient", response_class=HTMLResponse)
    async def link_patient(request: Request, space_id: str, node_id: str) -> Response:
        """Link the file to the patient chosen from a search (`patient`: the record's id), or
        unlink it (empty)."""

        async def submit(request: Request, user: PortalUser, fields: dict[str, str]) -> Response:
            staff(user)
            patient = fields.get("patient", "")[:64] or None
            try:
                await collab.editing.link_patient(user.principal, space_id, node_id, patient)
            except ApiError as refused:
                problem = "patient-" + problem_of(refused, (400, 403, 404, 409))
                return await views.file(
                    request, user, space_id, node_id, refused.status, problem=problem
                )
            done = "linked" if patient else "unlinked"
            return RedirectResponse(file_url(space_id, node_id, done) + "#patient", 303)

        return await doorway.submit(request, submit)

    @router.post(FILE + "/lock", response_class=HTMLResponse)
    async def lock(request: Request, space_id: str, node_id: str) -> Response:
        async def submit(request: Request, user: PortalUser, fields: dict[str, str]) -> Response:
            staff(user)
            try:
                if fields.get("action") == "unlock":
                    await collab.editing.unlock(user.principal, space_id, node_id)
                    done = "unlocked"
                else:
                    await collab.editing.lock(user.principal, space_id, node_id)
                    done = "locked"
            except ApiError as refused:
                problem = "lock-" + problem_of(refused)
                return await views.file(
                    request, user, space_id, node_id, refused.status, problem=problem
                )
            return RedirectResponse(file_url(space_id, node_id, done), status_code=303)

        return await doorway.submit(request, submit)
