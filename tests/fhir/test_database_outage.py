"""A database that cannot be reached, or drops its connections (restart, failover, a killed
backend), gets a 503 with `Retry-After` in the error model, never a 500; once it is back,
the next request works without restarting medicus."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from medicus.app import create_app
from medicus.platform import build_platform
from tests.conftest import POSTGRES_ADMIN_URL, _postgres, make_settings
from tests.fhir.conftest import Hub

UNREACHABLE = "postgresql+asyncpg://medicus@127.0.0.1:9/medicus"  # the discard port: refused


def _assert_transient(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "1"
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == "transient"


async def test_an_unreachable_database_is_a_503(tmp_path: Path) -> None:
    platform = build_platform(make_settings(tmp_path, UNREACHABLE))
    transport = httpx.ASGITransport(app=create_app(platform.settings, platform))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as http:
            headers = {"Authorization": "Bearer x.y.z"}
            _assert_transient(await http.get("/fhir/Patient/p1", headers=headers))
            _assert_transient(await http.get("/fhir/Patient?family=x", headers=headers))
    finally:
        await platform.close()


@pytest.mark.skipif(POSTGRES_ADMIN_URL is None, reason="kills PostgreSQL backends")
async def test_connections_the_database_dropped_are_replaced(hub: Hub) -> None:
    headers = await hub.token()
    created = await hub.http.post(
        "/fhir/Patient", json={"resourceType": "Patient"}, headers=headers
    )
    assert created.status_code == 201
    path = created.headers["location"].split("/fhir")[1].split("/_history")[0]
    assert (await hub.http.get(f"/fhir{path}", headers=headers)).status_code == 200
    assert (await hub.http.get("/fhir/Patient", headers=headers)).status_code == 200
    database = make_url(hub.platform.settings.database_url).database
    await _postgres(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        f"WHERE datname = '{database}' AND pid <> pg_backend_pid()"
    )
    statuses = []
    for _ in range(3):
        search = await hub.http.get("/fhir/Patient", headers=headers)
        read = await hub.http.get(f"/fhir{path}", headers=headers)
        for response in (search, read):
            if response.status_code == 503:
                _assert_transient(response)
            statuses.append(response.status_code)
    assert set(statuses) <= {200, 503}
    assert statuses[-2:] == [200, 200]
