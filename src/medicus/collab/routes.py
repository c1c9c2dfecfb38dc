"""HTTP of the collaboration spaces (`/collab`, bearer tokens of users): spaces and members,
folders and files by id, file contents at `/collab/content` (each PUT a new version, its body
streamed to storage; GET with Range and ETag),
move, copy, trash, versions, locks, comments, patient links, the activity feed and search.
Anyone who is not a member of a space gets 404 for everything in it. WebDAV is `/dav`."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field

from medicus.collab.editing import Editing
from medicus.collab.files import Files
from medicus.collab.records import Activity, Comment, Member, Node, Role, Space, Version
from medicus.collab.service import Spaces
from medicus.collab.tree import Tree
from medicus.core.errors import ApiError
from medicus.iam.bearer import bearer_principal
from medicus.iam.tokens import Principal, TokenService
from medicus.storage import downloads
from medicus.storage.routes import content_length, declared_type

Caller = Callable[[Request], Awaitable[Principal]]
ROOT = "root"
"""The id by which a space's top folder may be named."""


class NewSpace(BaseModel):
    name: str = Field(max_length=200)
    description: str = Field("", max_length=2000)


class SpaceChange(BaseModel):
    name: str | None = Field(None, max_length=200)
    description: str | None = Field(None, max_length=2000)
    trashDays: int | None = Field(None, ge=1, le=365)


class Invitation(BaseModel):
    email: str = Field(max_length=320)
    role: Role = Role.VIEWER


class NewFolder(BaseModel):
    name: str = Field(max_length=10_000)


class Placement(BaseModel):
    """Where a node moves or is copied to: another folder and/or another name."""

    parent: str | None = Field(None, max_length=64)
    name: str | None = Field(None, max_length=10_000)
    replace: bool = False


class NewComment(BaseModel):
    body: str = Field(max_length=5000)


class PatientLink(BaseModel):
    patient: str | None = Field(None, max_length=64)


class LockRequest(BaseModel):
    seconds: int = Field(1800, ge=60, le=86400)


def build_router(
    spaces: Spaces, files: Files, tree: Tree, editing: Editing, tokens: TokenService
) -> APIRouter:
    caller = bearer_principal(tokens)
    router = APIRouter(prefix="/collab", tags=["collab"])
    _space_routes(router, spaces, caller)
    _tree_routes(router, files, tree, caller)
    _content_routes(router, files, caller)
    _editing_routes(router, files, editing, caller)
    return router


def _space_routes(router: APIRouter, spaces: Spaces, caller: Caller) -> None:
    @router.post("/spaces", status_code=201)
    async def create_space(new: NewSpace, who: Principal = Depends(caller)) -> JSONResponse:
        space = await spaces.create(who, new.name, new.description)
        return JSONResponse(space_json(space), status_code=201)

    @router.get("/spaces")
    async def my_spaces(who: Principal = Depends(caller)) -> dict[str, Any]:
        return {"spaces": [space_json(space) for space in await spaces.mine(who)]}

    @router.get("/spaces/{space_id}")
    async def one_space(space_id: str, who: Principal = Depends(caller)) -> dict[str, Any]:
        return space_json(await spaces.get(who, space_id))

    @router.patch("/spaces/{space_id}")
    async def change_space(
        space_id: str, change: SpaceChange, who: Principal = Depends(caller)
    ) -> dict[str, Any]:
        changed = await spaces.change(
            who, space_id, change.name, change.description, change.trashDays
        )
        return space_json(changed)

    @router.delete("/spaces/{space_id}", status_code=204)
    async def delete_space(space_id: str, who: Principal = Depends(caller)) -> Response:
        await spaces.delete(who, space_id)
        return Response(status_code=204)

    @router.get("/spaces/{space_id}/members")
    async def members(space_id: str, who: Principal = Depends(caller)) -> dict[str, Any]:
        return {"members": [member_json(m) for m in await spaces.members(who, space_id)]}

    @router.put("/spaces/{space_id}/members")
    async def invite(
        space_id: str, invitation: Invitation, who: Principal = Depends(caller)
    ) -> dict[str, Any]:
        member = await spaces.invite(who, space_id, invitation.email, invitation.role)
        return member_json(member)

    @router.delete("/spaces/{space_id}/members/{user_id}", status_code=204)
    async def remove(space_id: str, user_id: str, who: Principal = Depends(caller)) -> Response:
        await spaces.remove(who, space_id, user_id)
        return Response(status_code=204)

    @router.get("/spaces/{space_id}/activity")
    async def activity(
        space_id: str, before: int | None = None, limit: int = 50, who: Principal = Depends(caller)
    ) -> dict[str, Any]:
        entries = await spaces.activity(who, space_id, before, limit)
        return {"activity": [activity_json(entry) for entry in entries]}


