"""HTTP of the organisation administrator's page: the members of the organisation (invite,
change role, suspend or restore, reset the second factor). Each action calls identity's
`AdminService` as the logged-in admin, which decides (its own organisation only; platform
admins any) and audits; bad form values come back next to their field (422)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from medicus.core.errors import ApiError
from medicus.iam.admin import AdminService, NewInvitation
from medicus.iam.roles import ASSIGNABLE_ROLES, Role
from medicus.web.doorway import Doorway
from medicus.web.pages import PortalPages
from medicus.web.users import PortalUser

MEMBERS = "/portal/admin/members"
ACTIONS = ("role", "suspend", "restore", "reset-second-factor")


def build_admin_router(doorway: Doorway, admin: AdminService, pages: PortalPages) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    as_user = doorway.enter

    async def members_page(
        request: Request, user: PortalUser, status: int = 200, **extra: Any
    ) -> Response:
        members = await admin.members(user.principal, user.principal.organisation_id)
        roles = sorted(ASSIGNABLE_ROLES)
        context = {"members": members, "roles": roles, "invited": None, "errors": set(), **extra}
        return pages.render(request, "members.html", status, user=user, **context)

    @router.get(MEMBERS, response_class=HTMLResponse)
    async def members(request: Request, invited: str = "") -> Response:
        async def show(request: Request, user: PortalUser) -> Response:
            return await members_page(request, user, invited=invited[:200] or None)

        return await as_user(request, show)

    @router.post("/portal/admin/invitations", response_class=HTMLResponse)
    async def invite(request: Request) -> Response:
        async def submit(request: Request, user: PortalUser, fields: dict[str, str]) -> Response:
            try:
                wanted = NewInvitation.model_validate(fields)
            except ValidationError as invalid:
                errors = {str(error["loc"][0]) for error in invalid.errors() if error["loc"]}
                return await members_page(request, user, 422, errors=errors, form=fields)
            if wanted.role not in ASSIGNABLE_ROLES:
                return await members_page(request, user, 422, errors={"role"}, form=fields)
            organisation = user.principal.organisation_id
            await admin.invite(
                user.principal, organisation, wanted.email, wanted.display_name, wanted.role
            )
            return RedirectResponse(f"{MEMBERS}?invited={wanted.email}", status_code=303)

        return await doorway.submit(request, submit)

    @router.post("/portal/admin/members/{user_id}", response_class=HTMLResponse)
    async def change(request: Request, user_id: str) -> Response:
        async def submit(request: Request, user: PortalUser, fields: dict[str, str]) -> Response:
            action, organisation = fields.get("action", ""), user.principal.organisation_id
            role = fields.get("role", "")
            if action not in ACTIONS or (action == "role" and role not in ASSIGNABLE_ROLES):
                raise ApiError(400, "unknown action")
            if action == "reset-second-factor":
                await admin.reset_second_factor(user.principal, organisation, user_id)
            else:
                new_role = Role(role) if action == "role" else None
                active = None if action == "role" else action == "restore"
                await admin.update_member(user.principal, organisation, user_id, new_role, active)
            return RedirectResponse(MEMBERS, status_code=303)

        return await doorway.submit(request, submit)

    return router
