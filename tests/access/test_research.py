"""Research consent (MII Broad Consent): what it permits, for which record, from when to when;
withdrawals on the next request; research never uses the treatment rules."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import literal, select

from medicus.access.models import ResearchTerm
from medicus.access.policy import AccessPolicy, Interaction, Purpose, research_permitted
from medicus.access.research import MEDICAL_DATA_FOR_RESEARCH, PURPOSES, research_terms
from medicus.core.db import utc_now
from medicus.iam.scopes import parse_scopes
from medicus.iam.tokens import Principal
from tests.access.conftest import Region
from tests.support import clients, resources

PERSON = "A123456780"
COLLECT = "2.16.840.1.113883.3.1937.777.24.5.3.6"


def _provision(kind: str, code: str, start: str, end: str) -> dict[str, Any]:
    return {
        "type": kind,
        "period": {"start": start, "end": end},
        "code": [{"coding": [{"system": PURPOSES, "code": code}]}],
    }


def _broad_consent(patient: str, *provisions: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {
        "resourceType": "Consent",
        "status": "active",
        "scope": {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "research"}
            ]
        },
        "category": [{"coding": [{"system": "http://loinc.org", "code": "57016-8"}]}],
        "patient": {"reference": f"Patient/{patient}"},
        "policy": [{"uri": "urn:oid:2.16.840.1.113883.3.1937.777.24.2.1791"}],
        "provision": {"type": "deny", "provision": list(provisions)},
        **changes,
    }


PERMIT_RESEARCH = _provision(
    "permit", MEDICAL_DATA_FOR_RESEARCH, "2020-01-01T00:00:00+01:00", "2050-01-01"
)


def test_a_broad_consent_permits_and_denies_purposes_with_their_periods() -> None:
    consent = _broad_consent(
        "p1", PERMIT_RESEARCH, _provision("deny", COLLECT, "2021-01-01", "2021-12-31")
    )
    assert research_terms(consent) == [
        ResearchTerm(
            MEDICAL_DATA_FOR_RESEARCH,
            "permit",
            dt.datetime(2019, 12, 31, 23, tzinfo=dt.UTC),
            dt.datetime(2050, 1, 2, tzinfo=dt.UTC),
        ),
        ResearchTerm(
            COLLECT,
            "deny",
            dt.datetime(2021, 1, 1, tzinfo=dt.UTC),
            dt.datetime(2022, 1, 1, tzinfo=dt.UTC),
        ),
    ]


@pytest.mark.parametrize(
    "consent",
    [
        _broad_consent("p1", PERMIT_RESEARCH, status="inactive"),
        _broad_consent("p1", PERMIT_RESEARCH, scope={}, policy=[]),
        _broad_consent("p1", {**PERMIT_RESEARCH, "type": "maybe"}),
        _broad_consent("p1", {**PERMIT_RESEARCH, "code": [{"coding": [{"code": "x"}]}]}),
        {"resourceType": "Consent", "status": "active", "provision": "none"},
    ],
)
def test_what_grants_no_research_use(consent: dict[str, Any]) -> None:
    assert research_terms(consent) == []


def _researcher(organisation: str = "institute") -> Principal:
    scope = "system/*.rs"
    return Principal(
        "study", "service", organisation, None, "t", parse_scopes(scope), scope, "j", 2**40
    )


def test_research_never_uses_the_treatment_rules() -> None:
    policy, caller = AccessPolicy(), _researcher("hospital-a")
    research = {"purpose": Purpose.RESEARCH}
    own = policy.decide(caller, Interaction.SEARCH, "Observation", "hospital-a", **research)
    assert own.reason == "no-research-consent"
    assert not own.allowed
    shared = policy.decide(
        caller, Interaction.READ, "Observation", "hospital-b", True, True, **research
    )
    assert not shared.allowed
    consented = policy.decide(
        caller, Interaction.READ, "Observation", "hospital-b", research_consented=True, **research
    )
    assert consented == policy.decide(
        caller, Interaction.SEARCH, "Observation", None, research_consented=True, **research
    )
    assert consented.reason == "research-consent"
    written = policy.decide(
        caller, Interaction.UPDATE, "Observation", "hospital-b", research_consented=True, **research
    )
    assert not written.allowed


async def _permitted(region: Region, patient: str) -> bool:
    statement = select(
        research_permitted(literal(patient), literal(MEDICAL_DATA_FOR_RESEARCH), literal(utc_now()))
    )
    found = await region.platform.database.fetch_one(statement)
    assert found is not None
    return bool(found[0])


async def test_a_broad_consent_releases_its_record_until_withdrawn(region: Region) -> None:
    a1 = await region.create("hospital-a", resources.patient(PERSON))
    b1 = await region.create("hospital-b", resources.patient(PERSON))
    assert not await _permitted(region, a1)
    consent = await region.create("hospital-a", _broad_consent(a1, PERMIT_RESEARCH))
    assert await _permitted(region, a1)
    # Given at hospital A, it releases nothing hospital B holds about the same person.
    assert not await _permitted(region, b1)

    # A withdrawal from yesterday on: denied with the next request.
    withdrawal = _broad_consent(
        a1, _provision("deny", MEDICAL_DATA_FOR_RESEARCH, "2026-01-01", "2099-01-01")
    )
    withdrawn = await region.create("hospital-a", withdrawal)
    assert not await _permitted(region, a1)
    response = await region.http.delete(
        f"/fhir/Consent/{withdrawn}", headers=await region.token("hospital-a")
    )
    assert response.status_code == 204
    assert await _permitted(region, a1)

    inactive = {**_broad_consent(a1, PERMIT_RESEARCH, status="inactive"), "id": consent}
    await clients.put(region.http, await region.token("hospital-a"), inactive)
    assert not await _permitted(region, a1)


async def test_a_consent_about_anothers_record_releases_nothing(region: Region) -> None:
    a1 = await region.create("hospital-a", {"resourceType": "Patient"})
    await region.create("hospital-b", _broad_consent(a1, PERMIT_RESEARCH))
    assert not await _permitted(region, a1)
