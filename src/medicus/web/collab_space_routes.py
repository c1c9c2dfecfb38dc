"""HTTP of what a space has besides its files: members (invite by e-mail with a role,
remove), its settings (name, description, trash retention; deleting it, confirmed by typing
its name), the activity feed, the trash (restore), share links of a file or folder (make one
with an expiry, an optional password and download limit; revoke), and the user's own app
passwords for WebDAV clients (`/portal/app-passwords`: the password is shown once)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from medicus.collab.records import Role
from medicus.core.errors import ApiError
from medicus.web.collab_views import (
    APP_PASSWORDS,
    EXPIRIES,
    SPACES,
    SpaceViews,
    file_url,
    problem_of,
    space_url,
    staff,
)
from medicus.web.doorway import Doorway
from medicus.web.users import PortalUser

SPACE = SPACES + "/{space_id}"
TabView = Callable[..., Awaitable[Response]]
"""A `SpaceViews` page of a space: (request, user, space id, **extra)."""
MAX_RECIPIENTS_FIELD = 2000


def build_space_router(doorway: Doorway, views: SpaceViews) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    for tab, view in (
        ("members", views.members),
        ("settings", views.settings),
        ("trash", views.trash),
    ):
        _tab(router, doorway, tab, view)
    _members(router, doorway, views)
    _settings(router, doorway, views)
    _feed_and_trash(router, doorway, views)
    _links(router, doorway, views)
    _app_passwords(router, doorway, views)
    return router


def _tab(router: APIRouter, doorway: Doorway, tab: str, view: TabView) -> None:
    """The page of a space's tab (`done`: what the form before it did)."""

    @router.get(f"{SPACE}/{tab}", response_class=HTMLResponse, name=f"space-{tab}")
    async def page(request: Request, space_id: str, done: str = "") -> Response:
        async def show(request: Request, user: PortalUser) -> Response:
            return await view(request, user, space_id, done=done[:20])

        return await doorway.enter(request, show)


def _members(router: APIRouter, doorway: Doorway, views: SpaceViews) -> None:
    collab = views.collab

    @router.post(SPACE + "/members", response_class=HTMLResponse)
    async def invite(request: Request, space_id: str) -> Response:
        async def submit(request: Request, user: PortalUser, fields: dict[str, str]) -> Response:
            staff(user)
            email, role = fields.get("email", "").strip()[:320], fields.get("role", "")
            try:
                if role not in tuple(Role) or not email:
                    raise ApiError(400, "invalid invitation")
                await collab.spaces.invite(user.principal, space_id, email, Role(role))
            except ApiError as refused:
                problem = "invite-" + problem_of(refused, (400, 404, 409))
                status = 422 if refused.status == 400 else refused.status
                return await views.members(
                    request, user, space_id, status, problem=problem, form=fields
                )
            done = "changed" if fields.get("change") else "invited"
            return RedirectResponse(f"{SPACES}/{space_id}/members?done={done}", status_code=303)

        return await doorway.submit(request, submit)

    @router.post(SPACE + "/members/{user_id}/remove", response_class=HTMLResponse)
    async def remove(request: Request, space_id: str, user_id: str) -> Response:
        async def submit(request: Request, user: PortalUser, fields: dict[str, str]) -> Response:
            staff(user)
            try:
                await collab.spaces.remove(user.principal, space_id, user_id)
            except ApiError as refused:
                problem = "remove-" + problem_of(refused, (409,))
                return await views.members(request, user, space_id, 409, problem=problem)
            if user_id == user.principal.subject:
                return RedirectResponse(f"{SPACES}?done=left", status_code=303)
            return RedirectResponse(f"{SPACES}/{space_id}/members?done=removed", status_code=303)

        return await doorway.submit(request, submit)


def _settings(router: APIRouter, doorway: Doorway, views: SpaceViews) -> None:
    """A space's name, description and trash retention, and deleting it (managers)."""
    collab = views.collab

    @router.post(SPACE + "/settings", response_class=HTMLResponse)
    async def change(request: Request, space_id: str) -> Response:
        async def submit(request: Request, user: PortalUser, fields: dict[str, str]) -> Response:
            staff(user)
            days = fields.get("trash_days", "").strip()
            try:
                if not days.isdigit() or len(days) > 3:
                    raise ApiError(400, "The trash keeps things for 1 to 365 days.")
                await collab.spaces.change(
                    user.principal,
                    space_id,
                    fields.get("name", "")[:300],
                    fields.get("description", "")[:3000],
                    int(days),
                )
            except ApiError as refused:
                problem = "settings-" + problem_of(refused, (400,))
                return await views.settings(
                    request, user, space_id, 422, problem=problem, form=fields
                )
            return RedirectResponse(f"{SPACES}/{space_id}/settings?done=saved", status_code=303)

        return await doorway.submit(request, submit)

    @router.post(SPACE + "/delete", response_class=HTMLResponse)
    async def delete(request: Request, space_id: str) -> Response:
        async def submit(request: Request, user: PortalUser, fields: dict[str, str]) -> Response:
            staff(user)
            space = await collab.spaces.get(user.principal, space_id)
            if fields.get("confirm", "").strip() != space.name:
                return await views.settings(
                    request, user, space_id, 422, problem="delete-invalid", form={}
                )
            await collab.spaces.delete(user.principal, space_id)
            return RedirectResponse(f"{SPACES}?done=deleted", status_code=303)

        return await doorway.submit(request, submit)


