"""A test as a client of the platform: bearer tokens minted for staff of an organisation, and
the FHIR calls that must succeed for the test to go on."""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from medicus.iam.tokens import TokenGrant
from medicus.platform import Platform
from tests.support.resources import FHIR_JSON


async def bearer(
    platform: Platform,
    organisation: str,
    role: str = "physician",
    scope: str = "user/*.cruds",
    kind: str = "user",
    subject: str | None = None,
) -> dict[str, str]:
    """The headers of a FHIR request by `subject` (by default `<organisation>-<role>`), a
    `role` of `organisation`, with an access token for `scope`."""
    grant = TokenGrant(subject or f"{organisation}-{role}", kind, organisation, role, "test", scope)
    issued = await platform.tokens.issue_access_token(grant)
    return {"Authorization": f"Bearer {issued}", **FHIR_JSON}


async def create(http: httpx.AsyncClient, headers: dict[str, str], resource: dict[str, Any]) -> str:
    """POST `resource` to its type's endpoint, which must store it; its id."""
    response = await http.post(
        f"/fhir/{resource['resourceType']}", content=orjson.dumps(resource), headers=headers
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def put(
    http: httpx.AsyncClient, headers: dict[str, str], resource: dict[str, Any], status: int = 200
) -> None:
    """PUT `resource` at its id, which must answer `status` (201: created there)."""
    response = await http.put(
        f"/fhir/{resource['resourceType']}/{resource['id']}",
        content=orjson.dumps(resource),
        headers=headers,
    )
    assert response.status_code == status, response.text
