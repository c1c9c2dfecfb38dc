"""Three hospitals on one platform and a physician of each, as real users with bearer tokens:
Alice (hospital A) creates spaces, Bob (hospital B) is invited into them, Carol (hospital C)
never is."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from medicus.app import create_app
from medicus.iam.roles import Role
from medicus.platform import Platform, build_platform
from medicus.settings import Settings
from tests.conftest import make_settings, register_organisation
from tests.iam.conftest import add_user
from tests.support.clients import bearer
from tests.support.clock import MovableClock

HOSPITAL_A = "klinikum-a"
HOSPITAL_B = "klinikum-b"
HOSPITAL_C = "klinikum-c"


@dataclass
class Colleague:
    user_id: str
    email: str
    organisation: str
    headers: dict[str, str]


@dataclass
class Region:
    platform: Platform
    http: httpx.AsyncClient
    alice: Colleague
    bob: Colleague
    carol: Colleague

    async def space(self, name: str = "Stroke network SOPs") -> dict[str, Any]:
        """A new space of Alice's, with Bob as an editor."""
        created = await self.http.post(
            "/collab/spaces", json={"name": name}, headers=self.alice.headers
        )
        assert created.status_code == 201, created.text
        invited = await self.http.put(
            f"/collab/spaces/{created.json()['id']}/members",
            json={"email": self.bob.email, "role": "editor"},
            headers=self.alice.headers,
        )
        assert invited.status_code == 200, invited.text
        answer: dict[str, Any] = created.json()
        return answer

    async def upload(
        self,
        who: Colleague,
        space_id: str,
        name: str,
        data: bytes,
        folder: str = "root",
        **headers: str,
    ) -> httpx.Response:
        return await self.http.put(
            f"/collab/content/{space_id}/{folder}/{name}",
            content=data,
            headers={**who.headers, **headers},
        )


def collab_settings(tmp_path: Path, database_url: str, **overrides: object) -> Settings:
    return make_settings(tmp_path, database_url, **overrides)


async def colleague(platform: Platform, email: str, organisation: str) -> Colleague:
    await register_organisation(platform, organisation)
    async with platform.database.transaction() as session:
        user_id = await add_user(platform, session, email, [(organisation, Role.PHYSICIAN)])
    token = await bearer(platform, organisation, subject=user_id)
    return Colleague(user_id, email, organisation, {"Authorization": token["Authorization"]})


@pytest.fixture
async def region(
    tmp_path: Path, fresh_database_url: str, clock: MovableClock
) -> AsyncIterator[Region]:
    settings = collab_settings(tmp_path, fresh_database_url)
    platform = build_platform(settings, clock)
    transport = httpx.ASGITransport(app=create_app(settings, platform), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield Region(
            platform,
            http,
            await colleague(platform, "alice@klinikum-a.example", HOSPITAL_A),
            await colleague(platform, "bob@klinikum-b.example", HOSPITAL_B),
            await colleague(platform, "carol@klinikum-c.example", HOSPITAL_C),
        )
    await platform.close()
