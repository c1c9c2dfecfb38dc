"""HTTP of administration: a JSON API for organisation and platform admins (bearer tokens with
the `admin` scope), and the page where an invited person accepts."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field

from medicus.core.errors import ApiError
from medicus.core.http import json_router
from medicus.iam.admin import AdminService, NewInvitation
from medicus.iam.bearer import bearer_principal
from medicus.iam.pages import HOME, Pages
from medicus.iam.passwords import PasswordRejected
from medicus.iam.roles import MfaPolicy, OrganisationType, Role
from medicus.iam.tokens import Principal, TokenService

# Printable text only: a control character (NUL above all, which PostgreSQL refuses in text)
# has no place in a name people read.
_PRINTABLE = r"^[^\x00-\x1f\x7f]*$"


class NewOrganisation(BaseModel):
    name: str = Field(min_length=1, max_length=200, pattern=_PRINTABLE)
    type: OrganisationType
    iknr: str | None = Field(default=None, pattern=r"^\d{9}$")
    telematik_id: str | None = Field(default=None, min_length=1, max_length=128, pattern=_PRINTABLE)
    mfa_policy: MfaPolicy = MfaPolicy.CLINICAL


class MemberChange(BaseModel):
    role: Role | None = None
    active: bool | None = None


def build_router(admin: AdminService, tokens: TokenService, pages: Pages) -> APIRouter:
    router = APIRouter()
    router.include_router(_api(admin, Depends(bearer_principal(tokens))))
    router.include_router(_invitation_pages(admin, pages))
    return router


def _api(admin: AdminService, caller: Any) -> APIRouter:
    """The JSON API: organisations, invitations, members."""
    api = json_router(prefix="/api/admin", tags=["administration"])

    @api.post("/organisations", status_code=201, summary="Create an organisation (platform)")
    async def create_organisation(
        body: NewOrganisation, principal: Principal = caller
    ) -> dict[str, str]:
        organisation_id = await admin.create_organisation(
            principal, body.name, body.type, body.iknr, body.telematik_id, body.mfa_policy
        )
        return {"id": organisation_id}

    @api.get("/organisations/{organisation_id}/members", summary="Members of an organisation")
    async def members(organisation_id: str, principal: Principal = caller) -> list[dict[str, Any]]:
        return await admin.members(principal, organisation_id)

    @api.post(
        "/organisations/{organisation_id}/invitations",
        status_code=201,
        summary="Invite someone by e-mail",
    )
    async def invite(
        organisation_id: str, body: NewInvitation, principal: Principal = caller
    ) -> dict[str, str]:
        invitation = await admin.invite(
            principal, organisation_id, body.email, body.display_name, body.role
        )
        return {
            "id": invitation.id,
            "email": invitation.email,
            "expires_at": invitation.expires_at.isoformat(),
        }

    @api.patch(
        "/organisations/{organisation_id}/members/{user_id}",
        status_code=204,
        summary="Change a member's role, suspend or restore them",
    )
    async def update_member(
        organisation_id: str, user_id: str, body: MemberChange, principal: Principal = caller
    ) -> None:
        await admin.update_member(principal, organisation_id, user_id, body.role, body.active)

    @api.post(
        "/organisations/{organisation_id}/members/{user_id}/reset-second-factor",
        status_code=204,
        summary="Remove a member's authenticator; they enrol anew",
    )
    async def reset_second_factor(
        organisation_id: str, user_id: str, principal: Principal = caller
    ) -> None:
        await admin.reset_second_factor(principal, organisation_id, user_id)

    return api


def _invitation_pages(admin: AdminService, pages: Pages) -> APIRouter:
    """The page where an invited person sets a password and so accepts."""
    pages_router = APIRouter(include_in_schema=False)

    @pages_router.get("/invitation", response_class=HTMLResponse)
    async def invitation_page(request: Request, token: str = "") -> Response:
        return pages.render(request, "invitation.html", token=token)

    @pages_router.post("/invitation", response_class=HTMLResponse)
    async def invitation_accept(request: Request) -> Response:
        fields = await pages.form(request)
        token = fields.get("token", "")
        if not pages.csrf_ok(request, fields):
            return pages.expired(request, "invitation.html", token=token)
        try:
            email = await admin.accept_invitation(token, fields.get("password", ""))
        except (ApiError, PasswordRejected) as refusal:
            status = refusal.status if isinstance(refusal, ApiError) else 422
            message = refusal.detail if isinstance(refusal, ApiError) else str(refusal)
            return pages.render(request, "invitation.html", status, token=token, error=message)
        return pages.render(request, "login.html", next=HOME, email=email)

    return pages_router
