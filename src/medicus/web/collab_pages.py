"""The portal's use cases of collaboration spaces (`collab`): what each page of a space shows,
gathered from the collaboration services as the user, so that every decision and every audit
event is the one the API's would be, with the names people read instead of ids (identity).

Pages: the user's spaces; a folder of a space (a file browser: breadcrumbs, what it holds,
the latest activity); a file (its versions, comments, lock, share links, the folders it may
move to, whether it is previewed); members; activity; trash; search across the user's
spaces; and the user's app passwords for WebDAV clients."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from medicus.collab.app_passwords import AppPassword, AppPasswords
from medicus.collab.editing import Editing
from medicus.collab.files import Files
from medicus.collab.lock_state import HeldLock, LockState
from medicus.collab.records import Activity, Comment, Member, Node, Role, Space, Version
from medicus.collab.service import Spaces
from medicus.collab.share_link_records import ShareLink
from medicus.collab.share_links import ShareLinks
from medicus.collab.tree import Tree
from medicus.collab.uploads import SpaceUploads
from medicus.core.db import Database
from medicus.core.errors import ApiError
from medicus.iam.service import IdentityService
from medicus.iam.tokens import Principal
from medicus.web.users import PortalUser

PREVIEWED = {
    "image/png": "image",
    "image/jpeg": "image",
    "image/gif": "image",
    "image/webp": "image",
    "application/pdf": "pdf",
}
"""The only types shown inside the portal (sandboxed); anything else (HTML, SVG, office
files) is only downloaded."""
MOVE_TARGETS = 300
"""Folders offered as where a file or folder may move (the first ones, breadth first)."""
RECENT = 8
FEED_PAGE = 50


def preview_of(node: Node) -> str | None:
    """How a file is previewed (`image`, `pdf`), None if it is not."""
    if node.is_folder:
        return None
    return PREVIEWED.get(node.content_type.split(";", 1)[0].strip().lower())


def sorted_listing(nodes: Iterable[Node]) -> list[Node]:
    """Folders first, then files, each by name as people sort them."""
    return sorted(nodes, key=lambda node: (not node.is_folder, node.name.casefold(), node.name))


@dataclass(frozen=True)
class Names:
    """Who is who on a page: people and organisations by id (an id stays as it is)."""

    users: dict[str, str]
    organisations: dict[str, str]

    def user(self, user_id: str) -> str:
        return self.users.get(user_id, user_id)

    def organisation(self, organisation_id: str) -> str:
        return self.organisations.get(organisation_id, organisation_id)


@dataclass(frozen=True)
class InSpacePage:
    """What every page of a space shows: the space, and the names on the page."""

    space: Space
    names: Names

    @property
    def edits(self) -> bool:
        return self.space.role.allows(Role.EDITOR)

    @property
    def manages(self) -> bool:
        return self.space.role is Role.MANAGER


@dataclass(frozen=True)
class FolderPage(InSpacePage):
    trail: list[Node]
    """From the space's top folder down to this one."""
    folder: Node
    children: list[Node]
    recent: list[Activity]
    links: list[ShareLink]
    targets: list[tuple[str, str]]


@dataclass(frozen=True)
class FilePage(InSpacePage):
    trail: list[Node]
    node: Node
    versions: list[Version]
    comments: list[Comment]
    lock: HeldLock | None
    links: list[ShareLink]
    targets: list[tuple[str, str]]
    """The folders it may move to: (id, path)."""

    @property
    def preview(self) -> str | None:
        return preview_of(self.node)


@dataclass(frozen=True)
class MembersPage(InSpacePage):
    members: list[Member]


@dataclass(frozen=True)
class ActivityPage(InSpacePage):
    entries: list[Activity]
    older: int | None
    """The `before` of the next page, None at the feed's start."""


@dataclass(frozen=True)
class TrashPage(InSpacePage):
    trashed: list[Node]


@dataclass(frozen=True)
class Found:
    node: Node
    space: Space


