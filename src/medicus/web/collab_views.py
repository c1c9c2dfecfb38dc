"""The portal's pages of collaboration spaces as rendered responses (`SpaceViews`), shared by
their routes (`collab_routes`, `collab_file_routes`, `collab_space_routes`): each page is
rendered the same after a GET, and after a form the service refused (with the refusal's
status and a message next to the form, and what was typed)."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import Response

from medicus.core.errors import ApiError
from medicus.web.collab_pages import PortalCollab
from medicus.web.pages import PortalPages
from medicus.web.service import FoundPatient, Portal
from medicus.web.storage_pages import human_bytes
from medicus.web.users import PortalUser

SPACES = "/portal/spaces"
SPACE_UPLOADS = "/portal/space-uploads"
APP_PASSWORDS = "/portal/app-passwords"
EXPIRIES = (1, 7, 30, 90)
"""The days a share link may work, as the share dialog offers them (7 by default)."""
_PROBLEMS = {
    400: "invalid",
    403: "role",
    404: "unknown",
    409: "conflict",
    413: "too-large",
    423: "locked",
    507: "quota",
}
"""What a refused form is told, by the status the service refused it with."""


def problem_of(error: ApiError, allowed: tuple[int, ...] = (400, 403, 409, 413, 423, 507)) -> str:
    """A refusal that a form shows as a message on its own page (`allowed` statuses);
    anything else is raised again (and becomes the portal's page for it)."""
    if error.status not in allowed:
        raise error
    return _PROBLEMS[error.status]


def staff(user: PortalUser) -> None:
    """Spaces are for the staff of organisations (a patient has none)."""
    if user.is_patient:
        raise ApiError(403, "Spaces are for staff.")


def space_url(space_id: str, folder_id: str | None = None, done: str | None = None) -> str:
    query = [f"folder={folder_id}"] if folder_id else []
    query += [f"done={done}"] if done else []
    return f"{SPACES}/{space_id}" + ("?" + "&".join(query) if query else "")


def file_url(space_id: str, node_id: str, done: str | None = None) -> str:
    return f"{SPACES}/{space_id}/files/{node_id}" + (f"?done={done}" if done else "")


class SpaceViews:
    def __init__(self, collab: PortalCollab, portal: Portal, pages: PortalPages) -> None:
        self.collab = collab
        self.portal = portal
        self.pages = pages

    def render(
        self, request: Request, template: str, user: PortalUser, status: int, **context: Any
    ) -> Response:
        values = {"problem": None, "form": {}, "done": None, "created_link": None, **context}
        return self.pages.render(
            request, template, status, user=user, size=human_bytes, expiries=EXPIRIES, **values
        )

    async def spaces(
        self, request: Request, user: PortalUser, status: int = 200, **extra: Any
    ) -> Response:
        staff(user)
        mine, names = await self.collab.my_spaces(user)
        return self.render(
            request, "collab_spaces.html", user, status, spaces=mine, names=names, **extra
        )

    async def folder(
        self,
        request: Request,
        user: PortalUser,
        space_id: str,
        folder_id: str | None,
        status: int = 200,
        **extra: Any,
    ) -> Response:
        """A folder of a space; only its listing for htmx's request of `#listing`."""
        staff(user)
        page = await self.collab.folder(user, space_id, folder_id)
        listing_only = request.headers.get("hx-target") == "listing"
        template = "collab_listing.html" if listing_only else "collab_folder.html"
        return self.render(
            request,
            template,
            user,
            status,
            page=page,
            uploads=SPACE_UPLOADS,
            largest=self.collab.files.largest_file,
            **extra,
        )

    async def file(
        self,
        request: Request,
        user: PortalUser,
        space_id: str,
        node_id: str,
        status: int = 200,
        patient_query: str = "",
        **extra: Any,
    ) -> Response:
        """A file's page; a PDF's preview is framed (the portal's own frame, nothing else).
        With `patient_query`, the patients it finds are offered to link the file to."""
        staff(user)
        page = await self.collab.file(user, space_id, node_id)
        patient = None
        if page.node.patient_id and user.sees_patient_data:
            patient = await self.portal.patient(user, page.node.patient_id)
        candidates = await self._candidates(
            user, page.edits and not page.node.patient_id, patient_query
        )
        response = self.render(
            request,
            "collab_file.html",
            user,
            status,
            page=page,
            patient=patient,
            patient_query=patient_query,
            candidates=candidates,
            links_patients=page.edits and user.sees_patient_data,
            **extra,
        )
        if page.preview == "pdf":
            policy = response.headers["content-security-policy"]
            response.headers["content-security-policy"] = policy + "; frame-src 'self'"
        return response

    async def _candidates(
        self, user: PortalUser, may_link: bool, query: str
    ) -> list[FoundPatient] | None:
        """The patients a search on a file's page finds (None: no search asked or allowed)."""
        if not (may_link and user.sees_patient_data and query.strip()):
            return None
        return await self.portal.find_patients(user, query)

    async def settings(
        self, request: Request, user: PortalUser, space_id: str, status: int = 200, **extra: Any
    ) -> Response:
        staff(user)
        page = await self.collab.settings(user, space_id)
        return self.render(request, "collab_settings.html", user, status, page=page, **extra)

    async def members(
        self, request: Request, user: PortalUser, space_id: str, status: int = 200, **extra: Any
    ) -> Response:
        staff(user)
        page = await self.collab.members(user, space_id)
        return self.render(request, "collab_members.html", user, status, page=page, **extra)

    async def activity(
        self, request: Request, user: PortalUser, space_id: str, before: int | None
    ) -> Response:
        """The feed; only its entries for htmx's request of the next (older) ones."""
        staff(user)
        page = await self.collab.activity(user, space_id, before)
        more = request.headers.get("hx-request") and before is not None
        template = "collab_activity_entries.html" if more else "collab_activity.html"
        return self.render(request, template, user, 200, page=page)

    async def trash(
        self, request: Request, user: PortalUser, space_id: str, status: int = 200, **extra: Any
    ) -> Response:
        staff(user)
        page = await self.collab.trash(user, space_id)
        return self.render(request, "collab_trash.html", user, status, page=page, **extra)

    async def app_passwords(
        self, request: Request, user: PortalUser, status: int = 200, **extra: Any
    ) -> Response:
        staff(user)
        passwords, names = await self.collab.app_passwords_with_names(user)
        return self.render(
            request,
            "collab_app_passwords.html",
            user,
            status,
            passwords=passwords,
            names=names,
            webdav_url=self.collab.webdav_url,
            **{"created": None, **extra},
        )
