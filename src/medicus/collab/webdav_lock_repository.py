"""SQL of the locks WebDAV clients take (`collab_lock`, which the portal's edit locks share).
Each function runs inside the caller's transaction (or snapshot); `collab.webdav_locks`
decides."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from medicus.collab.models import LockRow


async def live_in_space(
    session: AsyncSession, space_id: str, now: dt.datetime
) -> Sequence[LockRow]:
    """The locks of a space that have not expired (few: people hold them while editing)."""
    found = await session.scalars(
        select(LockRow).where(LockRow.space_id == space_id, LockRow.expires_at > now)
    )
    return list(found)


async def live(session: AsyncSession, token: str, now: dt.datetime) -> LockRow | None:
    return await session.scalar(
        select(LockRow).where(LockRow.token == token, LockRow.expires_at > now)
    )


async def remove(session: AsyncSession, token: str) -> None:
    await session.execute(delete(LockRow).where(LockRow.token == token))


async def remove_expired(session: AsyncSession, space_id: str, now: dt.datetime) -> None:
    """Forget the expired locks of a space (they bind nobody; this keeps the table small)."""
    await session.execute(
        delete(LockRow).where(LockRow.space_id == space_id, LockRow.expires_at <= now)
    )