class PortalCollab:
    def __init__(
        self,
        database: Database,
        identity: IdentityService,
        spaces: Spaces,
        files: Files,
        tree: Tree,
        editing: Editing,
        uploads: SpaceUploads,
        share_links: ShareLinks,
        app_passwords: AppPasswords,
        locks: LockState,
        public_url: str,
    ) -> None:
        self.spaces = spaces
        self.files = files
        self.tree = tree
        self.editing = editing
        self.uploads = uploads
        self.share_links = share_links
        self.app_passwords = app_passwords
        self.webdav_url = f"{public_url}/dav/"
        self._locks = locks
        self._database = database
        self._identity = identity

    async def names(self, users: Iterable[str], organisations: Iterable[str] = ()) -> Names:
        async with self._database.snapshot() as session:
            found = await self._identity.names(session, set(users), set(organisations), ())
        return Names(found.users, found.organisations)

    async def my_spaces(self, user: PortalUser) -> tuple[list[Space], Names]:
        """The user's spaces by name, with their organisations' names."""
        mine = await self.spaces.mine(user.principal)
        mine.sort(key=lambda space: (space.name.casefold(), space.id))
        return mine, await self.names((), (space.organisation_id for space in mine))

    async def folder(self, user: PortalUser, space_id: str, folder_id: str | None) -> FolderPage:
        caller = user.principal
        space = await self.spaces.get(caller, space_id)
        folder, children = await self.files.listing(caller, space_id, folder_id)
        trail = await self.files.path_of(caller, space_id, folder.id)
        recent = await self.spaces.activity(caller, space_id, None, RECENT)
        links = await self._links(caller, space_id, folder.id)
        targets = await self.targets(user, space_id, folder) if folder.parent_id else []
        people = _people(children, recent, links)
        names = await self.names(people, [space.organisation_id])
        listing = sorted_listing(children)
        return FolderPage(space, names, trail, folder, listing, recent, links, targets)

    async def file(self, user: PortalUser, space_id: str, node_id: str) -> FilePage:
        caller = user.principal
        space = await self.spaces.get(caller, space_id)
        trail = await self.files.path_of(caller, space_id, node_id)
        node = trail[-1]
        if node.is_folder:
            raise ApiError(404, "A folder is shown as a folder.")
        versions = await self.files.versions(caller, space_id, node.id)
        comments = await self.editing.comments(caller, space_id, node.id)
        lock = await self._locks.of(caller, space_id, node.id)
        links = await self._links(caller, space_id, node.id)
        targets = await self.targets(user, space_id, node)
        people = {node.created_by, node.updated_by}
        people |= {version.created_by for version in versions}
        people |= {comment.author for comment in comments}
        people |= {link.created_by for link in links}
        if lock is not None:
            people.add(lock.holder)
        names = await self.names(people, [space.organisation_id])
        versions.sort(key=lambda version: -version.number)
        return FilePage(space, names, trail, node, versions, comments, lock, links, targets)

    async def _links(self, caller: Principal, space_id: str, node_id: str) -> list[ShareLink]:
        """The space's share links of one file or folder (any member sees them)."""
        return [
            link
            for link in await self.share_links.list(caller, space_id)
            if link.node_id == node_id
        ]

    async def targets(self, user: PortalUser, space_id: str, moving: Node) -> list[tuple[str, str]]:
        """The folders `moving` may go to, as (id, path from the top folder), breadth first
        (not itself or what is below it)."""
        caller = user.principal
        found: list[tuple[str, str]] = []
        queue: list[tuple[str | None, str]] = [(None, "/")]
        while queue and len(found) < MOVE_TARGETS:
            folder_id, path = queue.pop(0)
            folder, children = await self.files.listing(caller, space_id, folder_id)
            found.append((folder.id, path))
            for child in sorted_listing(children):
                if child.is_folder and child.id != moving.id:
                    queue.append((child.id, f"{path}{child.name}/"))
        return found

    async def settings(self, user: PortalUser, space_id: str) -> InSpacePage:
        """A space's settings (its managers')."""
        space = await self.spaces.get(user.principal, space_id)
        if space.role is not Role.MANAGER:
            raise ApiError(403, "Only the space's managers change its settings.")
        return InSpacePage(space, await self.names((), [space.organisation_id]))

    async def members(self, user: PortalUser, space_id: str) -> MembersPage:
        space = await self.spaces.get(user.principal, space_id)
        members = await self.spaces.members(user.principal, space_id)
        members.sort(key=lambda member: (member.display_name.casefold(), member.user_id))
        return MembersPage(space, await self.names((), [space.organisation_id]), members)

    async def activity(
        self, user: PortalUser, space_id: str, before: int | None = None
    ) -> ActivityPage:
        space = await self.spaces.get(user.principal, space_id)
        entries = await self.spaces.activity(user.principal, space_id, before, FEED_PAGE)
        older = entries[-1].id if len(entries) == FEED_PAGE else None
        names = await self.names(_people((), entries, ()), [space.organisation_id])
        return ActivityPage(space, names, entries, older)

    async def trash(self, user: PortalUser, space_id: str) -> TrashPage:
        space = await self.spaces.get(user.principal, space_id)
        trashed = await self.tree.trash_list(user.principal, space_id)
        trashed.sort(key=lambda node: node.deleted_at or node.updated_at, reverse=True)
        people = {node.updated_by for node in trashed}
        return TrashPage(space, await self.names(people, [space.organisation_id]), trashed)

    async def search(self, user: PortalUser, text: str) -> tuple[list[Found], Names]:
        """Files and folders of the user's spaces whose name (or text) has every word."""
        spaces = {space.id: space for space in await self.spaces.mine(user.principal)}
        found = await self.files.search(user.principal, text)
        hits = [Found(node, spaces[node.space_id]) for node in found if node.space_id in spaces]
        return hits, await self.names({hit.node.updated_by for hit in hits})

    async def app_passwords_with_names(self, user: PortalUser) -> tuple[list[AppPassword], Names]:
        """The user's app passwords that work, with their organisations' names."""
        passwords = list(await self.app_passwords.list(user.principal))
        organisations = {password.organisation_id for password in passwords}
        return passwords, await self.names((), organisations)


def _people(
    nodes: Iterable[Node], entries: Iterable[Activity], links: Iterable[ShareLink]
) -> set[str]:
    """The users a page names: who changed its files, who did what in its feed (a removed
    member's id is its entry's summary), who made its links."""
    people = {node.updated_by for node in nodes}
    for entry in entries:
        people.add(entry.actor)
        if entry.action == "member.removed":
            people.add(entry.summary)
    return people | {link.created_by for link in links}
