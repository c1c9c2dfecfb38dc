"""SQL of organisations, users and memberships."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from medicus.iam.models import MembershipRow, OrganisationRow, UserRow


async def organisation_by_iknr(session: AsyncSession, iknr: str) -> OrganisationRow | None:
    return await session.scalar(select(OrganisationRow).where(OrganisationRow.iknr == iknr))


async def user_by_email(session: AsyncSession, email: str) -> UserRow | None:
    return await session.scalar(select(UserRow).where(UserRow.email == email))


async def membership(
    session: AsyncSession, user_id: str, organisation_id: str
) -> MembershipRow | None:
    return await session.get(MembershipRow, (user_id, organisation_id))


async def add(session: AsyncSession, row: OrganisationRow | UserRow | MembershipRow) -> None:
    session.add(row)
    await session.flush()
