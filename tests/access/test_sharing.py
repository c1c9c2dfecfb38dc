"""The sharing rule: what a Consent says, and which organisations may see a person's data held
elsewhere, for consents in every state and treatment relations or none."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from medicus.access.models import ConsentTerms, Share
from medicus.access.repository import StoredConsent, StoredRecord, TreatmentFact
from medicus.access.sharing import (
    Facts,
    consent_terms,
    disclosures,
    is_treatment,
    newly_vouched,
    referred_to,
    shares,
)
from tests.support import resources
from tests.support.resources import PRIVACY

NOW = dt.datetime(2026, 11, 30, 12, tzinfo=dt.UTC)


def _consent(provision: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {
        "resourceType": "Consent",
        "status": "active",
        "scope": PRIVACY,
        "provision": provision,
        "sourceAttachment": {"title": "signed form"},
        **changes,
    }


def _actor(organisation: str) -> dict[str, Any]:
    return {"reference": {"reference": f"Organization/{organisation}"}}


def test_a_permit_for_every_participant() -> None:
    assert consent_terms(_consent({"type": "permit"})) == ConsentTerms(
        "permit", None, frozenset(), None, None
    )


def test_a_permit_for_named_organisations_within_a_period() -> None:
    provision = {
        "type": "permit",
        "actor": [_actor("hospital-b"), _actor("hospital-c"), {"reference": {"display": "x"}}],
        "period": {"start": "2026-01-01", "end": "2026-12"},
    }
    assert consent_terms(_consent(provision)) == ConsentTerms(
        "permit",
        frozenset({"hospital-b", "hospital-c"}),
        frozenset(),
        dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        dt.datetime(2027, 1, 1, tzinfo=dt.UTC),
    )


def test_nested_denials_exclude_or_void() -> None:
    excluding = {"type": "permit", "provision": [{"type": "deny", "actor": [_actor("lab-x")]}]}
    terms = consent_terms(_consent(excluding))
    assert terms is not None
    assert terms.excluded == {"lab-x"}
    voiding = {"type": "permit", "provision": [{"type": "deny"}]}
    assert consent_terms(_consent(voiding)) is None


@pytest.mark.parametrize(
    "consent",
    [
        _consent({"type": "permit"}, status="inactive"),
        _consent({"type": "permit"}, status="rejected"),
        _consent({"type": "permit"}, status="draft"),
        _consent({"type": "permit"}, scope={"coding": [{"code": "research"}]}),
        _consent({"type": "permit"}, scope=None),
        _consent({}),
        _consent({"type": "maybe"}),
        {"resourceType": "Consent", "status": "active", "scope": PRIVACY},
        _consent({"type": "permit"}, sourceAttachment=None),
        _consent({"type": "permit"}, sourceAttachment={}, sourceReference={"display": "x"}),
    ],
)
def test_what_is_no_sharing_consent(consent: dict[str, Any]) -> None:
    assert consent_terms(consent) is None


def test_an_objection_is_a_deny() -> None:
    terms = consent_terms(_consent({"type": "deny"}))
    assert terms is not None
    assert terms.decision == "deny"


@pytest.mark.parametrize(
    ("resource_type", "status", "treating"),
    [
        ("Encounter", "in-progress", True),
        ("Encounter", "arrived", True),
        ("Encounter", "onleave", True),
        ("Encounter", "finished", False),
        ("Encounter", "planned", False),
        ("Encounter", "cancelled", False),
        ("EpisodeOfCare", "active", True),
        ("EpisodeOfCare", "finished", False),
        ("Observation", "final", False),
    ],
)
def test_treatment_relations(resource_type: str, status: str, treating: bool) -> None:
    assert is_treatment(resource_type, {"status": status}) is treating


def _referral(**changes: Any) -> dict[str, Any]:
    return resources.referral("a1", "hospital-d", **changes)


@pytest.mark.parametrize(
    ("changes", "treating"),
    [
        ({}, "hospital-d"),
        ({"intent": "original-order"}, "hospital-d"),
        ({"status": "completed"}, None),
        ({"status": "draft"}, None),
        ({"intent": "proposal"}, None),
        ({"performer": [{"reference": "Practitioner/p1"}]}, None),
        ({"performer": "Organization/hospital-d"}, None),
        (
            {
                "performer": [
                    {"reference": "Practitioner/p1"},
                    {"reference": "Organization/hospital-d"},
                ]
            },
            "hospital-d",
        ),
        (
            {
                "performer": [
                    {"reference": "Organization/hospital-d"},
                    {"reference": "Organization/hospital-e"},
                ]
            },
            None,
        ),
    ],
)
def test_referrals(changes: dict[str, Any], treating: str | None) -> None:
    """An active order naming one performing organisation refers the patient to it; several
    are alternatives, none of which has the patient yet."""
    assert referred_to(_referral(**changes)) == treating


RECORDS = [
    StoredRecord("a1", "hospital-a", "a1", "A123456780"),
    StoredRecord("b1", "hospital-b", "a1", "A123456780"),
]


def _stored(
    decision: str = "permit",
    organisations: frozenset[str] | None = None,
    held_by: str = "hospital-a",
    about: str = "a1",
    valid_from: dt.datetime | None = None,
    valid_until: dt.datetime | None = None,
    excluded: frozenset[str] = frozenset(),
    vouched: bool = True,
) -> StoredConsent:
    return StoredConsent(
        "c", held_by, about, decision, organisations, excluded, valid_from, valid_until, vouched
    )


DAY = dt.timedelta(days=1)
CARE = frozenset({"hospital-a", "hospital-b", "hospital-c", "hospital-d"})


@pytest.mark.parametrize(
    ("consents", "treating", "expected"),
    [
        pytest.param([], [("hospital-b", "hospital-b", "b1")], [], id="no consent"),
        pytest.param([_stored()], [], [], id="consent, no treatment"),
        pytest.param(
            [_stored()],
            [("hospital-b", "hospital-b", "b1")],
            [Share("hospital-b", None, None)],
            id="both",
        ),
        pytest.param(
            [_stored(organisations=frozenset({"hospital-c"}))],
            [("hospital-b", "hospital-b", "b1")],
            [],
            id="consent for another organisation",
        ),
        pytest.param(
            [_stored(excluded=frozenset({"hospital-b"}))],
            [("hospital-b", "hospital-b", "b1")],
            [],
            id="excluded by name",
        ),
        pytest.param(
            [_stored(valid_until=NOW - DAY)], [("hospital-b", "hospital-b", "b1")], [], id="expired"
        ),
        pytest.param(
            [_stored(valid_from=NOW + DAY)],
            [("hospital-b", "hospital-b", "b1")],
            [Share("hospital-b", NOW + DAY, None)],
            id="not yet valid: the window says when",
        ),
        pytest.param(
            [_stored(), _stored("deny")],
            [("hospital-b", "hospital-b", "b1")],
            [],
            id="objection in force",
        ),
        pytest.param(
            [_stored(), _stored("deny", valid_from=NOW + 3 * DAY)],
            [("hospital-b", "hospital-b", "b1")],
            [Share("hospital-b", None, NOW + 3 * DAY)],
            id="objection from a later day ends the share then",
        ),
        pytest.param(
            [_stored(), _stored("deny", valid_until=NOW - DAY)],
            [("hospital-b", "hospital-b", "b1")],
            [Share("hospital-b", None, None)],
            id="objection that has ended",
        ),
        pytest.param(
            [_stored(held_by="hospital-b")],
            [("hospital-b", "hospital-b", "b1")],
            [],
            id="consent about a record its holder does not hold",
        ),
        pytest.param(
            [_stored()],
            [("hospital-b", "hospital-b", "a1")],
            [],
            id="treatment of another's record",
        ),
        pytest.param(
            [_stored(about="elsewhere", held_by="hospital-x")],
            [("hospital-b", "hospital-b", "b1")],
            [],
            id="consent about another person's record",
        ),
        pytest.param(
            [_stored()],
            [("hospital-a", "hospital-d", "a1")],
            [Share("hospital-d", None, None)],
            id="referral by the record's holder",
        ),
        pytest.param(
            [_stored()],
            [("hospital-d", "hospital-d", "a1")],
            [],
            id="referral to itself about another's record",
        ),
        pytest.param(
            [_stored(organisations=frozenset({"hospital-b"}))],
            [("hospital-a", "hospital-d", "a1")],
            [],
            id="referral to an organisation the consent does not cover",
        ),
    ],
)
def test_shares(
    consents: list[StoredConsent], treating: list[tuple[str, str, str]], expected: list[Share]
) -> None:
    facts = Facts(RECORDS, consents, [TreatmentFact(*t) for t in treating], CARE)
    assert shares(facts, NOW) == expected


@pytest.mark.parametrize(
    ("consents", "treating", "care", "expected"),
    [
        pytest.param(
            [_stored(vouched=False)],
            [("hospital-b", "hospital-b", "b1")],
            CARE,
            [],
            id="a permit not yet vouched for opens nothing",
        ),
        pytest.param(
            [_stored(held_by="vendor-v", about="v1")],
            [("hospital-b", "hospital-b", "b1")],
            CARE,
            [],
            id="a consent recorded by an app vendor about its own record",
        ),
        pytest.param(
            [_stored()],
            [("vendor-v", "vendor-v", "v1")],
            CARE,
            [],
            id="an app vendor's episode of care about its own record",
        ),
        pytest.param(
            [_stored()],
            [("hospital-a", "vendor-v", "a1")],
            CARE,
            [],
            id="a referral to an app vendor",
        ),
        pytest.param(
            [_stored()],
            [("vendor-v", "hospital-d", "v1")],
            CARE,
            [],
            id="a referral by an app vendor",
        ),
        pytest.param(
            [_stored(), _stored("deny", held_by="vendor-v", about="v1")],
            [("hospital-b", "hospital-b", "b1")],
            CARE,
            [Share("hospital-b", None, None)],
            id="an app vendor's objection blocks no one",
        ),
        pytest.param(
            [_stored()],
            [("hospital-b", "hospital-b", "b1")],
            frozenset({"hospital-a"}),
            [],
            id="the treating organisation is no care provider (any more)",
        ),
    ],
)
def test_who_may_vouch(
    consents: list[StoredConsent],
    treating: list[tuple[str, str, str]],
    care: frozenset[str],
    expected: list[Share],
) -> None:
    records = [*RECORDS, StoredRecord("v1", "vendor-v", "a1", "A123456780")]
    facts = Facts(records, consents, [TreatmentFact(*t) for t in treating], care)
    assert shares(facts, NOW) == expected


def test_a_permit_is_vouched_for_while_its_recorder_treats_the_person() -> None:
    """Only a care provider's permit about its own record, while it treats the person."""
    consents = [_stored(vouched=False), _stored(vouched=False, held_by="vendor-v", about="v1")]
    records = [*RECORDS, StoredRecord("v1", "vendor-v", "a1", "A123456780")]
    not_treating = Facts(records, consents, [TreatmentFact("hospital-b", "hospital-b", "b1")], CARE)
    assert newly_vouched(not_treating) == []
    treating = not_treating._replace(
        treating=[
            TreatmentFact("hospital-a", "hospital-a", "a1"),
            TreatmentFact("vendor-v", "vendor-v", "v1"),
        ]
    )
    assert newly_vouched(treating) == ["c"]
    assert newly_vouched(treating._replace(consents=[_stored()])) == []


def test_disclosures_name_each_record_its_organisation_and_why() -> None:
    facts = Facts(
        RECORDS,
        [_stored(valid_until=NOW + DAY)],
        [TreatmentFact("hospital-b", "hospital-b", "b1", "Encounter/e1")],
        CARE,
    )
    assert disclosures(facts, NOW) == {
        ("a1", "hospital-b"): {
            "consents": [
                {
                    "consent": "Consent/c",
                    "recorded_by": "hospital-a",
                    "valid_from": None,
                    "valid_until": (NOW + DAY).isoformat(),
                }
            ],
            "treatments": ["Encounter/e1"],
        }
    }
