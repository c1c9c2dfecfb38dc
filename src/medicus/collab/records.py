"""What the collaboration service answers with: spaces, members, files and folders, versions,
comments and activity, as plain values (no rows leave the repository's transactions)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum

from medicus.collab.models import ActivityRow, CommentRow, NodeRow, SpaceRow, VersionRow


class Role(StrEnum):
    """A member's role in a space; each may do what the one before it may."""

    VIEWER = "viewer"
    EDITOR = "editor"
    MANAGER = "manager"

    def allows(self, needed: Role) -> bool:
        order = list(Role)
        return order.index(self) >= order.index(needed)


@dataclass(frozen=True)
class Space:
    id: str
    organisation_id: str
    name: str
    description: str
    root_id: str
    trash_days: int
    created_by: str
    created_at: dt.datetime
    role: Role

    @staticmethod
    def of(row: SpaceRow, role: Role) -> Space:
        return Space(
            row.id,
            row.organisation_id,
            row.name,
            row.description,
            row.root_id,
            row.trash_days,
            row.created_by,
            row.created_at,
            role,
        )


@dataclass(frozen=True)
class Member:
    user_id: str
    display_name: str
    email: str
    role: Role
    added_at: dt.datetime


@dataclass(frozen=True)
class Node:
    """A folder or a file (`kind`); a file's size, type and hash are its current version's."""

    id: str
    space_id: str
    parent_id: str | None
    kind: str
    name: str
    version: int
    size: int
    content_type: str
    sha256: str
    patient_id: str | None
    created_by: str
    created_at: dt.datetime
    updated_by: str
    updated_at: dt.datetime
    deleted_at: dt.datetime | None

    @property
    def is_folder(self) -> bool:
        return self.kind == "folder"

    @property
    def etag(self) -> str:
        """Changes with every version (and, for a folder, is its identity)."""
        return f'"{self.id}-{self.version}"'

    @staticmethod
    def of(row: NodeRow) -> Node:
        return Node(
            row.id,
            row.space_id,
            row.parent_id,
            row.kind,
            row.name,
            row.version,
            row.size,
            row.content_type,
            row.sha256,
            row.patient_id,
            row.created_by,
            row.created_at,
            row.updated_by,
            row.updated_at,
            row.deleted_at,
        )


@dataclass(frozen=True)
class Version:
    number: int
    size: int
    sha256: str
    content_type: str
    created_by: str
    created_at: dt.datetime
    restored_from: int | None

    @staticmethod
    def of(row: VersionRow) -> Version:
        return Version(
            row.number,
            row.size,
            row.sha256,
            row.content_type,
            row.created_by,
            row.created_at,
            row.restored_from,
        )


@dataclass(frozen=True)
class Comment:
    id: str
    author: str
    body: str
    created_at: dt.datetime

    @staticmethod
    def of(row: CommentRow) -> Comment:
        return Comment(row.id, row.author, row.body, row.created_at)


@dataclass(frozen=True)
class Activity:
    id: int
    node_id: str | None
    actor: str
    action: str
    summary: str
    at: dt.datetime

    @staticmethod
    def of(row: ActivityRow) -> Activity:
        return Activity(row.id, row.node_id, row.actor, row.action, row.summary, row.at)
