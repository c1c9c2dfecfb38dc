"""SQL of the messenger's tables, and what it reads of `iam`'s (who works where). Each function
runs inside the caller's transaction or snapshot; `messenger.service` decides."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import delete, exists, func, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from medicus.iam.models import BrowserSessionRow, MembershipRow, OrganisationRow, UserRow
from medicus.iam.roles import Role
from medicus.messenger.models import (
    AccountRow,
    BackupKeyRow,
    ContactRuleRow,
    FederationRow,
    ListingRow,
    LoginTokenRow,
    MediaRow,
    PortalDeviceRow,
    RoomSubjectRow,
    ServiceRow,
)

STAFF_ROLES = tuple(str(role) for role in Role if role not in (Role.PATIENT, Role.SERVICE))


async def staff_organisations(session: AsyncSession, user_id: str) -> frozenset[str]:
    """The organisations the user works for now (active user, active staff membership)."""
    found = await session.scalars(
        select(MembershipRow.organisation_id)
        .join(UserRow, UserRow.id == MembershipRow.user_id)
        .where(
            MembershipRow.user_id == user_id,
            MembershipRow.active.is_(True),
            MembershipRow.role.in_(STAFF_ROLES),
            UserRow.active.is_(True),
        )
    )
    return frozenset(found)


async def display_name(session: AsyncSession, user_id: str) -> str | None:
    found: str | None = await session.scalar(
        select(UserRow.display_name).where(UserRow.id == user_id)
    )
    return found


async def listed_in(session: AsyncSession, user_id: str) -> frozenset[str]:
    """The organisations that list the user in the directory, themselves or as the account
    of one of their services."""
    people = select(ListingRow.organisation_id).where(ListingRow.user_id == user_id)
    services = select(ServiceRow.organisation_id).where(ServiceRow.user_id == user_id)
    return frozenset(await session.scalars(people.union(services)))


async def listed_staff(
    session: AsyncSession, organisation_id: str
) -> Sequence[tuple[str, str, str]]:
    """(user id, display name, role) of the organisation's listed members who work for it now."""
    found = await session.execute(
        select(UserRow.id, UserRow.display_name, MembershipRow.role)
        .join(ListingRow, ListingRow.user_id == UserRow.id)
        .join(
            MembershipRow,
            (MembershipRow.user_id == UserRow.id)
            & (MembershipRow.organisation_id == ListingRow.organisation_id),
        )
        .where(
            ListingRow.organisation_id == organisation_id,
            MembershipRow.active.is_(True),
            MembershipRow.role.in_(STAFF_ROLES),
            UserRow.active.is_(True),
        )
        .order_by(UserRow.id)
    )
    return [(user_id, name, role) for user_id, name, role in found.all()]


async def services(session: AsyncSession, organisation_id: str) -> Sequence[ServiceRow]:
    found = await session.scalars(
        select(ServiceRow)
        .where(ServiceRow.organisation_id == organisation_id)
        .order_by(ServiceRow.name, ServiceRow.id)
    )
    return found.all()


async def add_service(session: AsyncSession, row: ServiceRow) -> None:
    session.add(row)


async def remove_service(session: AsyncSession, organisation_id: str, service_id: str) -> bool:
    removed = await session.execute(
        delete(ServiceRow).where(
            ServiceRow.id == service_id, ServiceRow.organisation_id == organisation_id
        )
    )
    return bool(getattr(removed, "rowcount", 0))


async def organisation(session: AsyncSession, organisation_id: str) -> OrganisationRow | None:
    return await session.get(OrganisationRow, organisation_id)


async def organisations_of(session: AsyncSession, user_id: str) -> frozenset[str]:
    """Every organisation the user is or was a member of (to sync their directory entries)."""
    found = await session.scalars(
        select(MembershipRow.organisation_id).where(MembershipRow.user_id == user_id)
    )
    return frozenset(found)


