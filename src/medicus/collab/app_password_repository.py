"""SQL of the app passwords that WebDAV clients log in with (`collab_app_password`). Each
function runs inside the caller's transaction (or snapshot); `collab.app_passwords` decides."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from medicus.collab.models import AppPasswordRow
from medicus.iam.models import MembershipRow, UserRow


async def holder(
    session: AsyncSession, secret_hash: str
) -> tuple[AppPasswordRow, UserRow, MembershipRow | None] | None:
    """The password with this hash, its user and the user's membership of the password's
    organisation (None: gone), in one query; None if no password has the hash."""
    found = await session.execute(
        select(AppPasswordRow, UserRow, MembershipRow)
        .join(UserRow, UserRow.id == AppPasswordRow.user_id)
        .outerjoin(
            MembershipRow,
            (MembershipRow.user_id == AppPasswordRow.user_id)
            & (MembershipRow.organisation_id == AppPasswordRow.organisation_id),
        )
        .where(AppPasswordRow.secret_hash == secret_hash)
    )
    row = found.first()
    return None if row is None else (row[0], row[1], row[2])


async def live_of(session: AsyncSession, user_id: str) -> Sequence[AppPasswordRow]:
    """The user's passwords that were not revoked, newest first."""
    found = await session.scalars(
        select(AppPasswordRow)
        .where(AppPasswordRow.user_id == user_id, AppPasswordRow.revoked_at.is_(None))
        .order_by(AppPasswordRow.created_at.desc(), AppPasswordRow.id)
    )
    return list(found)


async def live_count(session: AsyncSession, user_id: str) -> int:
    count = await session.scalar(
        select(func.count())
        .select_from(AppPasswordRow)
        .where(AppPasswordRow.user_id == user_id, AppPasswordRow.revoked_at.is_(None))
    )
    return int(count or 0)


async def one(session: AsyncSession, password_id: str) -> AppPasswordRow | None:
    return await session.get(AppPasswordRow, password_id)


async def revoke(session: AsyncSession, password_id: str, now: dt.datetime) -> None:
    await session.execute(
        update(AppPasswordRow)
        .where(AppPasswordRow.id == password_id, AppPasswordRow.revoked_at.is_(None))
        .values(revoked_at=now)
    )


async def used(session: AsyncSession, password_id: str, now: dt.datetime) -> None:
    await session.execute(
        update(AppPasswordRow).where(AppPasswordRow.id == password_id).values(last_used_at=now)
    )