def _tree_routes(router: APIRouter, files: Files, tree: Tree, caller: Caller) -> None:
    @router.get("/spaces/{space_id}/nodes/{node}")
    async def describe(space_id: str, node: str, who: Principal = Depends(caller)) -> JSONResponse:
        found = await files.node(who, space_id, _node(node))
        return JSONResponse(node_json(found), headers={"ETag": found.etag})

    @router.get("/spaces/{space_id}/nodes/{node}/children")
    async def children(
        space_id: str, node: str, who: Principal = Depends(caller)
    ) -> dict[str, Any]:
        folder, found = await files.listing(who, space_id, _node(node))
        return {"folder": node_json(folder), "children": [node_json(child) for child in found]}

    @router.post("/spaces/{space_id}/nodes/{node}/folders", status_code=201)
    async def create_folder(
        space_id: str, node: str, new: NewFolder, who: Principal = Depends(caller)
    ) -> JSONResponse:
        folder = await tree.create_folder(who, space_id, _node(node), new.name)
        return JSONResponse(node_json(folder), status_code=201)

    @router.patch("/spaces/{space_id}/nodes/{node}")
    async def move(
        space_id: str, node: str, placement: Placement, who: Principal = Depends(caller)
    ) -> dict[str, Any]:
        moved = await tree.move(
            who, space_id, node, placement.parent, placement.name, placement.replace
        )
        return node_json(moved)

    @router.post("/spaces/{space_id}/nodes/{node}/copy", status_code=201)
    async def copy(
        space_id: str, node: str, placement: Placement, who: Principal = Depends(caller)
    ) -> JSONResponse:
        copied = await tree.copy(who, space_id, node, placement.parent, placement.name)
        return JSONResponse(node_json(copied), status_code=201)

    @router.delete("/spaces/{space_id}/nodes/{node}", status_code=204)
    async def trash(space_id: str, node: str, who: Principal = Depends(caller)) -> Response:
        await tree.trash(who, space_id, node)
        return Response(status_code=204)

    @router.get("/spaces/{space_id}/trash")
    async def trash_list(space_id: str, who: Principal = Depends(caller)) -> dict[str, Any]:
        return {"trash": [node_json(node) for node in await tree.trash_list(who, space_id)]}

    @router.post("/spaces/{space_id}/trash/{node}/restore")
    async def restore(space_id: str, node: str, who: Principal = Depends(caller)) -> dict[str, Any]:
        return node_json(await tree.restore(who, space_id, node))


def _content_routes(router: APIRouter, files: Files, caller: Caller) -> None:
    @router.put("/content/{space_id}/{node}/{name}")
    async def write(
        space_id: str, node: str, name: str, request: Request, who: Principal = Depends(caller)
    ) -> JSONResponse:
        """The request's body as the file `name` in folder `node`: a new file (201) or a
        new version (200). If-Match: the version it replaces; Lock-Token: the caller's lock."""
        size = content_length(request.headers, files.largest_file)
        written, created = await files.write(
            who,
            space_id,
            _node(node),
            name,
            size,
            declared_type(request.headers),
            request.stream(),
            lock_token=_lock_token(request),
            if_match=request.headers.get("if-match"),
        )
        status = 201 if created else 200
        return JSONResponse(node_json(written), status_code=status, headers={"ETag": written.etag})

    @router.get("/content/{space_id}/{node}", operation_id="read_collab_file")
    @router.head("/content/{space_id}/{node}", operation_id="head_collab_file")
    async def content(
        space_id: str,
        node: str,
        request: Request,
        version: int | None = None,
        who: Principal = Depends(caller),
    ) -> Response:
        found, stored = await files.open(who, space_id, node, version)
        stored = dataclasses.replace(stored, file_name=found.name)
        download = downloads.plan(request.method, request.headers, stored)
        if not download.parts:
            return Response(status_code=download.status, headers=download.headers)
        body = await downloads.content(files.storage, stored, download)
        return StreamingResponse(body, status_code=download.status, headers=download.headers)


