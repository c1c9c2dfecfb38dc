"""What `/dav/` serves (`SpacesProvider`, WsgiDAV's provider): the caller's spaces as folders
(`TopFolder`), and in each the space's tree (`webdav_resources`).

A space is found by the folder name `/dav/` lists it under, or by its id (a member's alias,
and how a space someone is not a member of is refused: 404, recorded by `SpaceGate` as what
the request was about to do)."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from wsgidav import util
from wsgidav.dav_error import DAVError
from wsgidav.dav_provider import DAVCollection, DAVProvider

from medicus.collab.records import Role, Space
from medicus.collab.webdav_context import DavRequest, is_space_id
from medicus.collab.webdav_resources import DavServices, Folder, listed_in_depth, resource_of

_ACTIONS = {
    "PUT": "collab.write",
    "MKCOL": "collab.write",
    "PROPPATCH": "collab.write",
    "DELETE": "collab.delete",
    "MOVE": "collab.move",
    "COPY": "collab.copy",
    "LOCK": "collab.lock",
    "UNLOCK": "collab.unlock",
}
"""What a request with a space's id in its path is recorded as when the space refuses it."""


class SpacesProvider(DAVProvider):  # type: ignore[misc]
    """The one provider, for `/` below the mount path: every request is the caller's own
    (`DavRequest.current()`), so one provider serves everyone."""

    def __init__(self, services: DavServices) -> None:
        super().__init__()
        self.verbose = 0  # WsgiDAV prints property errors with their paths from 2 on
        self.services = services

    def is_readonly(self) -> bool:
        return False

    def custom_request_handler(
        self, environ: dict[str, Any], start_response: Any, default_handler: Any
    ) -> Any:
        """GET and HEAD of a folder answer with a short page that points to the portal,
        instead of WsgiDAV's 403 (its directory browser is off: the portal shows spaces)."""
        if environ["REQUEST_METHOD"] in ("GET", "HEAD"):
            found = self.get_resource_inst(environ["PATH_INFO"], environ)
            if found is not None and found.is_collection:
                return _folder_page(environ, start_response)
        return default_handler(environ, start_response)

    def get_resource_inst(self, path: str | None, environ: dict[str, Any]) -> Any:
        """The resource at `path` (unquoted, below `/dav`); None if nothing is there in a
        space (PUT and MKCOL create it then) or above `/dav/` (WsgiDAV's parent of the top
        is None), 404 for a space the caller is not in. What a GET or HEAD resolves is
        resolved once (they change nothing)."""
        if path is None:
            return None
        if environ["REQUEST_METHOD"] not in ("GET", "HEAD"):
            return self._resolve(path, environ)
        resolved = environ.setdefault("medicus.dav.resolved", {})
        if path not in resolved:
            resolved[path] = self._resolve(path, environ)
        return resolved[path]

    def _resolve(self, path: str, environ: dict[str, Any]) -> Any:
        request = DavRequest.current()
        names = [name for name in path.split("/") if name]
        if not names:
            return TopFolder(path, environ, self.services)
        if len(names) == 1 and not is_space_id(names[0]) and not request.space_named(names[0]):
            return None  # nothing there yet: MKCOL makes a space of that name
        space = self.space(request, names[0], environ["REQUEST_METHOD"])
        try:
            node = request.run(self.services.files.resolve(request.caller, space.id, names[1:]))
        except DAVError as error:
            if error.value == 404:
                return None
            raise
        return resource_of(path, environ, self.services, space, names[1:], node)

    def space(self, request: DavRequest, folder: str, method: str) -> Space:
        """The space shown as `folder` (or with that id: `SpaceGate` decides, and records a
        refusal as what `method` was about to do); 404 if the caller has none such."""
        space = request.space_named(folder)
        if space is None and is_space_id(folder):
            action = _ACTIONS.get(method, "collab.read")
            gate = self.services.spaces.gate
            space = request.run(gate.enter(request.caller, folder, Role.VIEWER, action)).space
        if space is None:
            raise DAVError(404, context_info="You have no space of that name.")
        return space

    def ref_url_to_path(self, ref_url: str) -> str:
        """The path below `/dav` of a lock's resource, as this caller names its space."""
        space_id, _, rest = unquote(ref_url).strip("/").partition("/")
        folder = DavRequest.current().folder_of(space_id)
        return f"/{folder}/{rest}" if rest else f"/{folder}/"


_FOLDER_PAGE = (
    b"<!doctype html><meta charset=utf-8><title>medicus</title>"
    b"<p>This is a folder of medicus spaces for WebDAV clients (rclone, Finder, Explorer). "
    b'Its files are shown in the <a href="/portal">portal</a>.</p>'
)


def _folder_page(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response(
        "200 OK",
        [
            ("Content-Type", "text/html; charset=utf-8"),
            ("Content-Length", str(len(_FOLDER_PAGE))),
            ("Content-Security-Policy", "default-src 'none'"),
            ("X-Content-Type-Options", "nosniff"),
        ],
    )
    return [b""] if environ["REQUEST_METHOD"] == "HEAD" else [_FOLDER_PAGE]


class TopFolder(DAVCollection):  # type: ignore[misc]
    """`/dav/`: the caller's spaces. A new folder here is a new space of theirs."""

    def __init__(self, path: str, environ: dict[str, Any], services: DavServices) -> None:
        super().__init__(path, environ)
        self.services = services

    def get_member_names(self) -> list[str]:
        return list(DavRequest.current().folders)

    def get_descendants(self, **options: Any) -> list[Any]:
        return listed_in_depth(self, options)

    def get_member_list(self) -> list[Any]:
        folders = DavRequest.current().folders
        return [
            Folder(util.join_uri(self.path, name), self.environ, self.services, space, [], None)
            for name, space in folders.items()
        ]

    def create_collection(self, name: str) -> None:
        request = DavRequest.current()
        request.run(self.services.spaces.create(request.caller, name))

    def create_empty_resource(self, name: str) -> Any:
        raise DAVError(
            404, context_info="You have no space of that name; files go into a space's folder."
        )

    def prevent_locking(self) -> bool:
        return True

    def get_ref_url(self) -> str:
        return "/"

    def handle_delete(self) -> bool:
        raise DAVError(403, context_info="The list of your spaces cannot be deleted.")

    def handle_move(self, dest_path: str) -> bool:
        raise DAVError(403, context_info="The list of your spaces cannot be moved.")

    def handle_copy(self, dest_path: str, *, depth_infinity: bool) -> bool:
        raise DAVError(403, context_info="The list of your spaces cannot be copied.")
