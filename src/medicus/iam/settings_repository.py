"""SQL of an organisation's settings as its administrators change them: its OAuth clients,
its upstream identity provider, its second-factor policy; and the platform's list of
organisations."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import NamedTuple

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from medicus.iam.models import (
    MembershipRow,
    OAuthClientRow,
    OrganisationRow,
    RefreshTokenRow,
    UpstreamIdentityProviderRow,
)


class CountedOrganisation(NamedTuple):
    organisation: OrganisationRow
    members: int


async def clients_of(session: AsyncSession, organisation_id: str) -> Sequence[OAuthClientRow]:
    """The organisation's OAuth clients, active ones first, then by name."""
    statement = (
        select(OAuthClientRow)
        .where(OAuthClientRow.organisation_id == organisation_id)
        .order_by(OAuthClientRow.active.desc(), OAuthClientRow.name, OAuthClientRow.client_id)
    )
    return (await session.scalars(statement)).all()


async def deactivate_client(session: AsyncSession, client_id: str) -> bool:
    """Mark an active client inactive; False if it was not active."""
    statement = (
        update(OAuthClientRow)
        .where(OAuthClientRow.client_id == client_id, OAuthClientRow.active.is_(True))
        .values(active=False)
        .returning(OAuthClientRow.client_id)
    )
    return (await session.execute(statement)).scalar_one_or_none() is not None


async def open_grants_of_client(
    session: AsyncSession, client_id: str, now: dt.datetime
) -> list[str]:
    """The refresh-token families (grants) of a client that still have a live token."""
    statement = (
        select(RefreshTokenRow.family_id)
        .where(
            RefreshTokenRow.client_id == client_id,
            RefreshTokenRow.revoked.is_(False),
            RefreshTokenRow.expires_at > now,
        )
        .distinct()
        .order_by(RefreshTokenRow.family_id)
    )
    return list((await session.scalars(statement)).all())


async def revoke_client_refresh_tokens(session: AsyncSession, client_id: str) -> None:
    await session.execute(
        update(RefreshTokenRow).where(RefreshTokenRow.client_id == client_id).values(revoked=True)
    )


async def change_upstream_idp(
    session: AsyncSession,
    organisation_id: str,
    issuer: str,
    client_id: str,
    trust_upstream_mfa: bool,
) -> None:
    """Change what the organisation's upstream provider is, keeping its client secret."""
    await session.execute(
        update(UpstreamIdentityProviderRow)
        .where(UpstreamIdentityProviderRow.organisation_id == organisation_id)
        .values(issuer=issuer, client_id=client_id, trust_upstream_mfa=trust_upstream_mfa)
    )


async def delete_upstream_idp(session: AsyncSession, organisation_id: str) -> bool:
    """Remove the organisation's upstream provider; False if it had none."""
    statement = (
        delete(UpstreamIdentityProviderRow)
        .where(UpstreamIdentityProviderRow.organisation_id == organisation_id)
        .returning(UpstreamIdentityProviderRow.organisation_id)
    )
    return (await session.execute(statement)).scalar_one_or_none() is not None


async def set_mfa_policy(session: AsyncSession, organisation_id: str, policy: str) -> None:
    await session.execute(
        update(OrganisationRow)
        .where(OrganisationRow.id == organisation_id)
        .values(mfa_policy=policy)
    )


async def organisations_with_member_counts(session: AsyncSession) -> list[CountedOrganisation]:
    """Every organisation by name, with how many memberships it has (suspended included)."""
    members = (
        select(MembershipRow.organisation_id, func.count().label("members"))
        .group_by(MembershipRow.organisation_id)
        .subquery()
    )
    statement = (
        select(OrganisationRow, func.coalesce(members.c.members, 0))
        .outerjoin(members, members.c.organisation_id == OrganisationRow.id)
        .order_by(OrganisationRow.name, OrganisationRow.id)
    )
    return [CountedOrganisation(row, int(count)) for row, count in await session.execute(statement)]
