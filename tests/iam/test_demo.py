"""`medicus demo` data: two hospitals, a practice and their staff, idempotent and audited."""

from __future__ import annotations

from sqlalchemy import text

from medicus.demo import DEMO_ORGANISATIONS, load_demo
from medicus.platform import Platform
from tests.support.database import count


async def test_demo_creates_organisations_and_staff_once(fresh_platform: Platform) -> None:
    first = await load_demo(fresh_platform)
    emails = {email for org in DEMO_ORGANISATIONS for email, _, _ in org.staff}
    memberships = sum(len(org.staff) for org in DEMO_ORGANISATIONS)
    assert (first.organisations_created, first.users_created) == (3, len(emails))
    assert first.memberships_created == memberships

    second = await load_demo(fresh_platform)
    assert (second.organisations_created, second.users_created) == (0, 0)
    assert second.memberships_created == 0
    assert await count(fresh_platform, "organisation") == 3
    assert await count(fresh_platform, "app_user") == len(emails)


async def test_demo_is_audited(fresh_platform: Platform) -> None:
    summary = await load_demo(fresh_platform)
    await fresh_platform.audit.seal_all()
    report = await fresh_platform.audit.verify()
    assert report.intact
    # Each organisation and membership once; each user twice (created, password set).
    created = (
        summary.organisations_created + 2 * summary.users_created + summary.memberships_created
    )
    assert report.entries == created


async def test_a_consultant_works_for_two_hospitals(fresh_platform: Platform) -> None:
    await load_demo(fresh_platform)
    async with fresh_platform.database.snapshot() as session:
        rows = await session.execute(
            text(
                "SELECT COUNT(*) FROM membership JOIN app_user ON app_user.id = membership.user_id"
                " WHERE app_user.email = 'dr.yilmaz@uk-nordstadt.example'"
            )
        )
    assert rows.scalar_one() == 2
