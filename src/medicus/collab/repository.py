"""SQL of the collaboration spaces. Each function runs inside the caller's transaction (or
snapshot); none decides who may do what: the service does, before it calls these."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from medicus.collab.models import (
    ActivityRow,
    CommentRow,
    LockRow,
    MemberRow,
    NodeRow,
    PropertyRow,
    SpaceRow,
    VersionRow,
)
from medicus.core.db import hold_lock
from medicus.iam.models import UserRow

FOLDER = "folder"
FILE = "file"


async def spaces_of(session: AsyncSession, user_id: str) -> Sequence[tuple[SpaceRow, str]]:
    """The live spaces `user_id` is a member of, with their role, by name."""
    rows = await session.execute(
        select(SpaceRow, MemberRow.role)
        .join(MemberRow, MemberRow.space_id == SpaceRow.id)
        .where(MemberRow.user_id == user_id, SpaceRow.deleted_at.is_(None))
        .order_by(SpaceRow.name, SpaceRow.id)
    )
    return [(space, role) for space, role in rows.all()]


async def space_with_role(
    session: AsyncSession, space_id: str, user_id: str
) -> tuple[SpaceRow, str | None] | None:
    """The live space and the user's role in it (None: not a member); None if no space."""
    space = await session.scalar(
        select(SpaceRow).where(SpaceRow.id == space_id, SpaceRow.deleted_at.is_(None))
    )
    if space is None:
        return None
    role = await session.scalar(
        select(MemberRow.role).where(MemberRow.space_id == space_id, MemberRow.user_id == user_id)
    )
    return space, role


async def members(session: AsyncSession, space_id: str) -> Sequence[tuple[MemberRow, UserRow]]:
    rows = await session.execute(
        select(MemberRow, UserRow)
        .join(UserRow, UserRow.id == MemberRow.user_id)
        .where(MemberRow.space_id == space_id)
        .order_by(UserRow.display_name, UserRow.id)
    )
    return [(member, user) for member, user in rows.all()]


async def member(session: AsyncSession, space_id: str, user_id: str) -> MemberRow | None:
    return await session.get(MemberRow, (space_id, user_id))


async def managers(session: AsyncSession, space_id: str) -> int:
    count = await session.scalar(
        select(func.count())
        .select_from(MemberRow)
        .where(MemberRow.space_id == space_id, MemberRow.role == "manager")
    )
    return int(count or 0)


async def user_by_email(session: AsyncSession, email: str) -> UserRow | None:
    return await session.scalar(
        select(UserRow).where(func.lower(UserRow.email) == email.strip().lower())
    )


async def live_node(
    session: AsyncSession, space_id: str, node_id: str, for_update: bool = False
) -> NodeRow | None:
    """The live node; `for_update`: its row locked until the transaction ends (PostgreSQL;
    SQLite has one writer anyway), so that two writers of one file take turns."""
    statement = select(NodeRow).where(
        NodeRow.id == node_id, NodeRow.space_id == space_id, NodeRow.deleted_at.is_(None)
    )
    return await session.scalar(statement.with_for_update() if for_update else statement)


async def any_node(session: AsyncSession, space_id: str, node_id: str) -> NodeRow | None:
    """The node, live or in the trash."""
    return await session.scalar(
        select(NodeRow).where(NodeRow.id == node_id, NodeRow.space_id == space_id)
    )


async def child(
    session: AsyncSession, parent_id: str, name_key: str, for_update: bool = False
) -> NodeRow | None:
    """The live node named `name_key` (compared form) in folder `parent_id`."""
    statement = select(NodeRow).where(
        NodeRow.parent_id == parent_id,
        NodeRow.name_key == name_key,
        NodeRow.deleted_at.is_(None),
    )
    return await session.scalar(statement.with_for_update() if for_update else statement)


async def claimed_child(session: AsyncSession, parent_id: str, name_key: str) -> NodeRow | None:
    """`child`, after holding the name in that folder until the transaction ends
    (PostgreSQL; SQLite has one writer): a name that is free stays free for this writer."""
    await hold_lock(session, f"collab-name:{parent_id}:{name_key}")
    return await child(session, parent_id, name_key)


