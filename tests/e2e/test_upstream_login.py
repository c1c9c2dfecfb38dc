"""Login through a hospital's own OpenID Connect provider, with real OIDC on both sides: a
second medicus (a real server process) plays the hospital's provider; the platform under test
runs in-process and talks to it over HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from medicus.app import create_app
from medicus.iam import repository
from medicus.iam.roles import MfaPolicy, OrganisationType, Role
from medicus.platform import Platform, build_platform
from tests.conftest import DatabaseFactory, make_settings
from tests.e2e.conftest import RunningServer, admin
from tests.iam.browser import Browser

PASSWORD = "a long and unusual passphrase 7"
EMAIL = "dr.up@klinikum-b.example"


@dataclass
class Federation:
    platform: Platform
    http: httpx.AsyncClient
    organisation: str
    hospital_idp: RunningServer


@pytest.fixture
async def platform_of_its_own(
    tmp_path: Path, database_factory: DatabaseFactory
) -> AsyncIterator[Platform]:
    """The platform under test, with a database apart from the hospital provider's (on
    PostgreSQL, `server` uses the test's fresh database)."""
    url = await asyncio.to_thread(database_factory.new_url)
    platform = build_platform(make_settings(tmp_path / "platform", url))
    yield platform
    await platform.close()


@pytest.fixture
async def federation(
    server: RunningServer, platform_of_its_own: Platform
) -> AsyncIterator[Federation]:
    """The hospital's provider knows the doctor and has registered the platform as a client;
    the platform knows the doctor as a member of the hospital's organisation."""
    platform = platform_of_its_own
    admin(
        server,
        "create-org",
        "Klinikum B IdP",
        "--type",
        "hospital",
        "--iknr",
        "263300001",
        "--mfa-policy",
        "none",
    )
    for email in (EMAIL, "stranger@klinikum-b.example"):
        admin(
            server,
            "create-user",
            email,
            "--org",
            "263300001",
            "--role",
            "physician",
            "--password-stdin",
            stdin=PASSWORD + "\n",
        )
    callback = f"{platform.settings.public_url}/login/upstream/callback"
    client = admin(
        server,
        "create-client",
        "medicus platform",
        "--org",
        "263300001",
        "--redirect-uri",
        callback,
        "--scope",
        "openid email profile",
    )

    async with platform.database.transaction() as session:
        organisation = await platform.identity.create_organisation(
            session,
            "system:test",
            "Klinikum B",
            OrganisationType.HOSPITAL,
            "263300002",
            None,
            MfaPolicy.CLINICAL,
        )
        user = await platform.identity.ensure_user(session, "system:test", EMAIL, "Dr. Up")
        await platform.identity.ensure_membership(
            session, "system:test", user.id, organisation, Role.PHYSICIAN
        )
    await platform.upstream.configure(
        organisation, server.base_url, client["client_id"], None, True, "system:test"
    )
    await platform.start_background_work()
    transport = httpx.ASGITransport(app=create_app(platform.settings, platform))
    async with httpx.AsyncClient(
        transport=transport,
        base_url=platform.settings.public_url,
        headers={"Accept-Language": "en"},  # the assertions read the English pages
    ) as http:
        yield Federation(platform, http, organisation, server)
    await platform.stop_background_work()


async def _through_the_hospital(federation: Federation, email: str) -> httpx.Response:
    """Start at the platform, log in at the hospital's provider, come back with the answer."""
    start = await federation.http.get(
        f"/login/upstream/{federation.organisation}", params={"next": "/account"}
    )
    assert start.status_code == 303
    assert start.headers["location"].startswith(federation.hospital_idp.base_url)
    async with httpx.AsyncClient(base_url=federation.hospital_idp.base_url) as hospital:
        answer = await Browser(hospital, email, PASSWORD).follow(
            await hospital.get(start.headers["location"])
        )
    assert answer.status_code == 302, answer.text
    callback = urlsplit(answer.headers["location"])
    assert callback.path == "/login/upstream/callback"
    return await federation.http.get(f"{callback.path}?{callback.query}")


async def test_a_doctor_logs_in_through_the_hospitals_provider(federation: Federation) -> None:
    login_page = await federation.http.get("/login")
    assert f"/login/upstream/{federation.organisation}" in login_page.text

    back = await _through_the_hospital(federation, EMAIL)
    assert back.status_code == 303
    assert back.headers["location"] == "/account"
    account = await federation.http.get("/account")
    assert "Dr. Up" in account.text
    assert "Klinikum B" in account.text

    federation.http.cookies.clear()
    again = await _through_the_hospital(federation, EMAIL)
    assert again.headers["location"] == "/account"


async def test_the_answer_cannot_be_replayed(federation: Federation) -> None:
    start = await federation.http.get(f"/login/upstream/{federation.organisation}")
    async with httpx.AsyncClient(base_url=federation.hospital_idp.base_url) as hospital:
        answer = await Browser(hospital, EMAIL, PASSWORD).follow(
            await hospital.get(start.headers["location"])
        )
    callback = urlsplit(answer.headers["location"])
    first = await federation.http.get(f"{callback.path}?{callback.query}")
    assert first.status_code == 303
    replay = await federation.http.get(f"{callback.path}?{callback.query}")
    assert replay.status_code == 403
    assert "expired or was used" in replay.text


async def test_someone_without_an_account_here_is_refused(federation: Federation) -> None:
    back = await _through_the_hospital(federation, "stranger@klinikum-b.example")
    assert back.status_code == 403
    assert "invitation" in back.text


async def test_without_trust_medicus_asks_for_its_own_second_factor(
    federation: Federation,
) -> None:
    async with federation.platform.database.snapshot() as session:
        provider = await repository.upstream_idp(session, federation.organisation)
    assert provider is not None
    await federation.platform.upstream.configure(
        federation.organisation, provider.issuer, provider.client_id, None, False, "system:test"
    )
    back = await _through_the_hospital(federation, EMAIL)
    assert back.headers["location"].startswith("/login/enrol")