def _feed_and_trash(router: APIRouter, doorway: Doorway, views: SpaceViews) -> None:
    collab = views.collab

    @router.get(SPACE + "/activity", response_class=HTMLResponse)
    async def activity(request: Request, space_id: str, before: int | None = None) -> Response:
        async def show(request: Request, user: PortalUser) -> Response:
            return await views.activity(request, user, space_id, before)

        return await doorway.enter(request, show)

    @router.post(SPACE + "/trash/{node_id}/restore", response_class=HTMLResponse)
    async def restore(request: Request, space_id: str, node_id: str) -> Response:
        async def submit(request: Request, user: PortalUser, fields: dict[str, str]) -> Response:
            staff(user)
            try:
                await collab.tree.restore(user.principal, space_id, node_id)
            except ApiError as refused:
                problem = "restore-" + problem_of(refused, (403, 409))
                return await views.trash(request, user, space_id, refused.status, problem=problem)
            return RedirectResponse(f"{SPACES}/{space_id}/trash?done=restored", status_code=303)

        return await doorway.submit(request, submit)


def _link_terms(fields: dict[str, str]) -> tuple[int, str | None, int | None, list[str]]:
    """The days, password, download limit and addresses a share form asks for; 400 for
    ones that are not numbers or not offered."""
    days = int(fields["days"]) if fields.get("days", "").isdigit() else 0
    limit = fields.get("downloads", "").strip()
    if days not in EXPIRIES or (limit and not limit.isdigit()):
        raise ApiError(400, "invalid terms")
    addresses = fields.get("notify", "")[:MAX_RECIPIENTS_FIELD].replace(",", " ").split()
    return days, fields.get("password") or None, int(limit) if limit else None, addresses


def _links(router: APIRouter, doorway: Doorway, views: SpaceViews) -> None:
    collab = views.collab

    async def back(
        request: Request, user: PortalUser, space_id: str, node_id: str, status: int, **extra: str
    ) -> Response:
        """The page of the shared file or folder, its share dialog open."""
        node = await collab.files.node(user.principal, space_id, node_id)
        if node.is_folder:
            return await views.folder(request, user, space_id, node.id, status, **extra)
        return await views.file(request, user, space_id, node.id, status, **extra)

    @router.post(SPACE + "/links", response_class=HTMLResponse)
    async def create(request: Request, space_id: str) -> Response:
        async def submit(request: Request, user: PortalUser, fields: dict[str, str]) -> Response:
            staff(user)
            node_id = fields.get("node", "")[:64]
            try:
                days, password, limit, notify = _link_terms(fields)
                expires_at = collab.share_links.expiry_in(days)
                link, url = await collab.share_links.create(
                    user.principal, space_id, node_id, expires_at, password, limit, notify
                )
            except ApiError as refused:
                problem = "share-" + problem_of(refused, (400, 403))
                return await back(request, user, space_id, node_id, refused.status, problem=problem)
            extra = {"created_link": url, "done": "shared" if not link.unsent else "unsent"}
            return await back(request, user, space_id, node_id, 201, **extra)

        return await doorway.submit(request, submit)

    @router.post(SPACE + "/links/{link_id}/revoke", response_class=HTMLResponse)
    async def revoke(request: Request, space_id: str, link_id: str) -> Response:
        async def submit(request: Request, user: PortalUser, fields: dict[str, str]) -> Response:
            staff(user)
            await collab.share_links.revoke(user.principal, space_id, link_id)
            node = await collab.files.node(user.principal, space_id, fields.get("node") or None)
            if node.is_folder:
                return RedirectResponse(space_url(space_id, node.id, "revoked"), status_code=303)
            return RedirectResponse(file_url(space_id, node.id, "revoked"), status_code=303)

        return await doorway.submit(request, submit)


def _app_passwords(router: APIRouter, doorway: Doorway, views: SpaceViews) -> None:
    collab = views.collab

    @router.get(APP_PASSWORDS, response_class=HTMLResponse)
    async def passwords(request: Request, done: str = "") -> Response:
        async def show(request: Request, user: PortalUser) -> Response:
            return await views.app_passwords(request, user, done=done[:20])

        return await doorway.enter(request, show)

    @router.post(APP_PASSWORDS, response_class=HTMLResponse)
    async def create(request: Request) -> Response:
        async def submit(request: Request, user: PortalUser, fields: dict[str, str]) -> Response:
            staff(user)
            try:
                made = await collab.app_passwords.create(
                    user.principal, fields.get("label", "")[:200]
                )
            except ApiError as refused:
                problem = problem_of(refused, (400, 403, 409))
                return await views.app_passwords(
                    request, user, refused.status, problem=problem, form=fields
                )
            return await views.app_passwords(request, user, 201, created=made)

        return await doorway.submit(request, submit)

    @router.post(APP_PASSWORDS + "/{password_id}/revoke", response_class=HTMLResponse)
    async def revoke(request: Request, password_id: str) -> Response:
        async def submit(request: Request, user: PortalUser, fields: dict[str, str]) -> Response:
            staff(user)
            await collab.app_passwords.revoke(user.principal, password_id[:64])
            return RedirectResponse(f"{APP_PASSWORDS}?done=revoked", status_code=303)

        return await doorway.submit(request, submit)
