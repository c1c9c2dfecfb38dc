"""HTTP of share links: the members' API under `/collab/spaces/{space}/links` (bearer
tokens), and the public pages and downloads at `/s/{token}` for whoever holds a link (no
login; HTML; a password form posts back to the link's address, CSRF-checked by double
submit). A visitor's password pass and download tickets are cookies bound to the link's
path. Access lines name the route template (`/s/{token}`), never the token."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from medicus.collab.routes import ROOT, Caller
from medicus.collab.share_link_pages import PUBLIC_HEADERS, SharePages
from medicus.collab.share_link_records import LinkRefused, ShareLink
from medicus.collab.share_links import (
    DEFAULT_DAYS,
    MAX_DAYS,
    MAX_DOWNLOADS,
    MAX_PASSWORD,
    MAX_RECIPIENTS,
    PASS_LIFETIME,
    TICKET_LIFETIME,
    ShareLinks,
)
from medicus.core.errors import ApiError
from medicus.core.i18n import translatable
from medicus.iam.bearer import bearer_principal
from medicus.iam.pages import Pages
from medicus.iam.tokens import Principal, TokenService
from medicus.storage import downloads

UNLOCK_COOKIE = "medicus_share_unlocked"
TICKET_COOKIE = "medicus_share_download"


class NewLink(BaseModel):
    """The terms of a new link: when it expires (in days, or at a moment; 7 days if
    neither), a password, how many downloads, and whom to mail it to."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    expires_in_days: int | None = Field(None, alias="expiresInDays", ge=1, le=MAX_DAYS)
    expires_at: AwareDatetime | None = Field(None, alias="expiresAt")
    password: str | None = Field(None, max_length=MAX_PASSWORD)
    max_downloads: int | None = Field(None, alias="maxDownloads", ge=1, le=MAX_DOWNLOADS)
    notify: list[Annotated[str, Field(max_length=320)]] = Field(
        default_factory=list, max_length=MAX_RECIPIENTS
    )


def build_router(share_links: ShareLinks, tokens: TokenService, pages: SharePages) -> APIRouter:
    router = APIRouter()
    _api_routes(router, share_links, bearer_principal(tokens))
    _page_routes(router, share_links, pages)
    _download_routes(router, share_links, pages)
    return router


def _api_routes(router: APIRouter, share_links: ShareLinks, caller: Caller) -> None:
    base = "/collab/spaces/{space_id}"

    @router.post(base + "/nodes/{node}/links", status_code=201, tags=["collab"])
    async def create(
        space_id: str, node: str, terms: NewLink, who: Principal = Depends(caller)
    ) -> JSONResponse:
        """A link to the file or folder; its `url` is answered this once."""
        if terms.expires_in_days is not None and terms.expires_at is not None:
            raise ApiError(400, "Give expiresInDays or expiresAt, not both.")
        expires_at = terms.expires_at or share_links.expiry_in(
            terms.expires_in_days or DEFAULT_DAYS
        )
        link, url = await share_links.create(
            who,
            space_id,
            None if node == ROOT else node,
            expires_at,
            terms.password,
            terms.max_downloads,
            terms.notify,
        )
        answer = {**link_json(link), "url": url, "unsent": list(link.unsent)}
        return JSONResponse(answer, status_code=201, headers={"Cache-Control": "no-store"})

    @router.get(base + "/links", tags=["collab"])
    async def listing(space_id: str, who: Principal = Depends(caller)) -> dict[str, Any]:
        return {"links": [link_json(link) for link in await share_links.list(who, space_id)]}

    @router.delete(base + "/links/{link_id}", status_code=204, tags=["collab"])
    async def revoke(space_id: str, link_id: str, who: Principal = Depends(caller)) -> Response:
        await share_links.revoke(who, space_id, link_id)
        return Response(status_code=204)