def _editing_routes(router: APIRouter, files: Files, editing: Editing, caller: Caller) -> None:
    @router.get("/spaces/{space_id}/nodes/{node}/versions")
    async def versions(
        space_id: str, node: str, who: Principal = Depends(caller)
    ) -> dict[str, Any]:
        found = await files.versions(who, space_id, node)
        return {"versions": [version_json(version) for version in found]}

    @router.post("/spaces/{space_id}/nodes/{node}/versions/{number}/restore")
    async def restore_version(
        space_id: str, node: str, number: int, who: Principal = Depends(caller)
    ) -> dict[str, Any]:
        return node_json(await files.restore_version(who, space_id, node, number))

    @router.post("/spaces/{space_id}/nodes/{node}/lock")
    async def lock(
        space_id: str, node: str, wanted: LockRequest, who: Principal = Depends(caller)
    ) -> dict[str, Any]:
        held = await editing.lock(who, space_id, node, wanted.seconds)
        return {"token": held.token, "expiresAt": held.expires_at.isoformat()}

    @router.delete("/spaces/{space_id}/nodes/{node}/lock", status_code=204)
    async def unlock(space_id: str, node: str, who: Principal = Depends(caller)) -> Response:
        await editing.unlock(who, space_id, node)
        return Response(status_code=204)

    @router.get("/spaces/{space_id}/nodes/{node}/comments")
    async def comments(
        space_id: str, node: str, who: Principal = Depends(caller)
    ) -> dict[str, Any]:
        found = await editing.comments(who, space_id, node)
        return {"comments": [comment_json(comment) for comment in found]}

    @router.post("/spaces/{space_id}/nodes/{node}/comments", status_code=201)
    async def comment(
        space_id: str, node: str, new: NewComment, who: Principal = Depends(caller)
    ) -> JSONResponse:
        written = await editing.comment(who, space_id, node, new.body)
        return JSONResponse(comment_json(written), status_code=201)

    @router.put("/spaces/{space_id}/nodes/{node}/patient")
    async def link_patient(
        space_id: str, node: str, link: PatientLink, who: Principal = Depends(caller)
    ) -> dict[str, Any]:
        return node_json(await editing.link_patient(who, space_id, node, link.patient))

    @router.get("/search")
    async def search(
        q: str = "",
        type: str | None = None,
        owner: str | None = None,
        since: dt.datetime | None = None,
        who: Principal = Depends(caller),
    ) -> dict[str, Any]:
        """Files and folders of the caller's spaces: every word of `q` in the name or the
        text, of a media `type` (a prefix: `image/`), created by user `owner`, changed
        `since`."""
        if len(q) > 500:
            raise ApiError(400, "A search has at most 500 characters.")
        found = await files.search(who, q, type, owner, since)
        return {"results": [node_json(node) for node in found]}


def _node(given: str) -> str | None:
    """A node's id in a path; None for the space's top folder (`root`)."""
    return None if given == ROOT else given


def _lock_token(request: Request) -> str | None:
    """The lock token a request presents: `Lock-Token` (this API) or WebDAV's `If` header."""
    token = request.headers.get("lock-token", "").strip().strip("<>")
    return token or None


def space_json(space: Space) -> dict[str, Any]:
    return {
        "id": space.id,
        "name": space.name,
        "description": space.description,
        "organisation": space.organisation_id,
        "root": space.root_id,
        "role": str(space.role),
        "trashDays": space.trash_days,
        "createdBy": space.created_by,
        "createdAt": space.created_at.isoformat(),
    }


def member_json(member: Member) -> dict[str, Any]:
    return {
        "user": member.user_id,
        "name": member.display_name,
        "email": member.email,
        "role": str(member.role),
        "addedAt": member.added_at.isoformat(),
    }


def node_json(node: Node) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "id": node.id,
        "kind": node.kind,
        "name": node.name,
        "parent": node.parent_id,
        "createdBy": node.created_by,
        "createdAt": node.created_at.isoformat(),
        "updatedBy": node.updated_by,
        "updatedAt": node.updated_at.isoformat(),
    }
    if not node.is_folder:
        answer |= {
            "version": node.version,
            "size": node.size,
            "contentType": node.content_type,
            "sha256": node.sha256,
            "patient": node.patient_id,
        }
    if node.deleted_at is not None:
        answer["deletedAt"] = node.deleted_at.isoformat()
    return answer


def version_json(version: Version) -> dict[str, Any]:
    return {
        "number": version.number,
        "size": version.size,
        "sha256": version.sha256,
        "contentType": version.content_type,
        "createdBy": version.created_by,
        "createdAt": version.created_at.isoformat(),
        "restoredFrom": version.restored_from,
    }


def comment_json(comment: Comment) -> dict[str, Any]:
    return {
        "id": comment.id,
        "author": comment.author,
        "body": comment.body,
        "createdAt": comment.created_at.isoformat(),
    }


def activity_json(entry: Activity) -> dict[str, Any]:
    return {
        "id": entry.id,
        "node": entry.node_id,
        "actor": entry.actor,
        "action": entry.action,
        "summary": entry.summary,
        "at": entry.at.isoformat(),
    }
