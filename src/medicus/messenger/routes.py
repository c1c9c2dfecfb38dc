"""HTTP of the messenger's medicus side (bearer tokens of users): a login token for a Matrix
client, the caller's contact rules, the directory listing by organisation admins, and the
discovery document that points Matrix clients at medicus (the proxy is mounted in `app`)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from medicus.iam.bearer import bearer_principal
from medicus.iam.tokens import Principal, TokenService
from medicus.messenger.homeserver import LOGIN_TOKEN_TYPE
from medicus.messenger.service import Messenger

_NOT_STORED = {"Cache-Control": "no-store"}


class ContactRule(BaseModel):
    rule: Literal["block", "allow"]


class Listing(BaseModel):
    listed: bool


def build_router(messenger: Messenger, tokens: TokenService) -> APIRouter:
    caller = bearer_principal(tokens)
    router = APIRouter(tags=["messenger"])
    homeserver = messenger.homeserver

    @router.get("/.well-known/matrix/client", include_in_schema=False)
    async def client_discovery() -> JSONResponse:
        body = {"m.homeserver": {"base_url": homeserver.public_url}}
        return JSONResponse(body, headers={"Access-Control-Allow-Origin": "*"})

    @router.post("/messenger/login-token")
    async def login_token(who: Principal = Depends(caller)) -> JSONResponse:
        """A login token for the caller's Matrix account: good once, for a minute. Log in with
        `{"type": "org.matrix.login.jwt", "token": …}` at `homeserver`."""
        issued = await messenger.issue_login(who)
        body = {
            "type": LOGIN_TOKEN_TYPE,
            "token": issued.token,
            "user_id": issued.matrix_id,
            "expires_in": issued.expires_in,
            "homeserver": homeserver.public_url,
        }
        return JSONResponse(body, headers=_NOT_STORED)

    @router.get("/messenger/contacts")
    async def contacts(who: Principal = Depends(caller)) -> dict[str, Any]:
        rules = await messenger.contact_rules(who)
        return {"contacts": [{"user_id": k, "rule": v} for k, v in rules.items()]}

    @router.put("/messenger/contacts/{contact}", status_code=204)
    async def set_contact(
        contact: str, rule: ContactRule, who: Principal = Depends(caller)
    ) -> Response:
        await messenger.set_contact_rule(who, contact, rule.rule)
        return Response(status_code=204)

    @router.delete("/messenger/contacts/{contact}", status_code=204)
    async def forget_contact(contact: str, who: Principal = Depends(caller)) -> Response:
        await messenger.set_contact_rule(who, contact, None)
        return Response(status_code=204)

    @router.put("/messenger/organisations/{organisation_id}/listing/{user_id}", status_code=204)
    async def set_listing(
        organisation_id: str, user_id: str, listing: Listing, who: Principal = Depends(caller)
    ) -> Response:
        await messenger.set_listed(who, organisation_id, user_id, listing.listed)
        return Response(status_code=204)

    return router
