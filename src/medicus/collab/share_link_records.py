"""What share links answer with: a link as members see it, a link as its visitor uses it,
and the refusals of a use, as plain values; and when a link works (`link_state`)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum

from medicus.collab.models import NodeRow, ShareLinkRow, SpaceRow
from medicus.collab.records import Node, Role
from medicus.core.errors import ApiError
from medicus.storage.service import StoredObject

SHARING_ROLES = (Role.EDITOR, Role.MANAGER)
"""Who may make a link, and whose links work."""


class LinkState(StrEnum):
    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"
    USED_UP = "used-up"
    UNAVAILABLE = "unavailable"
    """What it shares is in the trash or patient data, or its creator may no longer share."""


@dataclass(frozen=True)
class ShareLink:
    """A link as its space's members see it (never its token)."""

    id: str
    space_id: str
    node_id: str
    node_name: str
    node_kind: str
    created_by: str
    created_at: dt.datetime
    expires_at: dt.datetime
    has_password: bool
    max_downloads: int | None
    downloads: int
    revoked_at: dt.datetime | None
    state: LinkState
    unsent: tuple[str, ...] = ()
    """In the answer to `create`: the addresses the mail could not be sent to (the link
    stands all the same)."""

    @staticmethod
    def of(
        row: ShareLinkRow,
        node_name: str,
        node_kind: str,
        state: LinkState,
        unsent: tuple[str, ...] = (),
    ) -> ShareLink:
        return ShareLink(
            row.id,
            row.space_id,
            row.node_id,
            node_name,
            node_kind,
            row.created_by,
            row.created_at,
            row.expires_at,
            row.password_hash is not None,
            row.max_downloads,
            row.downloads,
            row.revoked_at,
            state,
            unsent,
        )


@dataclass
class LinkRefused(ApiError):
    """A use of a link that is refused, for `reason` (the public pages say it in words)."""

    reason: str = ""


@dataclass(frozen=True)
class OpenLink:
    """A link that works, as its visitor uses it."""

    id: str
    space_id: str
    organisation_id: str
    created_by: str
    shared: Node
    expires_at: dt.datetime
    downloads_left: int | None
    password_hash: str | None = field(repr=False)
    locked_until: dt.datetime | None

    @property
    def has_password(self) -> bool:
        return self.password_hash is not None

    @staticmethod
    def of(row: ShareLinkRow, space: SpaceRow, shared: Node) -> OpenLink:
        left = None if row.max_downloads is None else max(0, row.max_downloads - row.downloads)
        return OpenLink(
            row.id,
            row.space_id,
            space.organisation_id,
            row.created_by,
            shared,
            row.expires_at,
            left,
            row.password_hash,
            row.locked_until,
        )


@dataclass(frozen=True)
class SharedView:
    """What the link's page shows: the shared file, or a folder at or below the shared
    one (`trail`: from the shared folder down to it) and what it holds."""

    link: OpenLink
    node: Node
    trail: list[Node]
    children: list[Node]


@dataclass(frozen=True)
class SharedFile:
    """A file to send through a link, and its bytes."""

    link: OpenLink
    node: Node
    stored: StoredObject


def link_state(
    row: ShareLinkRow,
    node: NodeRow | None,
    space_live: bool,
    creator_role: str | None,
    now: dt.datetime,
) -> tuple[LinkState, str]:
    """Whether the link works, and why not as recorded (its visitor is told only the
    state: not what became of the file or of the link's creator)."""
    if row.revoked_at is not None:
        return LinkState.REVOKED, "revoked"
    if row.expires_at <= now:
        return LinkState.EXPIRED, "expired"
    if not space_live or node is None or node.deleted_at is not None:
        return LinkState.UNAVAILABLE, "trashed"
    if node.patient_id is not None:
        return LinkState.UNAVAILABLE, "patient-data"
    if creator_role not in SHARING_ROLES:
        return LinkState.UNAVAILABLE, "creator-may-not-share"
    if row.max_downloads is not None and row.downloads >= row.max_downloads:
        return LinkState.USED_UP, "used-up"
    return LinkState.ACTIVE, ""


def gone(state: LinkState) -> LinkRefused:
    return LinkRefused(410, f"This link no longer works ({state}).", reason=str(state))


def throttled(wait: dt.timedelta) -> LinkRefused:
    seconds = max(1, int(wait.total_seconds()))
    return LinkRefused(
        429,
        "Too many wrong passwords; the link takes none for a while.",
        reason="throttled",
        headers={"Retry-After": str(seconds)},
    )