async def children(session: AsyncSession, parent_id: str) -> Sequence[NodeRow]:
    """The live nodes of folder `parent_id`: folders first, then by name."""
    found = await session.scalars(
        select(NodeRow)
        .where(NodeRow.parent_id == parent_id, NodeRow.deleted_at.is_(None))
        .order_by(NodeRow.kind.desc(), NodeRow.name_key)
    )
    return list(found)


async def space_node_ids(session: AsyncSession, space_id: str) -> list[str]:
    """Every node of the space, live or in the trash."""
    return list(await session.scalars(select(NodeRow.id).where(NodeRow.space_id == space_id)))


async def subtree_ids(session: AsyncSession, node_id: str, live: bool = True) -> list[str]:
    """The ids of `node_id` and every node below it (live ones, or those trashed with it),
    breadth first. Folders are shallow in practice, so a query per level is cheap and
    works the same on SQLite and PostgreSQL."""
    found = [node_id]
    level = [node_id]
    while level:
        condition = NodeRow.deleted_at.is_(None) if live else NodeRow.trash_root == node_id
        rows = await session.scalars(
            select(NodeRow.id).where(NodeRow.parent_id.in_(level), condition)
        )
        level = list(rows)
        found.extend(level)
    return found


async def ancestors(session: AsyncSession, node: NodeRow) -> list[NodeRow]:
    """The folders above `node`, the space's root first."""
    chain: list[NodeRow] = []
    parent_id = node.parent_id
    while parent_id is not None:
        parent = await session.get(NodeRow, parent_id)
        if parent is None:
            break
        chain.append(parent)
        parent_id = parent.parent_id
    return list(reversed(chain))


async def trash_nodes(
    session: AsyncSession, ids: Sequence[str], root: str, actor: str, now: dt.datetime
) -> None:
    await session.execute(
        update(NodeRow)
        .where(NodeRow.id.in_(ids))
        .values(deleted_at=now, deleted_by=actor, trash_root=root)
    )


async def untrash(session: AsyncSession, root: str) -> None:
    await session.execute(
        update(NodeRow)
        .where(NodeRow.trash_root == root)
        .values(deleted_at=None, deleted_by=None, trash_root=None)
    )


async def trash_of(session: AsyncSession, space_id: str) -> Sequence[NodeRow]:
    """What members deleted (the top nodes; a folder's content comes back with it)."""
    found = await session.scalars(
        select(NodeRow)
        .where(NodeRow.space_id == space_id, NodeRow.trash_root == NodeRow.id)
        .order_by(NodeRow.deleted_at.desc())
    )
    return list(found)


async def expired_trash(
    session: AsyncSession, now: dt.datetime, limit: int
) -> Sequence[tuple[str, str]]:
    """(space, node) of trashed top nodes whose space's retention has run out, oldest first:
    asked per retention period in use, so that things not yet due in one space never keep
    another's due ones from their turn."""
    periods = await session.scalars(select(SpaceRow.trash_days).distinct())
    due: list[tuple[str, str, dt.datetime]] = []
    for days in periods:
        rows = await session.execute(
            select(NodeRow.space_id, NodeRow.id, NodeRow.deleted_at)
            .join(SpaceRow, SpaceRow.id == NodeRow.space_id)
            .where(
                SpaceRow.trash_days == days,
                NodeRow.trash_root == NodeRow.id,
                NodeRow.deleted_at <= now - dt.timedelta(days=days),
            )
            .order_by(NodeRow.deleted_at)
            .limit(limit)
        )
        due.extend((space, node, at) for space, node, at in rows.all() if at is not None)
    due.sort(key=lambda entry: entry[2])
    return [(space_id, node_id) for space_id, node_id, _ in due[:limit]]


async def versions(session: AsyncSession, node_id: str) -> Sequence[VersionRow]:
    found = await session.scalars(
        select(VersionRow).where(VersionRow.node_id == node_id).order_by(VersionRow.number.desc())
    )
    return list(found)


async def version(session: AsyncSession, node_id: str, number: int) -> VersionRow | None:
    return await session.get(VersionRow, (node_id, number))