def _page_routes(router: APIRouter, share_links: ShareLinks, pages: SharePages) -> None:
    async def page(request: Request, token: str, folder_id: str | None) -> Response:
        try:
            view = await share_links.open(token, request.cookies.get(UNLOCK_COOKIE), folder_id)
        except LinkRefused as refused:
            return pages.refused(request, token, refused)
        return pages.view(request, token, view)

    @router.get("/s/{token}", include_in_schema=False)
    async def shared(token: str, request: Request) -> Response:
        """The shared file, or the shared folder's listing (or the password form)."""
        return await page(request, token, None)

    @router.get("/s/{token}/folders/{folder_id}", include_in_schema=False)
    async def folder(token: str, folder_id: str, request: Request) -> Response:
        """A folder at or below the shared one."""
        return await page(request, token, folder_id)

    @router.post("/s/{token}", include_in_schema=False)
    async def unlock(token: str, request: Request) -> Response:
        """The password: right, the link's page, with a pass for an hour; else the form."""
        form = await Pages.form(request)
        if not Pages.csrf_ok(request, form):
            expired = translatable("The form expired; please try again.")
            return pages.password(request, token, 400, expired)
        try:
            _, pass_value = await share_links.unlock(token, form.get("password", ""))
        except LinkRefused as refused:
            return pages.refused(request, token, refused)
        response = RedirectResponse(f"/s/{token}", status_code=303, headers=PUBLIC_HEADERS)
        _set_cookie(response, pages, UNLOCK_COOKIE, pass_value, PASS_LIFETIME, f"/s/{token}")
        return response


def _download_routes(router: APIRouter, share_links: ShareLinks, pages: SharePages) -> None:
    async def download(request: Request, token: str, node_id: str | None) -> Response:
        """The file's bytes (Range and conditions as for any stored object), counted
        against the link's downloads unless it continues a counted one."""
        try:
            shared = await share_links.fetch(token, request.cookies.get(UNLOCK_COOKIE), node_id)
            stored = dataclasses.replace(shared.stored, file_name=shared.node.name)
            plan = downloads.plan("GET", request.headers, stored)
            ticket = None
            if plan.status in (200, 206):
                partial = plan.status == 206
                ticket = await share_links.charge(
                    shared, request.cookies.get(TICKET_COOKIE), partial
                )
        except LinkRefused as refused:
            return pages.refused(request, token, refused)
        headers = {**plan.headers, **PUBLIC_HEADERS}
        if not plan.parts:
            response: Response = Response(status_code=plan.status, headers=headers)
        else:
            body = await downloads.content(share_links.storage, stored, plan)
            response = StreamingResponse(body, status_code=plan.status, headers=headers)
        if ticket is not None:
            path = request.url.path
            _set_cookie(response, pages, TICKET_COOKIE, ticket, TICKET_LIFETIME, path)
        return response

    @router.get("/s/{token}/download", include_in_schema=False)
    async def shared_file(token: str, request: Request) -> Response:
        return await download(request, token, None)

    @router.get("/s/{token}/download/{node_id}", include_in_schema=False)
    async def file_in_folder(token: str, node_id: str, request: Request) -> Response:
        return await download(request, token, node_id)


def _set_cookie(
    response: Response,
    pages: SharePages,
    name: str,
    value: str,
    lifetime: dt.timedelta,
    path: str,
) -> None:
    """A cookie of the link's visitor, sent only to the link's own paths."""
    response.set_cookie(
        name,
        value,
        max_age=int(lifetime.total_seconds()),
        path=path,
        httponly=True,
        samesite="lax",
        secure=pages.secure_cookies,
    )


def link_json(link: ShareLink) -> dict[str, Any]:
    return {
        "id": link.id,
        "space": link.space_id,
        "node": link.node_id,
        "nodeName": link.node_name,
        "nodeKind": link.node_kind,
        "createdBy": link.created_by,
        "createdAt": link.created_at.isoformat(),
        "expiresAt": link.expires_at.isoformat(),
        "password": link.has_password,
        "maxDownloads": link.max_downloads,
        "downloads": link.downloads,
        "revokedAt": link.revoked_at.isoformat() if link.revoked_at else None,
        "state": str(link.state),
    }
