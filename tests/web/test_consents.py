"""The consents the portal's forms write: a Broad Consent as `access` reads it (purpose by
purpose, for the years the MII's form says); a patient's link to their own record, and how
their access log groups what was done in one minute."""

from __future__ import annotations

import datetime as dt

import pytest

from medicus.access.research import MEDICAL_DATA_FOR_RESEARCH, research_terms
from medicus.access.trail_reader import AccessLogEntry
from medicus.iam.scopes import parse_scopes
from medicus.iam.tokens import Principal
from medicus.web.consents import PORTAL_DECLARATION_TITLE, research_consent, sharing_consent
from medicus.web.own_data import grouped_lines

NOW = dt.datetime(2026, 12, 3, 10, 0, tzinfo=dt.UTC)


def test_a_broad_consent_permits_and_denies_module_by_module() -> None:
    consent = research_consent("p1", {"patient-data": "permit", "biomaterial": "deny"}, NOW)
    terms = {
        (t.purpose.rsplit(".", 1)[1], t.decision, t.valid_until.year if t.valid_until else None)
        for t in research_terms(consent)
    }
    assert ("8", "permit", 2056) in terms, "using medical data for research: 30 years"
    assert ("6", "permit", 2031) in terms, "collecting medical data: 5 years"
    assert {decision for purpose, decision, _ in terms if purpose in ("19", "20", "22")} == {"deny"}
    assert MEDICAL_DATA_FOR_RESEARCH.endswith(".8")


def test_only_the_modules_decided_are_in_the_consent() -> None:
    consent = research_consent("p1", {"patient-data": "deny"}, NOW, PORTAL_DECLARATION_TITLE)
    assert {t.decision for t in research_terms(consent)} == {"deny"}
    assert len(research_terms(consent)) == 3
    assert consent["sourceAttachment"]["title"] == PORTAL_DECLARATION_TITLE


def test_an_objection_to_sharing_needs_no_source() -> None:
    assert "sourceAttachment" not in sharing_consent("p1", "deny", NOW)
    assert sharing_consent("p1", "permit", NOW)["sourceAttachment"]["creation"] == NOW.isoformat()


def _principal(role: str, fhir_user: str | None, kind: str = "user") -> Principal:
    return Principal(
        "u1", kind, "org", role, "c", parse_scopes(""), "", "j", 0, fhir_user=fhir_user
    )


@pytest.mark.parametrize(
    ("role", "fhir_user", "own"),
    [
        ("patient", "Patient/p1", "p1"),
        ("patient", "https://medicus.example/fhir/Patient/p1", "p1"),
        ("patient", "https://medicus.example/fhir/Practitioner/u1", None),
        ("patient", "https://medicus.example/fhir/SomePatient/p1", None),
        ("patient", None, None),
        ("physician", "Patient/p1", None),
    ],
)
def test_only_a_patient_has_an_own_record(
    role: str, fhir_user: str | None, own: str | None
) -> None:
    assert _principal(role, fhir_user).own_patient_record == own


def test_a_service_is_never_a_patient() -> None:
    assert _principal("patient", "Patient/p1", kind="service").own_patient_record is None


def _entry(at: str, did: str = "searched", target: str | None = "Observation") -> AccessLogEntry:
    return AccessLogEntry(
        1, at, "Practitioner/u", "Dr. A", "Organization/b", "B", did, target, None, True
    )


def test_the_same_thing_done_in_one_minute_is_one_line_of_the_access_log() -> None:
    lines = grouped_lines(
        [
            _entry("2026-12-03T10:00:05+00:00"),
            _entry("2026-12-03T10:00:01+00:00"),
            _entry("2026-12-03T10:00:00+00:00", "looked at", "Patient/p1"),
            _entry("2026-12-03T10:00:00+00:00", "added", "Observation/o1"),
            _entry("2026-12-03T10:00:00+00:00", "added", "Consent/c1"),
            _entry("2026-12-03T09:59:59+00:00", "added", "Consent/c2"),
        ]
    )
    assert [(line.entry.did, line.resource_type, line.times) for line in lines] == [
        ("searched", None, 2),
        ("looked at", "Patient", 1),
        ("added", "Observation", 1),
        ("added", "Consent", 1),
        ("added", "Consent", 1),
    ]
