"""An in-process platform with tokens for staff of several hospitals and for an MPI steward."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest

from medicus.app import create_app
from medicus.platform import Platform
from tests.conftest import register_organisation
from tests.support import clients
from tests.support.database import rows
from tests.support.resources import FHIR_JSON, SIGNED_FORM, encounter

__all__ = ["FHIR_JSON", "SIGNED_FORM", "Region"]


@dataclass
class Region:
    platform: Platform
    http: httpx.AsyncClient
    token: Callable[..., Awaitable[dict[str, str]]]
    organisation: Callable[[str, str], Awaitable[None]]

    async def create(self, organisation: str, resource: dict[str, Any]) -> str:
        """Store `resource` as a physician of `organisation`; its id."""
        return await clients.create(self.http, await self.token(organisation), resource)

    async def stay(self, organisation: str, patient: str, status: str = "in-progress") -> str:
        """An encounter of `organisation` with its Patient record `patient`; its id."""
        return await self.create(organisation, encounter(patient, status))

    async def consent_during_stay(self, organisation: str, consent: dict[str, Any]) -> str:
        """Record `consent` as `organisation` does while the patient stays there (an
        encounter of its own in progress, so that the consent is vouched for), and end the
        stay; the consent's id."""
        patient = consent["patient"]["reference"].removeprefix("Patient/")
        stay = await self.stay(organisation, patient)
        consent_id = await self.create(organisation, consent)
        finished = encounter(patient, "finished", id=stay)
        await clients.put(self.http, await self.token(organisation), finished)
        return consent_id

    async def decisions(self, target: str, *actions: str) -> list[tuple[str, str]]:
        """The action and access reason of each audit entry about `target` of one of
        `actions`, sealed or still pending, sorted."""
        entries = await rows(
            self.platform,
            "SELECT action, detail FROM audit_pending WHERE target = :t"
            " UNION ALL SELECT action, detail FROM audit_entry WHERE target = :t",
            t=target,
        )
        return sorted((a, orjson.loads(d)["reason"]) for a, d in entries if a in actions)


@pytest.fixture
async def region(fresh_platform: Platform) -> AsyncIterator[Region]:
    platform = fresh_platform
    registered: set[str] = set()

    async def organisation(organisation_id: str, kind: str) -> None:
        await register_organisation(platform, organisation_id, kind)
        registered.add(organisation_id)

    async def token(
        organisation: str = "hospital-a", role: str = "physician", scope: str = "user/*.cruds"
    ) -> dict[str, str]:
        if organisation not in registered:
            await register_organisation(platform, organisation)
            registered.add(organisation)
        return await clients.bearer(platform, organisation, role, scope)

    await platform.start_background_work()
    transport = httpx.ASGITransport(app=create_app(platform.settings, platform))
    async with httpx.AsyncClient(transport=transport, base_url="http://region") as http:
        yield Region(platform, http, token, organisation)
    await platform.stop_background_work()
