"""Every audit entry of a request names the client's network address, and the FHIR
AuditEvent view shows it as the requestor's `network`: the peer's address, or behind a
reverse proxy the server trusts, the address the proxy forwarded (never a header that an
untrusted peer sent)."""

from __future__ import annotations

from typing import Any

import httpx
from starlette.types import ASGIApp
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from medicus.app import create_app
from medicus.platform import Platform
from tests.support.clients import bearer
from tests.support.database import rows

PEER = "198.51.100.7"
PROXY = "192.0.2.10"
FORWARDED = "203.0.113.9"


async def _requests(platform: Platform, app: ASGIApp, peer: str, **headers: str) -> str:
    """As a client at `peer`: a create, a read, a search and a refused read of a Patient;
    the Patient's reference."""
    transport = httpx.ASGITransport(app=app, client=(peer, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as http:
        a = await bearer(platform, "hospital-a")
        b = await bearer(platform, "hospital-b")
        created = await http.post(
            "/fhir/Patient", content=b'{"resourceType": "Patient"}', headers={**a, **headers}
        )
        assert created.status_code == 201, created.text
        patient = created.json()["id"]
        read = await http.get(f"/fhir/Patient/{patient}", headers={**a, **headers})
        assert read.status_code == 200
        found = await http.get(f"/fhir/Patient?_id={patient}", headers={**a, **headers})
        assert found.status_code == 200
        refused = await http.get(f"/fhir/Patient/{patient}", headers={**b, **headers})
        assert refused.status_code == 404
    return f"Patient/{patient}"


async def _addresses(platform: Platform, target: str) -> list[Any]:
    """The `agent.network` of the requestor of each AuditEvent about `target`, as the
    platform's security team reads them."""
    await platform.audit.seal_all()
    transport = httpx.ASGITransport(app=create_app(platform.settings, platform))
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as http:
        operator = await bearer(platform, "platform", "platform_admin")
        response = await http.get(f"/fhir/AuditEvent?entity={target}", headers=operator)
    assert response.status_code == 200, response.text
    events = [entry["resource"] for entry in response.json()["entry"]]
    assert len(events) == 3  # created, read, refused read (the search names no target)
    return [event["agent"][0].get("network") for event in events]


async def test_fhir_entries_name_the_clients_address(fresh_platform: Platform) -> None:
    app = create_app(fresh_platform.settings, fresh_platform)
    target = await _requests(fresh_platform, app, PEER)
    assert await _addresses(fresh_platform, target) == [{"address": PEER, "type": "2"}] * 3
    addresses = await rows(
        fresh_platform,
        "SELECT DISTINCT client_address FROM audit_entry WHERE action = 'fhir.search'",
    )
    assert addresses == [(PEER,)]


async def test_a_forwarded_address_counts_only_from_a_trusted_proxy(
    fresh_platform: Platform,
) -> None:
    app = ProxyHeadersMiddleware(
        create_app(fresh_platform.settings, fresh_platform), trusted_hosts=PROXY
    )
    forwarded = {"x-forwarded-for": FORWARDED}
    through_proxy = await _requests(fresh_platform, app, PROXY, **forwarded)
    claimed = await _requests(fresh_platform, app, PEER, **forwarded)
    assert (
        await _addresses(fresh_platform, through_proxy) == [{"address": FORWARDED, "type": "2"}] * 3
    )
    assert await _addresses(fresh_platform, claimed) == [{"address": PEER, "type": "2"}] * 3
