"""An in-process platform with two hospitals and bearer tokens for FHIR tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import httpx
import pytest

from medicus.app import create_app
from medicus.platform import Platform
from tests.conftest import register_organisation
from tests.support.clients import bearer
from tests.support.resources import FHIR_JSON

__all__ = ["FHIR_JSON", "Hub"]


@dataclass
class Hub:
    platform: Platform
    http: httpx.AsyncClient
    token: Callable[..., Awaitable[dict[str, str]]]


@pytest.fixture
async def hub(fresh_platform: Platform) -> AsyncIterator[Hub]:
    platform = fresh_platform
    registered: set[str] = set()

    async def token(
        organisation: str = "hospital-a", scope: str = "user/*.cruds", kind: str = "user"
    ) -> dict[str, str]:
        if organisation not in registered:
            await register_organisation(platform, organisation)
            registered.add(organisation)
        return await bearer(
            platform, organisation, scope=scope, kind=kind, subject=f"{organisation}-someone"
        )

    await platform.start_background_work()
    transport = httpx.ASGITransport(app=create_app(platform.settings, platform))
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as http:
        yield Hub(platform, http, token)
    await platform.stop_background_work()
