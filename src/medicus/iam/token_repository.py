"""SQL of the OAuth side of identity: clients, authorization codes, refresh tokens, signing keys,
revoked access tokens and used client assertions."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from medicus.iam.models import (
    AuthorizationCodeRow,
    ClientAssertionRow,
    OAuthClientRow,
    RefreshTokenRow,
    RevocationRow,
    SigningKeyRow,
)


async def client(session: AsyncSession, client_id: str) -> OAuthClientRow | None:
    return await session.get(OAuthClientRow, client_id)


async def client_ids_named(session: AsyncSession, organisation_id: str, name: str) -> list[str]:
    """The ids of the organisation's active clients called `name`, oldest first."""
    statement = (
        select(OAuthClientRow.client_id)
        .where(
            OAuthClientRow.organisation_id == organisation_id,
            OAuthClientRow.name == name,
            OAuthClientRow.active.is_(True),
        )
        .order_by(OAuthClientRow.created_at, OAuthClientRow.client_id)
    )
    return list((await session.scalars(statement)).all())


async def add(
    session: AsyncSession,
    row: OAuthClientRow | AuthorizationCodeRow | RefreshTokenRow | SigningKeyRow | RevocationRow,
) -> None:
    session.add(row)
    await session.flush()


async def take_code(
    session: AsyncSession, code_hash: str, now: dt.datetime
) -> tuple[AuthorizationCodeRow | None, bool]:
    """The code, and whether this call was the first to redeem it. The check and the marking
    are one statement, so that two racing redemptions cannot both be first."""
    statement = (
        update(AuthorizationCodeRow)
        .where(AuthorizationCodeRow.code_hash == code_hash, AuthorizationCodeRow.used_at.is_(None))
        .values(used_at=now)
        .returning(AuthorizationCodeRow.code_hash)
    )
    first = (await session.execute(statement)).scalar_one_or_none() is not None
    row = await session.get(AuthorizationCodeRow, code_hash, populate_existing=True)
    return row, first


async def set_code_family(session: AsyncSession, code_hash: str, family_id: str) -> None:
    await session.execute(
        update(AuthorizationCodeRow)
        .where(AuthorizationCodeRow.code_hash == code_hash)
        .values(family_id=family_id)
    )


async def use_refresh_token(
    session: AsyncSession, token_hash: str, now: dt.datetime
) -> tuple[RefreshTokenRow | None, bool]:
    """Mark the refresh token used; returns it and whether this call was the first use."""
    statement = (
        update(RefreshTokenRow)
        .where(RefreshTokenRow.token_hash == token_hash, RefreshTokenRow.used_at.is_(None))
        .values(used_at=now)
        .returning(RefreshTokenRow.token_hash)
    )
    first = (await session.execute(statement)).scalar_one_or_none() is not None
    row = await session.get(RefreshTokenRow, token_hash, populate_existing=True)
    return row, first


async def refresh_token(session: AsyncSession, token_hash: str) -> RefreshTokenRow | None:
    return await session.get(RefreshTokenRow, token_hash)


async def revoke_family(session: AsyncSession, family_id: str) -> None:
    await session.execute(
        update(RefreshTokenRow).where(RefreshTokenRow.family_id == family_id).values(revoked=True)
    )


async def revoke_user_refresh_tokens(
    session: AsyncSession, user_id: str, organisation_id: str | None = None
) -> None:
    """Revoke the user's refresh tokens: those for `organisation_id`, or without one, all."""
    statement = update(RefreshTokenRow).where(RefreshTokenRow.user_id == user_id)
    if organisation_id is not None:
        statement = statement.where(RefreshTokenRow.organisation_id == organisation_id)
    await session.execute(statement.values(revoked=True))


async def published_keys(session: AsyncSession, now: dt.datetime) -> Sequence[SigningKeyRow]:
    """Keys that sign now or signed tokens that may still be valid, newest first."""
    statement = (
        select(SigningKeyRow)
        .where(or_(SigningKeyRow.published_until.is_(None), SigningKeyRow.published_until > now))
        .order_by(SigningKeyRow.created_at.desc())
    )
    return (await session.scalars(statement)).all()


async def retire_keys(
    session: AsyncSession, now: dt.datetime, published_until: dt.datetime
) -> None:
    await session.execute(
        update(SigningKeyRow)
        .where(SigningKeyRow.retired_at.is_(None))
        .values(retired_at=now, published_until=published_until)
    )


async def revocations_after(
    session: AsyncSession, after_id: int, now: dt.datetime
) -> Sequence[RevocationRow]:
    """Revocations appended after `after_id` that still matter at `now`, in feed order."""
    statement = (
        select(RevocationRow)
        .where(RevocationRow.id > after_id, RevocationRow.expires_at > now)
        .order_by(RevocationRow.id)
    )
    return (await session.scalars(statement)).all()


async def remember_assertion(
    session: AsyncSession, client_id: str, jti: str, expires_at: dt.datetime
) -> bool:
    """Record a client assertion's `jti`; False if it was seen before (a replay)."""
    try:
        async with session.begin_nested():
            session.add(ClientAssertionRow(jti=jti, client_id=client_id, expires_at=expires_at))
            await session.flush()
    except IntegrityError:
        return False
    return True
