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


async def password_failed(
    session: AsyncSession, link_id: str, limit: int, until: dt.datetime
) -> bool:
    """Count a wrong password; at the `limit`-th in a row, lock the link's password until
    `until` and start counting again. Whether it is locked now."""
    failures = await session.scalar(
        update(ShareLinkRow)
        .where(ShareLinkRow.id == link_id)
        .values(failed_passwords=ShareLinkRow.failed_passwords + 1)
        .returning(ShareLinkRow.failed_passwords)
    )
    if failures is None or failures < limit:
        return False
    await session.execute(
        update(ShareLinkRow)
        .where(ShareLinkRow.id == link_id)
        .values(failed_passwords=0, locked_until=until)
    )
    return True


async def password_right(session: AsyncSession, link_id: str) -> None:
    """A right password: the wrong ones before it no longer count."""
    await session.execute(
        update(ShareLinkRow)
        .where(ShareLinkRow.id == link_id, ShareLinkRow.failed_passwords > 0)
        .values(failed_passwords=0)
    )


async def display_name(session: AsyncSession, user_id: str) -> str | None:
    return await session.scalar(select(UserRow.display_name).where(UserRow.id == user_id))