async def set_listed(
    session: AsyncSession, user_id: str, organisation_id: str, by: str, now: dt.datetime
) -> None:
    if await session.get(ListingRow, (user_id, organisation_id)) is None:
        session.add(
            ListingRow(
                user_id=user_id, organisation_id=organisation_id, listed_by=by, listed_at=now
            )
        )


async def unset_listed(session: AsyncSession, user_id: str, organisation_id: str) -> None:
    await session.execute(
        delete(ListingRow).where(
            ListingRow.user_id == user_id, ListingRow.organisation_id == organisation_id
        )
    )


async def federation(session: AsyncSession) -> frozenset[str]:
    return frozenset(await session.scalars(select(FederationRow.organisation_id)))


async def add_to_federation(
    session: AsyncSession, organisation_id: str, by: str, now: dt.datetime
) -> bool:
    if await session.get(FederationRow, organisation_id) is not None:
        return False
    session.add(FederationRow(organisation_id=organisation_id, added_by=by, added_at=now))
    return True


async def remove_from_federation(session: AsyncSession, organisation_id: str) -> bool:
    removed = await session.execute(
        delete(FederationRow).where(FederationRow.organisation_id == organisation_id)
    )
    return bool(getattr(removed, "rowcount", 0))


async def contact_rule(session: AsyncSession, owner_id: str, contact: str) -> str | None:
    found: str | None = await session.scalar(
        select(ContactRuleRow.kind).where(
            ContactRuleRow.owner_id == owner_id, ContactRuleRow.contact == contact
        )
    )
    return found


async def contact_rules(session: AsyncSession, owner_id: str) -> Sequence[ContactRuleRow]:
    found = await session.scalars(
        select(ContactRuleRow)
        .where(ContactRuleRow.owner_id == owner_id)
        .order_by(ContactRuleRow.contact)
    )
    return found.all()


async def count_contact_rules(session: AsyncSession, owner_id: str) -> int:
    found = await session.scalar(
        select(func.count()).select_from(ContactRuleRow).where(ContactRuleRow.owner_id == owner_id)
    )
    return int(found or 0)


async def put_contact_rule(
    session: AsyncSession, owner_id: str, contact: str, kind: str, now: dt.datetime
) -> None:
    row = await session.get(ContactRuleRow, (owner_id, contact))
    if row is None:
        session.add(ContactRuleRow(owner_id=owner_id, contact=contact, kind=kind, created_at=now))
    else:
        row.kind = kind


async def delete_contact_rule(session: AsyncSession, owner_id: str, contact: str) -> bool:
    removed = await session.execute(
        delete(ContactRuleRow).where(
            ContactRuleRow.owner_id == owner_id, ContactRuleRow.contact == contact
        )
    )
    return bool(getattr(removed, "rowcount", 0))


async def add_login_token(session: AsyncSession, row: LoginTokenRow) -> None:
    session.add(row)


async def redeem_login_token(
    session: AsyncSession, jti: str, user_id: str, device_id: str | None, now: dt.datetime
) -> bool:
    """Mark the token used, if it is this user's, unused, unexpired and either for any device
    or for `device_id`: True if it was."""
    any_device = LoginTokenRow.device_id.is_(None)
    redeemed = await session.execute(
        update(LoginTokenRow)
        .where(
            LoginTokenRow.jti == jti,
            LoginTokenRow.user_id == user_id,
            LoginTokenRow.used_at.is_(None),
            LoginTokenRow.expires_at > now,
            any_device
            if device_id is None
            else any_device | (LoginTokenRow.device_id == device_id),
        )
        .values(used_at=now)
    )
    return getattr(redeemed, "rowcount", 0) == 1


async def add_portal_device(
    session: AsyncSession, device_id: str, user_id: str, browser_session: str, now: dt.datetime
) -> None:
    session.add(
        PortalDeviceRow(
            device_id=device_id, user_id=user_id, browser_session=browser_session, created_at=now
        )
    )


