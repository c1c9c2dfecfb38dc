"""SQL of organisations, users, memberships, recovery codes and browser sessions."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import Row, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from medicus.iam.models import (
    BrowserSessionRow,
    ExternalIdentityRow,
    InvitationRow,
    MembershipRow,
    OAuthClientRow,
    OrganisationRow,
    RecoveryCodeRow,
    UpstreamIdentityProviderRow,
    UpstreamLoginRow,
    UserRow,
)


async def organisation(session: AsyncSession, organisation_id: str) -> OrganisationRow | None:
    return await session.get(OrganisationRow, organisation_id)


async def organisation_by_iknr(session: AsyncSession, iknr: str) -> OrganisationRow | None:
    return await session.scalar(select(OrganisationRow).where(OrganisationRow.iknr == iknr))


async def organisation_by_telematik_id(
    session: AsyncSession, telematik_id: str
) -> OrganisationRow | None:
    statement = select(OrganisationRow).where(OrganisationRow.telematik_id == telematik_id)
    return await session.scalar(statement)


async def organisation_by_reference(
    session: AsyncSession, reference: str
) -> OrganisationRow | None:
    """An organisation by id, IK number or exact name (what an operator types on the CLI)."""
    statement = select(OrganisationRow).where(
        (OrganisationRow.id == reference)
        | (OrganisationRow.iknr == reference)
        | (OrganisationRow.name == reference)
    )
    return (await session.scalars(statement.limit(2))).first()


async def user(session: AsyncSession, user_id: str) -> UserRow | None:
    return await session.get(UserRow, user_id)


async def user_names(session: AsyncSession, user_ids: Collection[str]) -> dict[str, str]:
    """The display names of users, by id (unknown ids are left out)."""
    statement = select(UserRow.id, UserRow.display_name).where(UserRow.id.in_(sorted(user_ids)))
    return {row.id: row.display_name for row in await session.execute(statement)}


async def organisation_names(
    session: AsyncSession, organisation_ids: Collection[str]
) -> dict[str, str]:
    """The names of organisations, by id (unknown ids are left out)."""
    statement = select(OrganisationRow.id, OrganisationRow.name).where(
        OrganisationRow.id.in_(sorted(organisation_ids))
    )
    return {row.id: row.name for row in await session.execute(statement)}


async def client_names(session: AsyncSession, client_ids: Collection[str]) -> dict[str, str]:
    """The names of OAuth clients (apps, service accounts), by client id."""
    statement = select(OAuthClientRow.client_id, OAuthClientRow.name).where(
        OAuthClientRow.client_id.in_(sorted(client_ids))
    )
    return {row.client_id: row.name for row in await session.execute(statement)}


async def has_active_member(session: AsyncSession, organisation_id: str, role: str) -> bool:
    """Whether an active user works for the organisation in `role` (membership not
    suspended)."""
    statement = (
        select(MembershipRow.user_id)
        .join(UserRow, UserRow.id == MembershipRow.user_id)
        .where(
            MembershipRow.organisation_id == organisation_id,
            MembershipRow.role == role,
            MembershipRow.active.is_(True),
            UserRow.active.is_(True),
        )
        .limit(1)
    )
    return await session.scalar(statement) is not None


async def user_by_email(session: AsyncSession, email: str) -> UserRow | None:
    return await session.scalar(select(UserRow).where(UserRow.email == email))


async def membership(
    session: AsyncSession, user_id: str, organisation_id: str
) -> MembershipRow | None:
    return await session.get(MembershipRow, (user_id, organisation_id))


async def memberships_of(
    session: AsyncSession, user_id: str
) -> Sequence[Row[MembershipRow, OrganisationRow]]:
    """The user's memberships with their organisations, by organisation name."""
    statement = (
        select(MembershipRow, OrganisationRow)
        .join(OrganisationRow, OrganisationRow.id == MembershipRow.organisation_id)
        .where(MembershipRow.user_id == user_id, MembershipRow.active.is_(True))
        .order_by(OrganisationRow.name)
    )
    return (await session.execute(statement)).all()


async def organisation_ids_of(session: AsyncSession, user_id: str) -> Sequence[str]:
    """The organisations the user is a member of, suspended memberships included."""
    statement = select(MembershipRow.organisation_id).where(MembershipRow.user_id == user_id)
    return (await session.scalars(statement)).all()


async def members_of(
    session: AsyncSession, organisation_id: str
) -> Sequence[Row[MembershipRow, UserRow]]:
    """Every membership of the organisation, suspended ones included, by e-mail address."""
    statement = (
        select(MembershipRow, UserRow)
        .join(UserRow, UserRow.id == MembershipRow.user_id)
        .where(MembershipRow.organisation_id == organisation_id)
        .order_by(UserRow.email)
    )
    return (await session.execute(statement)).all()


