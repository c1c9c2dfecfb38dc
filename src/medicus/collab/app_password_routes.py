"""HTTP of app passwords (`/collab/app-passwords`, bearer tokens of users): make one for a
device's WebDAV client (the password is in this one answer only), list and revoke them."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from medicus.collab.app_passwords import AppPassword, AppPasswords
from medicus.iam.bearer import bearer_principal
from medicus.iam.tokens import Principal, TokenService

_NOT_STORED = {"Cache-Control": "no-store"}


class NewAppPassword(BaseModel):
    label: str = Field(max_length=1000)


def build_router(passwords: AppPasswords, tokens: TokenService) -> APIRouter:
    caller = bearer_principal(tokens)
    router = APIRouter(prefix="/collab/app-passwords", tags=["collab"])

    @router.get("")
    async def mine(who: Principal = Depends(caller)) -> dict[str, Any]:
        return {"appPasswords": [app_password_json(found) for found in await passwords.list(who)]}

    @router.post("", status_code=201)
    async def create(new: NewAppPassword, who: Principal = Depends(caller)) -> JSONResponse:
        """A new app password for `label` (the device); `password` is shown this once."""
        made, secret = await passwords.create(who, new.label)
        body = {**app_password_json(made), "password": secret}
        return JSONResponse(body, status_code=201, headers=_NOT_STORED)

    @router.delete("/{password_id}", status_code=204)
    async def revoke(password_id: str, who: Principal = Depends(caller)) -> Response:
        await passwords.revoke(who, password_id)
        return Response(status_code=204)

    return router


def app_password_json(found: AppPassword) -> dict[str, Any]:
    return {
        "id": found.id,
        "label": found.label,
        "organisation": found.organisation_id,
        "createdAt": found.created_at.isoformat(),
        "lastUsedAt": found.last_used_at.isoformat() if found.last_used_at else None,
    }
