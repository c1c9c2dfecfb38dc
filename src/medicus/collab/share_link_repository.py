"""SQL of share links. Each function runs inside the caller's transaction (or snapshot); the
counters change in one conditional statement each, so that two downloads at once cannot
both take the last one a link allows."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from medicus.collab.models import MemberRow, NodeRow, ShareLinkRow, SpaceRow
from medicus.iam.models import UserRow


async def by_token(
    session: AsyncSession, token_hash: str
) -> tuple[ShareLinkRow, SpaceRow, NodeRow | None, str | None] | None:
    """The link with this token's hash, its space, its node (None once it is in the trash
    or gone) and its creator's role in the space now (None: no longer a member)."""
    found = (
        await session.execute(
            select(ShareLinkRow, SpaceRow, NodeRow, MemberRow.role)
            .join(SpaceRow, SpaceRow.id == ShareLinkRow.space_id)
            .outerjoin(NodeRow, (NodeRow.id == ShareLinkRow.node_id) & NodeRow.deleted_at.is_(None))
            .outerjoin(
                MemberRow,
                (MemberRow.space_id == ShareLinkRow.space_id)
                & (MemberRow.user_id == ShareLinkRow.created_by),
            )
            .where(ShareLinkRow.token_hash == token_hash)
        )
    ).first()
    if found is None:
        return None
    link, space, node, role = found
    return link, space, node, role


async def of_space(
    session: AsyncSession, space_id: str
) -> Sequence[tuple[ShareLinkRow, NodeRow | None]]:
    """The space's links, newest first, each with its node (live or in the trash)."""
    rows = await session.execute(
        select(ShareLinkRow, NodeRow)
        .outerjoin(NodeRow, NodeRow.id == ShareLinkRow.node_id)
        .where(ShareLinkRow.space_id == space_id)
        .order_by(ShareLinkRow.created_at.desc(), ShareLinkRow.id)
    )
    return [(link, node) for link, node in rows.all()]


async def one(session: AsyncSession, space_id: str, link_id: str) -> ShareLinkRow | None:
    return await session.scalar(
        select(ShareLinkRow).where(ShareLinkRow.id == link_id, ShareLinkRow.space_id == space_id)
    )


async def take_download(session: AsyncSession, link_id: str) -> bool:
    """Count a download of the link, if it has one left; whether it had."""
    counted = await session.execute(
        update(ShareLinkRow)
        .where(
            ShareLinkRow.id == link_id,
            or_(
                ShareLinkRow.max_downloads.is_(None),
                ShareLinkRow.downloads < ShareLinkRow.max_downloads,
            ),
        )
        .values(downloads=ShareLinkRow.downloads + 1)
        .returning(ShareLinkRow.id)
    )
    return counted.first() is not None


async def password_attempt(
    session: AsyncSession, link_id: str, limit: int, now: dt.datetime
) -> int | None:
    """Count an attempt at the link's password before it is checked: its number among the
    attempts since the last right one, None if the link takes none now (locked, or `limit`
    attempts are counted). Counting first keeps guesses sent at the same moment from
    getting past the limit while the first ones are still being checked."""
    return await session.scalar(
        update(ShareLinkRow)
        .where(
            ShareLinkRow.id == link_id,
            ShareLinkRow.failed_passwords < limit,
            or_(ShareLinkRow.locked_until.is_(None), ShareLinkRow.locked_until <= now),
        )
        .values(failed_passwords=ShareLinkRow.failed_passwords + 1)
        .returning(ShareLinkRow.failed_passwords)
    )


async def lock_password(session: AsyncSession, link_id: str, until: dt.datetime) -> None:
    """The last attempt allowed was wrong: the link takes none until `until`, then counts
    from zero."""
    await session.execute(
        update(ShareLinkRow)
        .where(ShareLinkRow.id == link_id)
        .values(failed_passwords=0, locked_until=until)
    )


async def password_right(session: AsyncSession, link_id: str) -> None:
    """A right password: the wrong ones before it no longer count."""
    await session.execute(
        update(ShareLinkRow)
        .where(ShareLinkRow.id == link_id, ShareLinkRow.failed_passwords > 0)
        .values(failed_passwords=0)
    )


async def display_name(session: AsyncSession, user_id: str) -> str | None:
    return await session.scalar(select(UserRow.display_name).where(UserRow.id == user_id))
