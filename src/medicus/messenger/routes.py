"""HTTP of the messenger's medicus side (bearer tokens of users): a login token for a Matrix
client, the caller's contact rules, the directory listing by organisation admins, and the
discovery document that points Matrix clients at medicus (the proxy is mounted in `app`)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from medicus.iam.bearer import bearer_principal
from medicus.iam.tokens import Principal, TokenService
from medicus.messenger.homeserver import LOGIN_TOKEN_TYPE
from medicus.messenger.service import Messenger

_NOT_STORED = {"Cache-Control": "no-store"}


class ContactRule(BaseModel):
    rule: Literal["block", "allow"]


class Listing(BaseModel):
    listed: bool


class RoomSubject(BaseModel):
    reference: str = Field(max_length=200)


class NewService(BaseModel):
    name: str = Field(max_length=200)
    specialty: str | None = Field(default=None, max_length=200)
    user_id: str = Field(max_length=64)


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

    router.include_router(_case_rooms(messenger, caller))
    router.include_router(_organisations(messenger, caller))
    return router


def _case_rooms(messenger: Messenger, caller: Any) -> APIRouter:
    router = APIRouter(tags=["messenger"])

    @router.put("/messenger/rooms/{room_id}/subject", status_code=204)
    async def link_room(
        room_id: str, subject: RoomSubject, who: Principal = Depends(caller)
    ) -> Response:
        """Make the room a case room about `reference` (Patient/…, Task/…, ServiceRequest/…),
        which the caller, a member of the room, may read."""
        await messenger.link_room(who, room_id, subject.reference)
        return Response(status_code=204)

    @router.get("/messenger/rooms/{room_id}/subject")
    async def room_subject(room_id: str, who: Principal = Depends(caller)) -> dict[str, str]:
        """What the case room is about, for members who may read it (else 404)."""
        return {"reference": await messenger.room_subject(who, room_id)}

    @router.delete("/messenger/rooms/{room_id}/subject", status_code=204)
    async def unlink_room(room_id: str, who: Principal = Depends(caller)) -> Response:
        await messenger.unlink_room(who, room_id)
        return Response(status_code=204)

    return router


def _organisations(messenger: Messenger, caller: Any) -> APIRouter:
    """What organisation admins decide: who and which services the directory lists."""
    router = APIRouter(tags=["messenger"])

    @router.put("/messenger/organisations/{organisation_id}/listing/{user_id}", status_code=204)
    async def set_listing(
        organisation_id: str, user_id: str, listing: Listing, who: Principal = Depends(caller)
    ) -> Response:
        await messenger.set_listed(who, organisation_id, user_id, listing.listed)
        return Response(status_code=204)

    @router.get("/messenger/organisations/{organisation_id}/services")
    async def services(organisation_id: str, who: Principal = Depends(caller)) -> dict[str, Any]:
        found = await messenger.services(who, organisation_id)
        return {
            "services": [
                {"id": s.id, "name": s.name, "specialty": s.specialty, "user_id": s.user_id}
                for s in found
            ]
        }

    @router.post("/messenger/organisations/{organisation_id}/services", status_code=201)
    async def add_service(
        organisation_id: str, new: NewService, who: Principal = Depends(caller)
    ) -> dict[str, str]:
        """List a service in the directory, reachable at the Matrix account of `user_id`."""
        service_id = await messenger.add_service(
            who, organisation_id, new.name, new.specialty, new.user_id
        )
        return {"id": service_id}

    @router.delete(
        "/messenger/organisations/{organisation_id}/services/{service_id}", status_code=204
    )
    async def remove_service(
        organisation_id: str, service_id: str, who: Principal = Depends(caller)
    ) -> Response:
        await messenger.remove_service(who, organisation_id, service_id)
        return Response(status_code=204)

    return router