async def objects_of(session: AsyncSession, node_ids: Sequence[str]) -> list[str]:
    """The stored objects of every version of these nodes."""
    rows = await session.scalars(
        select(VersionRow.object_id).where(VersionRow.node_id.in_(node_ids))
    )
    return list(rows)


async def versions_beyond(session: AsyncSession, node_id: str, kept: int) -> list[VersionRow]:
    """The versions of a file older than its newest `kept`."""
    found = await session.scalars(
        select(VersionRow)
        .where(VersionRow.node_id == node_id)
        .order_by(VersionRow.number.desc())
        .offset(kept)
    )
    return list(found)


async def remove_versions(session: AsyncSession, node_id: str, numbers: Sequence[int]) -> None:
    await session.execute(
        delete(VersionRow).where(VersionRow.node_id == node_id, VersionRow.number.in_(numbers))
    )


async def remove_nodes(session: AsyncSession, ids: Sequence[str]) -> None:
    await session.execute(delete(VersionRow).where(VersionRow.node_id.in_(ids)))
    await session.execute(delete(CommentRow).where(CommentRow.node_id.in_(ids)))
    await session.execute(delete(LockRow).where(LockRow.node_id.in_(ids)))
    await session.execute(delete(PropertyRow).where(PropertyRow.node_id.in_(ids)))
    await session.execute(delete(NodeRow).where(NodeRow.id.in_(ids)))


async def properties_of(
    session: AsyncSession, space_id: str, node_ids: Sequence[str]
) -> dict[str, dict[str, str]]:
    """The WebDAV clients' own properties of each of the space's `node_ids` (name: XML)."""
    found: dict[str, dict[str, str]] = {node_id: {} for node_id in node_ids}
    rows = await session.execute(
        select(PropertyRow.node_id, PropertyRow.name, PropertyRow.value)
        .join(NodeRow, NodeRow.id == PropertyRow.node_id)
        .where(PropertyRow.node_id.in_(node_ids), NodeRow.space_id == space_id)
    )
    for node_id, name, value in rows.all():
        found[node_id][name] = value
    return found


async def set_property(session: AsyncSession, node_id: str, name: str, value: str | None) -> int:
    """Set (or with None remove) one property; how many the node has then."""
    await session.execute(
        delete(PropertyRow).where(PropertyRow.node_id == node_id, PropertyRow.name == name)
    )
    if value is not None:
        session.add(PropertyRow(node_id=node_id, name=name, value=value))
        await session.flush()
    counted = await session.scalar(
        select(func.count()).select_from(PropertyRow).where(PropertyRow.node_id == node_id)
    )
    return int(counted or 0)


async def copy_properties(session: AsyncSession, source_id: str, copy_id: str) -> None:
    """A copy has the properties of what it copies (RFC 4918 9.8.2)."""
    rows = await session.execute(
        select(PropertyRow.name, PropertyRow.value).where(PropertyRow.node_id == source_id)
    )
    session.add_all(
        PropertyRow(node_id=copy_id, name=name, value=value) for name, value in rows.all()
    )


async def live_locks(
    session: AsyncSession, node_ids: Sequence[str], now: dt.datetime
) -> Sequence[LockRow]:
    found = await session.scalars(
        select(LockRow).where(LockRow.node_id.in_(node_ids), LockRow.expires_at > now)
    )
    return list(found)


async def locks_covering(
    session: AsyncSession, node_id: str, now: dt.datetime
) -> Sequence[LockRow]:
    """The live locks that cover a node: its own (of any depth: a lock on a folder covers
    what it holds, RFC 4918 6.1) and the depth-infinity locks of the folders above it."""
    chain = [node_id]
    parent_id = await session.scalar(select(NodeRow.parent_id).where(NodeRow.id == node_id))
    while parent_id is not None and parent_id not in chain:
        chain.append(parent_id)
        parent_id = await session.scalar(select(NodeRow.parent_id).where(NodeRow.id == parent_id))
    found = await session.scalars(
        select(LockRow).where(
            LockRow.node_id.in_(chain),
            LockRow.expires_at > now,
            or_(LockRow.node_id == node_id, LockRow.depth == "infinity"),
        )
    )
    return list(found)


