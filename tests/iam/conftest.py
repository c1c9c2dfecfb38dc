"""A small world for identity tests: two hospitals, their staff, a public app, an ASGI client."""

from __future__ import annotations

import email
import email.message
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller

from medicus.app import create_app
from medicus.iam.roles import MfaPolicy, OrganisationType, Role
from medicus.platform import Platform, build_platform
from tests.conftest import make_settings
from tests.e2e.conftest import free_port

PASSWORD = "correct horse battery staple 42"
REDIRECT_URI = "http://127.0.0.1:9999/callback"
APP_SCOPE = "openid fhirUser profile offline_access launch/patient user/*.rs patient/*.rs"


@dataclass
class World:
    platform: Platform
    http: httpx.AsyncClient
    hospital_a: str
    hospital_b: str
    physician: str
    consultant: str
    admin_a: str
    app_client_id: str


async def add_user(
    platform: Platform, session: object, email: str, memberships: list[tuple[str, Role]]
) -> str:
    identity = platform.identity
    user = await identity.ensure_user(session, "system:test", email, email.split("@")[0])  # type: ignore[arg-type]
    for organisation_id, role in memberships:
        await identity.ensure_membership(session, "system:test", user.id, organisation_id, role)  # type: ignore[arg-type]
    await identity.set_password(session, "system:test", user.id, PASSWORD)  # type: ignore[arg-type]
    return user.id


class Mailbox:
    """A real SMTP server on loopback (aiosmtpd) that keeps what it receives."""

    def __init__(self) -> None:
        self.messages: list[email.message.Message] = []
        self.port = 0
        self.refusing = False

    async def handle_DATA(self, _server: object, _session: object, envelope: Any) -> str:
        if self.refusing:
            return "554 Transaction failed"
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"


@contextmanager
def running_mailbox() -> Iterator[Mailbox]:
    """An SMTP server on a free loopback port for as long as the block runs."""
    box = Mailbox()
    box.port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=box.port)
    controller.start()
    try:
        yield box
    finally:
        controller.stop()


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    with running_mailbox() as box:
        yield box


@pytest.fixture
async def world(tmp_path: Path, fresh_database_url: str, mailbox: Mailbox) -> AsyncIterator[World]:
    settings = make_settings(
        tmp_path, fresh_database_url, smtp_url=f"smtp://127.0.0.1:{mailbox.port}"
    )
    platform = build_platform(settings)
    identity = platform.identity
    async with platform.database.transaction() as session:
        a = await identity.create_organisation(
            session,
            "system:test",
            "Klinikum A",
            OrganisationType.HOSPITAL,
            "261100001",
            None,
            MfaPolicy.CLINICAL,
        )
        b = await identity.create_organisation(
            session,
            "system:test",
            "Klinikum B",
            OrganisationType.HOSPITAL,
            "261100002",
            None,
            MfaPolicy.CLINICAL,
        )
        physician = await add_user(
            platform, session, "dr.a@klinikum-a.example", [(a, Role.PHYSICIAN)]
        )
        consultant = await add_user(
            platform,
            session,
            "dr.ab@klinikum-a.example",
            [(a, Role.PHYSICIAN), (b, Role.PHYSICIAN)],
        )
        admin_a = await add_user(
            platform, session, "admin@klinikum-a.example", [(a, Role.ORGANISATION_ADMIN)]
        )
        app_client_id = await identity.create_client(
            session, "system:test", "Ward app", a, APP_SCOPE, redirect_uris=[REDIRECT_URI]
        )
    app = create_app(platform.settings, platform)
    await platform.start_background_work()
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    # The identity tests read the pages in English; test_login_pages_speak_german reads German.
    async with httpx.AsyncClient(
        transport=transport,
        base_url=platform.settings.public_url,
        headers={"Accept-Language": "en"},
    ) as http:
        yield World(platform, http, a, b, physician, consultant, admin_a, app_client_id)
    await platform.stop_background_work()
    await platform.close()