async def portal_devices_of_ended_sessions(
    session: AsyncSession, now: dt.datetime
) -> Sequence[tuple[str, str]]:
    """(device id, user id) of the portal's Matrix devices whose browser session has ended:
    logged out, revoked, expired or gone."""
    live = exists().where(
        BrowserSessionRow.id_hash == PortalDeviceRow.browser_session,
        BrowserSessionRow.revoked.is_(False),
        BrowserSessionRow.expires_at > now,
    )
    found = await session.execute(
        select(PortalDeviceRow.device_id, PortalDeviceRow.user_id).where(~live)
    )
    return [(device_id, user_id) for device_id, user_id in found.all()]


async def forget_portal_device(session: AsyncSession, device_id: str) -> None:
    await session.execute(delete(PortalDeviceRow).where(PortalDeviceRow.device_id == device_id))


async def backup_key(session: AsyncSession, user_id: str) -> BackupKeyRow | None:
    return await session.get(BackupKeyRow, user_id)


async def put_backup_key(
    session: AsyncSession, user_id: str, version: str, sealed_key: str, now: dt.datetime
) -> None:
    """Keep (or replace) the user's sealed backup key, in one statement (INSERT ... ON
    CONFLICT DO UPDATE): two tabs storing at once must not fail on the key."""
    insert = postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    values = {"version": version, "sealed_key": sealed_key, "updated_at": now}
    await session.execute(
        insert(BackupKeyRow)
        .values(user_id=user_id, **values)
        .on_conflict_do_update(index_elements=["user_id"], set_=values)
    )


async def forget_backup_key(session: AsyncSession, user_id: str) -> None:
    await session.execute(delete(BackupKeyRow).where(BackupKeyRow.user_id == user_id))


async def forget_login_tokens(session: AsyncSession, before: dt.datetime) -> None:
    await session.execute(delete(LoginTokenRow).where(LoginTokenRow.expires_at < before))


async def ensure_account(
    session: AsyncSession, user_id: str, matrix_id: str, now: dt.datetime
) -> None:
    """Remember the user's Matrix account unless it is known (INSERT ... ON CONFLICT DO
    NOTHING: first logins arrive together)."""
    insert = postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    await session.execute(
        insert(AccountRow)
        .values(user_id=user_id, matrix_id=matrix_id, created_at=now, locked=False)
        .on_conflict_do_nothing()
    )


async def accounts_out_of_step(session: AsyncSession) -> Sequence[tuple[str, str, bool]]:
    """(user id, Matrix ID, should be locked) of every account whose lock is not what its
    user's memberships say: locked without a staff membership left, unlocked with one."""
    working = exists().where(
        MembershipRow.user_id == AccountRow.user_id,
        MembershipRow.active.is_(True),
        MembershipRow.role.in_(STAFF_ROLES),
        UserRow.id == MembershipRow.user_id,
        UserRow.active.is_(True),
    )
    found = await session.execute(
        select(AccountRow.user_id, AccountRow.matrix_id, ~working).where(
            AccountRow.locked == working
        )
    )
    return [(user_id, matrix_id, bool(lock)) for user_id, matrix_id, lock in found.all()]


async def account(session: AsyncSession, user_id: str) -> AccountRow | None:
    return await session.get(AccountRow, user_id)


async def set_account_locked(session: AsyncSession, user_id: str, locked: bool) -> None:
    await session.execute(
        update(AccountRow).where(AccountRow.user_id == user_id).values(locked=locked)
    )


async def room_subject(session: AsyncSession, room_id: str) -> RoomSubjectRow | None:
    return await session.get(RoomSubjectRow, room_id)


async def put_room_subject(session: AsyncSession, row: RoomSubjectRow) -> None:
    await session.merge(row)


async def delete_room_subject(session: AsyncSession, room_id: str) -> bool:
    removed = await session.execute(delete(RoomSubjectRow).where(RoomSubjectRow.room_id == room_id))
    return bool(getattr(removed, "rowcount", 0))


async def add_medium(session: AsyncSession, row: MediaRow) -> None:
    session.add(row)


async def medium(session: AsyncSession, media_id: str) -> MediaRow | None:
    return await session.get(MediaRow, media_id)