async def comments(session: AsyncSession, node_id: str) -> Sequence[CommentRow]:
    found = await session.scalars(
        select(CommentRow).where(CommentRow.node_id == node_id).order_by(CommentRow.created_at)
    )
    return list(found)


async def activity(
    session: AsyncSession, space_id: str, before: int | None, limit: int
) -> list[tuple[ActivityRow, str | None]]:
    """The space's feed, newest first, each entry with the Patient its file is linked to
    now (None: no file, or not patient data)."""
    statement = (
        select(ActivityRow, NodeRow.patient_id)
        .outerjoin(NodeRow, NodeRow.id == ActivityRow.node_id)
        .where(ActivityRow.space_id == space_id)
    )
    if before is not None:
        statement = statement.where(ActivityRow.id < before)
    found = await session.execute(statement.order_by(ActivityRow.id.desc()).limit(limit))
    return [(entry, patient_id) for entry, patient_id in found.all()]


async def search(
    session: AsyncSession,
    space_ids: Sequence[str],
    words: Sequence[str],
    content_type: str | None,
    owner: str | None,
    changed_since: dt.datetime | None,
    limit: int,
) -> Sequence[NodeRow]:
    """Live files and folders of these spaces whose name (or extracted text) holds every
    word, newest first."""
    statement = select(NodeRow).where(
        NodeRow.space_id.in_(space_ids),
        NodeRow.deleted_at.is_(None),
        NodeRow.parent_id.is_not(None),
    )
    for word in words:
        pattern = f"%{_escaped(word.casefold())}%"
        statement = statement.where(
            or_(
                NodeRow.name_key.like(pattern, escape="\\"),
                func.lower(NodeRow.text_content).like(pattern, escape="\\"),
            )
        )
    if content_type:
        statement = statement.where(
            NodeRow.content_type.like(f"{_escaped(content_type)}%", escape="\\")
        )
    if owner:
        statement = statement.where(NodeRow.created_by == owner)
    if changed_since is not None:
        statement = statement.where(NodeRow.updated_at >= changed_since)
    found = await session.scalars(statement.order_by(NodeRow.updated_at.desc()).limit(limit))
    return list(found)


def _escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@dataclass(frozen=True)
class FileWithoutText:
    node_id: str
    version: int
    name: str
    content_type: str
    object_id: str


_WITHOUT_TEXT = (
    NodeRow.kind == FILE,
    NodeRow.deleted_at.is_(None),
    NodeRow.text_content.is_(None),
)


async def count_files_without_text(session: AsyncSession) -> int:
    found = await session.scalar(select(func.count(NodeRow.id)).where(*_WITHOUT_TEXT))
    return int(found or 0)


async def files_without_text(
    session: AsyncSession, after: str, limit: int
) -> list[FileWithoutText]:
    """Live files whose current version has no text, in the order of their ids after `after`."""
    rows = await session.execute(
        select(
            NodeRow.id, NodeRow.version, NodeRow.name, NodeRow.content_type, VersionRow.object_id
        )
        .join(
            VersionRow, (VersionRow.node_id == NodeRow.id) & (VersionRow.number == NodeRow.version)
        )
        .where(*_WITHOUT_TEXT, NodeRow.id > after)
        .order_by(NodeRow.id)
        .limit(limit)
    )
    return [FileWithoutText(*row) for row in rows.all()]


async def set_text(session: AsyncSession, node_id: str, version: int, text: str) -> None:
    """The searchable text of a file's version `version`; nothing if the file has a newer
    version by now (its own text is on its way)."""
    await session.execute(
        update(NodeRow)
        .where(NodeRow.id == node_id, NodeRow.version == version)
        .values(text_content=text)
    )


async def note_activity(
    session: AsyncSession,
    space_id: str,
    actor: str,
    action: str,
    summary: str,
    node_id: str | None,
    now: dt.datetime,
) -> None:
    """An entry of the space's activity feed (its members see it: names may be there)."""
    session.add(
        ActivityRow(
            space_id=space_id,
            node_id=node_id,
            actor=actor,
            action=action,
            summary=summary[:600],
            at=now,
        )
    )
