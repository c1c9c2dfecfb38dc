"""Two hospitals on one platform, FHIR tokens to write their data, and a physician of
hospital B who logs in to the portal through the real login pages (password and TOTP)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from medicus.app import create_app
from medicus.iam.roles import Role
from medicus.platform import Platform, build_platform
from tests.access.conftest import Region
from tests.conftest import make_settings, register_organisation
from tests.iam.browser import Browser
from tests.iam.conftest import PASSWORD, Mailbox, add_user, running_mailbox
from tests.support import clients, resources
from tests.support.clock import MovableClock
from tests.support.database import rows

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
PHYSICIAN = "dr.b@hospital-b.example"
NURSE = "nurse.b@hospital-b.example"
DPO = "dpo.b@hospital-b.example"
ADMIN = "admin.b@hospital-b.example"
PLATFORM_ADMIN = "operator@platform.example"
"""A platform administrator, once `add_platform_admin` made them one."""


@dataclass
class Ward:
    region: Region
    physician: Browser
    mailbox: Mailbox

    @property
    def http(self) -> httpx.AsyncClient:
        return self.region.http

    @property
    def platform(self) -> Platform:
        return self.region.platform

    @asynccontextmanager
    async def browser_of(self, email: str) -> AsyncIterator[Browser]:
        """Another person's browser (cookies of its own) on the same platform."""
        transport = httpx.ASGITransport(app=create_app(self.platform.settings, self.platform))
        base_url = self.platform.settings.public_url
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as http:
            yield Browser(http, email, PASSWORD)


@pytest.fixture
async def ward(tmp_path: Path, fresh_database_url: str, clock: MovableClock) -> AsyncIterator[Ward]:
    with running_mailbox() as mailbox:
        settings = make_settings(
            tmp_path, fresh_database_url, smtp_url=f"smtp://127.0.0.1:{mailbox.port}"
        )
        platform = build_platform(settings, clock)
        try:
            async for ward in _ward(platform, mailbox):
                yield ward
        finally:
            await platform.close()


async def _ward(platform: Platform, mailbox: Mailbox) -> AsyncIterator[Ward]:
    for organisation in ("hospital-a", "hospital-b", "hospital-c"):
        await register_organisation(platform, organisation)
    async with platform.database.transaction() as session:
        for email, role in (
            (PHYSICIAN, Role.PHYSICIAN),
            (NURSE, Role.NURSE),
            (DPO, Role.DATA_PROTECTION_OFFICER),
            (ADMIN, Role.ORGANISATION_ADMIN),
        ):
            await add_user(platform, session, email, [("hospital-b", role)])

    async def organisation(organisation_id: str, kind: str) -> None:
        await register_organisation(platform, organisation_id, kind)

    async def token(
        organisation: str = "hospital-a", role: str = "physician", scope: str = "user/*.cruds"
    ) -> dict[str, str]:
        return await clients.bearer(platform, organisation, role, scope)

    await platform.start_background_work()
    transport = httpx.ASGITransport(app=create_app(platform.settings, platform))
    async with httpx.AsyncClient(
        transport=transport, base_url=platform.settings.public_url
    ) as http:
        region = Region(platform, http, token, organisation)
        ward = Ward(region, Browser(http, PHYSICIAN, PASSWORD), mailbox)
        yield ward
    await platform.stop_background_work()


async def add_platform_admin(ward: Ward) -> None:
    """Make PLATFORM_ADMIN a platform administrator of the platform operator `platform`."""
    platform = ward.platform
    await register_organisation(platform, "platform", "platform_operator")
    async with platform.database.transaction() as session:
        await add_user(platform, session, PLATFORM_ADMIN, [("platform", Role.PLATFORM_ADMIN)])


def csrf_of(page: str) -> str:
    """The CSRF token of a page's forms."""
    found = _CSRF.search(page)
    assert found is not None, page[:500]
    return found.group(1)


async def sealed_entries(ward: Ward, action: str, columns: str) -> list[tuple[Any, ...]]:
    """`columns` of the audit entries of `action`, in the trail's order (pending ones sealed
    first)."""
    await ward.platform.audit.seal_all()
    statement = f"SELECT {columns} FROM audit_entry WHERE action = :action ORDER BY seq"
    return [tuple(row) for row in await rows(ward.platform, statement, action=action)]


ANNA_KVNR = "A123456780"


async def anna_at_both_hospitals(ward: Ward) -> dict[str, str]:
    """Hospital A holds a record of Anna Müller with a haemoglobin value; hospital B, the
    physician's, holds its own record of her (same KVNR): their ids as `a1` and `b1`."""
    region = ward.region
    anna = resources.patient(ANNA_KVNR, "Müller", "Anna", "1964-05-17")
    a1 = await region.create("hospital-a", anna)
    lab = resources.observation(
        a1, when="2026-11-02T08:00:00Z", valueQuantity=resources.grams_per_decilitre(9.1)
    )
    await region.create("hospital-a", lab)
    b1 = await region.create("hospital-b", anna)
    return {"a1": a1, "b1": b1}
