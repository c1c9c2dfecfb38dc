"""Liveness, readiness and metrics through HTTP."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from medicus.app import create_app
from tests.conftest import DatabaseFactory, make_settings


async def test_healthz_is_alive(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "alive"}


async def test_readyz_is_ready_on_a_migrated_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert body["checks"]["migrations"].startswith("current")


async def _readyz(data_dir: Path, database_url: str) -> httpx.Response:
    app = create_app(make_settings(data_dir, database_url))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        response = await http.get("/readyz")
    await app.state.platform.close()
    return response


async def test_readyz_is_not_ready_before_migrations(
    tmp_path: Path, database_factory: DatabaseFactory
) -> None:
    url = await asyncio.to_thread(database_factory.new_url, False)
    response = await _readyz(tmp_path, url)
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not ready"
    assert "run `medicus migrate`" in body["checks"]["migrations"]


async def test_readyz_is_not_ready_without_database(tmp_path: Path) -> None:
    response = await _readyz(tmp_path, "postgresql+asyncpg://nobody@127.0.0.1:1/nothing")
    assert response.status_code == 503
    assert response.json()["checks"]["database"].startswith("unreachable")


async def test_metrics_count_requests_by_route_template(client: httpx.AsyncClient) -> None:
    await client.get("/healthz")
    await client.get("/healthz")
    await client.get("/patient/Erika-Mustermann")
    text = (await client.get("/metrics")).text
    assert 'medicus_http_requests_total{method="GET",route="/healthz",status="200"} 2.0' in text
    assert 'medicus_http_errors_total{method="GET",route="<unmatched>",status="404"} 1.0' in text
    assert "Mustermann" not in text
    assert 'medicus_http_request_duration_seconds_count{method="GET",route="/healthz"} 2.0' in text