async def update_membership(
    session: AsyncSession, user_id: str, organisation_id: str, **values: Any
) -> None:
    await session.execute(
        update(MembershipRow)
        .where(MembershipRow.user_id == user_id, MembershipRow.organisation_id == organisation_id)
        .values(**values)
    )


async def invitation(session: AsyncSession, token_hash: str) -> InvitationRow | None:
    return await session.get(InvitationRow, token_hash)


async def delete_invitation(session: AsyncSession, token_hash: str) -> None:
    await session.execute(delete(InvitationRow).where(InvitationRow.token_hash == token_hash))


async def accept_invitation(session: AsyncSession, token_hash: str, now: dt.datetime) -> bool:
    """Mark the invitation accepted unless it was already; True if this call accepted it."""
    statement = (
        update(InvitationRow)
        .where(InvitationRow.token_hash == token_hash, InvitationRow.accepted_at.is_(None))
        .values(accepted_at=now)
        .returning(InvitationRow.token_hash)
    )
    return (await session.execute(statement)).scalar_one_or_none() is not None


async def add(
    session: AsyncSession,
    row: OrganisationRow
    | UserRow
    | MembershipRow
    | RecoveryCodeRow
    | BrowserSessionRow
    | InvitationRow
    | ExternalIdentityRow
    | UpstreamLoginRow,
) -> None:
    session.add(row)
    await session.flush()


async def update_user(session: AsyncSession, user_id: str, **values: Any) -> None:
    await session.execute(update(UserRow).where(UserRow.id == user_id).values(**values))


async def replace_recovery_codes(
    session: AsyncSession, user_id: str, code_hashes: Sequence[str]
) -> None:
    await session.execute(delete(RecoveryCodeRow).where(RecoveryCodeRow.user_id == user_id))
    session.add_all(RecoveryCodeRow(user_id=user_id, code_hash=h) for h in code_hashes)
    await session.flush()


async def use_recovery_code(
    session: AsyncSession, user_id: str, code_hash: str, now: dt.datetime
) -> bool:
    """Mark an unused recovery code used; False if there is no such unused code."""
    statement = (
        update(RecoveryCodeRow)
        .where(
            RecoveryCodeRow.user_id == user_id,
            RecoveryCodeRow.code_hash == code_hash,
            RecoveryCodeRow.used_at.is_(None),
        )
        .values(used_at=now)
        .returning(RecoveryCodeRow.code_hash)
    )
    return (await session.execute(statement)).scalar_one_or_none() is not None


async def browser_session(session: AsyncSession, id_hash: str) -> BrowserSessionRow | None:
    return await session.get(BrowserSessionRow, id_hash)


async def update_browser_session(session: AsyncSession, id_hash: str, **values: Any) -> None:
    await session.execute(
        update(BrowserSessionRow).where(BrowserSessionRow.id_hash == id_hash).values(**values)
    )


async def revoke_browser_sessions(
    session: AsyncSession, user_id: str, organisation_id: str | None = None
) -> None:
    """End the user's sessions: those working for `organisation_id`, or without one, all."""
    statement = update(BrowserSessionRow).where(BrowserSessionRow.user_id == user_id)
    if organisation_id is not None:
        statement = statement.where(BrowserSessionRow.organisation_id == organisation_id)
    await session.execute(statement.values(revoked=True))


async def upstream_idp(
    session: AsyncSession, organisation_id: str
) -> UpstreamIdentityProviderRow | None:
    return await session.get(UpstreamIdentityProviderRow, organisation_id)


async def enabled_upstream_idps(
    session: AsyncSession,
) -> Sequence[Row[UpstreamIdentityProviderRow, OrganisationRow]]:
    statement = (
        select(UpstreamIdentityProviderRow, OrganisationRow)
        .join(OrganisationRow, OrganisationRow.id == UpstreamIdentityProviderRow.organisation_id)
        .where(UpstreamIdentityProviderRow.enabled.is_(True))
        .order_by(OrganisationRow.name)
    )
    return (await session.execute(statement)).all()


async def save_upstream_idp(session: AsyncSession, row: UpstreamIdentityProviderRow) -> None:
    await session.merge(row)
    await session.flush()


async def take_upstream_login(
    session: AsyncSession, state_hash: str, now: dt.datetime
) -> UpstreamLoginRow | None:
    """The pending login for a state, marked used; None if unknown, used or expired."""
    statement = (
        update(UpstreamLoginRow)
        .where(
            UpstreamLoginRow.state_hash == state_hash,
            UpstreamLoginRow.used.is_(False),
            UpstreamLoginRow.expires_at > now,
        )
        .values(used=True)
        .returning(UpstreamLoginRow.state_hash)
    )
    if (await session.execute(statement)).scalar_one_or_none() is None:
        return None
    return await session.get(UpstreamLoginRow, state_hash)


async def external_identity(
    session: AsyncSession, issuer: str, subject: str
) -> ExternalIdentityRow | None:
    return await session.get(ExternalIdentityRow, (issuer, subject))
