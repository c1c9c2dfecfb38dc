"""SQL of the portal's messages page: whom the caller may reach through the messenger, as the
invite rules see it (`messenger.rules`): the staff of the caller's own organisations, and the
staff whom other organisations on the federation list list in the directory. Reads `iam`'s
and `messenger`'s tables; runs inside the caller's snapshot."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import Select, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from medicus.iam.models import MembershipRow, OrganisationRow, UserRow
from medicus.messenger.models import FederationRow, ListingRow
from medicus.messenger.repository import STAFF_ROLES, staff_organisations

Reachable = tuple[str, str, str]
"""(user id, display name, organisation name)"""


async def reachable(
    session: AsyncSession, caller_id: str, words: str, limit: int
) -> Sequence[Reachable]:
    """Up to `limit` people the caller may invite whose name or e-mail address contains
    `words` (any case), each with the organisation through which they are reachable; people
    of the caller's organisations first, then by name."""
    own = set(await staff_organisations(session, caller_id))
    federation = set(await session.scalars(select(FederationRow.organisation_id)))
    found: list[Reachable] = []
    if own:
        colleagues = _people(words, caller_id).where(MembershipRow.organisation_id.in_(own))
        rows = await session.execute(colleagues.limit(limit))
        found.extend((uid, name, org) for uid, name, org in rows.all())
    others = federation - own
    if own & federation and others and len(found) < limit:
        listed = (
            _people(words, caller_id)
            .join(
                ListingRow,
                (ListingRow.user_id == MembershipRow.user_id)
                & (ListingRow.organisation_id == MembershipRow.organisation_id),
            )
            .where(MembershipRow.organisation_id.in_(others))
        )
        rows = await session.execute(listed.limit(limit))
        found.extend((uid, name, org) for uid, name, org in rows.all())
    return _once_each(found)[:limit]


def _people(words: str, caller_id: str) -> Select[str, str, str]:
    """Active staff (user id, name, organisation name) other than the caller, matching every
    word of `words` in their name or e-mail address."""
    statement = (
        select(UserRow.id, UserRow.display_name, OrganisationRow.name)
        .join(MembershipRow, MembershipRow.user_id == UserRow.id)
        .join(OrganisationRow, OrganisationRow.id == MembershipRow.organisation_id)
        .where(
            UserRow.active.is_(True),
            UserRow.id != caller_id,
            MembershipRow.active.is_(True),
            MembershipRow.role.in_(STAFF_ROLES),
        )
        .order_by(func.lower(UserRow.display_name), UserRow.id)
    )
    for word in words.lower().split()[:5]:
        pattern = "%" + word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        statement = statement.where(
            or_(
                func.lower(UserRow.display_name).like(pattern, escape="\\"),
                func.lower(UserRow.email).like(pattern, escape="\\"),
            )
        )
    return statement


def _once_each(found: Iterable[Reachable]) -> list[Reachable]:
    seen: set[str] = set()
    kept: list[Reachable] = []
    for row in found:
        if row[0] not in seen:
            seen.add(row[0])
            kept.append(row)
    return kept
