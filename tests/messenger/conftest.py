"""The messenger as the tests meet it: one real Synapse on loopback for the whole session
(started by medicus's own code, as `medicus serve` starts it), medicus served in front of it,
two hospitals with staff, and matrix-nio clients that log in through medicus."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from nio import AsyncClient, AsyncClientConfig, LoginResponse

from medicus.iam.roles import Role
from medicus.messenger.homeserver import LOGIN_TOKEN_TYPE, Homeserver
from medicus.platform import Platform, build_platform
from tests.conftest import register_organisation
from tests.iam.conftest import add_user
from tests.support.clients import bearer
from tests.support.messenger import SERVER_NAME, messenger_settings
from tests.support.served import serving

HOSPITAL_A = "klinikum-a"
HOSPITAL_B = "klinikum-b"
HOSPITAL_C = "klinikum-c"


@dataclass
class Member:
    user_id: str
    organisation: str
    headers: dict[str, str]
    matrix_id: str


@dataclass
class Region:
    """Medicus served in front of Synapse, and its staff (the platform here shares the
    served one's database, to set things up)."""

    base_url: str
    platform: Platform
    http: httpx.AsyncClient
    alice: Member
    """A physician at Klinikum A."""
    bob: Member
    """A physician at Klinikum B."""
    carol: Member
    """A nurse at Klinikum A."""
    dave: Member
    """A physician at Klinikum C, which is not on the federation list."""

    async def login_token(self, who: Member) -> dict[str, Any]:
        answer = await self.http.post("/messenger/login-token", headers=who.headers)
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    async def client(self, who: Member, store: Path | None = None) -> AsyncClient:
        """A matrix-nio client of `who`, logged in through medicus (end-to-end encryption
        on when it gets a `store`)."""
        config = AsyncClientConfig(encryption_enabled=store is not None, store_sync_tokens=False)
        client = AsyncClient(
            self.base_url, who.matrix_id, store_path=str(store or ""), config=config
        )
        login = await client.login_raw(
            {"type": LOGIN_TOKEN_TYPE, "token": (await self.login_token(who))["token"]}
        )
        assert isinstance(login, LoginResponse), login
        return client

    async def admin_headers(self, organisation: str) -> dict[str, str]:
        """An organisation admin's bearer header."""
        admin = await bearer(
            self.platform, organisation, role="organisation_admin", scope="user/*.cruds admin"
        )
        return {"Authorization": admin["Authorization"]}

    async def list_in_directory(self, who: Member) -> None:
        answer = await self.http.put(
            f"/messenger/organisations/{who.organisation}/listing/{who.user_id}",
            json={"listed": True},
            headers=await self.admin_headers(who.organisation),
        )
        assert answer.status_code == 204, answer.text


async def _member(
    platform: Platform, email: str, organisation: str, role: Role = Role.PHYSICIAN
) -> Member:
    await register_organisation(platform, organisation)
    async with platform.database.transaction() as session:
        user_id = await add_user(platform, session, email, [(organisation, role)])
    token = await bearer(platform, organisation, role=str(role), subject=user_id)
    matrix_id = f"@{user_id}:{SERVER_NAME}"
    return Member(user_id, organisation, {"Authorization": token["Authorization"]}, matrix_id)


@pytest.fixture
async def region(
    tmp_path: Path, fresh_database_url: str, synapse: Homeserver
) -> AsyncIterator[Region]:
    settings = messenger_settings(tmp_path, fresh_database_url, synapse)
    platform = build_platform(settings)
    members = [
        await _member(platform, "alice@klinikum-a.example", HOSPITAL_A),
        await _member(platform, "bob@klinikum-b.example", HOSPITAL_B),
        await _member(platform, "carol@klinikum-a.example", HOSPITAL_A, Role.NURSE),
        await _member(platform, "dave@klinikum-c.example", HOSPITAL_C),
    ]
    assert platform.messenger is not None
    for organisation in (HOSPITAL_A, HOSPITAL_B):
        await platform.messenger.service.federate(organisation, True, "test")
    with serving(settings) as base_url:
        async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
            yield Region(base_url, platform, http, *members)
    await platform.close()


@pytest.fixture
def synapse_media(synapse: Homeserver) -> Path:
    """Synapse's own media store."""
    return synapse.directory / "media"


def run_large() -> bool:
    """Whether this run moves the 500 MB files (the SQLite run; the PostgreSQL run tests the
    same Synapse path with the database of medicus swapped, which a large file does not
    touch)."""
    return not os.environ.get("TEST_POSTGRES_URL")
