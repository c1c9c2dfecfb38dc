"""The AuditEvent search parameters, read into a query (the search itself is tested through
HTTP in tests/access/test_audit_events.py)."""

from __future__ import annotations

import pytest

from medicus.audit.search import parse_search
from medicus.core.errors import ApiError


@pytest.mark.parametrize(
    ("agent", "actor"),
    [
        ("Practitioner/hospital-a-physician", "user:hospital-a-physician"),
        ("Device/lab-feed", "service:lab-feed"),
        ("user:u-1", "user:u-1"),
        (
            "share-link:0b6f4f0e-0d55-4bde-9d0e-8d3c1c1a2b3c",
            "share-link:0b6f4f0e-0d55-4bde-9d0e-8d3c1c1a2b3c",
        ),
    ],
)
def test_an_agent_names_an_actor_of_the_trail(agent: str, actor: str) -> None:
    assert parse_search([("agent", agent)]).actors == frozenset({actor})


@pytest.mark.parametrize("agent", ["Organization/x", "share-link:", "someone:else", "Device/"])
def test_an_agent_that_names_no_actor_is_400(agent: str) -> None:
    with pytest.raises(ApiError) as refused:
        parse_search([("agent", agent)])
    assert refused.value.status == 400
