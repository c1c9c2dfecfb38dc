"""The demo's messenger: the care organisations federated, their physicians and the cardiology
service on call in the directory, found by a physician of another hospital."""

from __future__ import annotations

from pathlib import Path

import httpx

from medicus.app import create_app
from medicus.demo import DEMO_ORGANISATIONS, load_demo
from medicus.iam.repository import organisation_by_iknr
from medicus.messenger.demo import DEMO_SERVICE
from medicus.messenger.homeserver import Homeserver
from medicus.platform import build_platform
from tests.support.clients import bearer
from tests.support.messenger import messenger_settings


async def test_the_demo_lists_physicians_and_the_service_on_call(
    tmp_path: Path, fresh_database_url: str, synapse: Homeserver
) -> None:
    settings = messenger_settings(tmp_path, fresh_database_url, synapse)
    platform = build_platform(settings)
    try:
        await load_demo(platform)
        await load_demo(platform)  # again: nothing doubles
        async with platform.database.snapshot() as session:
            district = await organisation_by_iknr(session, DEMO_ORGANISATIONS[1].iknr)
        assert district is not None
        headers = await bearer(platform, district.id, subject="someone")
        transport = httpx.ASGITransport(app=create_app(settings, platform))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            found = await http.get(
                "/directory/fhir/HealthcareService?_include=HealthcareService:organization",
                headers={"Authorization": headers["Authorization"]},
            )
            roles = await http.get(
                "/directory/fhir/PractitionerRole?_include=PractitionerRole:practitioner",
                headers={"Authorization": headers["Authorization"]},
            )
        resources = [entry["resource"] for entry in found.json()["entry"]]
        assert [r["name"] for r in resources if r["resourceType"] == "HealthcareService"] == [
            DEMO_SERVICE
        ]
        assert [r["name"] for r in resources if r["resourceType"] == "Organization"] == [
            DEMO_ORGANISATIONS[0].name
        ]
        names = {
            entry["resource"]["name"][0]["text"]
            for entry in roles.json()["entry"]
            if entry["resource"]["resourceType"] == "Practitioner"
        }
        assert {"Dr. Anna Berg", "Dr. Lena Koch", "Dr. Klaus Weber"} <= names
        assert "Tom Lang" not in names, "nurses are not listed by the demo"
    finally:
        await platform.close()
