"""Index extraction rules: date precision ranges, string normalisation, token and reference
shapes, expressions rewritten for fhirpathpy."""

from __future__ import annotations

import datetime as dt

import pytest

from medicus.core.dates import date_range
from medicus.fhir.search.extract import extract, normalise
from medicus.fhir.search.parameters import parameters_of

UTC = dt.UTC


@pytest.mark.parametrize(
    ("value", "low", "high"),
    [
        ("2026", dt.datetime(2026, 1, 1, tzinfo=UTC), dt.datetime(2027, 1, 1, tzinfo=UTC)),
        ("2026-12", dt.datetime(2026, 12, 1, tzinfo=UTC), dt.datetime(2027, 1, 1, tzinfo=UTC)),
        ("2026-02-28", dt.datetime(2026, 2, 28, tzinfo=UTC), dt.datetime(2026, 3, 1, tzinfo=UTC)),
        (
            "2026-11-22T10:15:30+01:00",
            dt.datetime(2026, 11, 22, 9, 15, 30, tzinfo=UTC),
            dt.datetime(2026, 11, 22, 9, 15, 31, tzinfo=UTC),
        ),
        (
            "2026-11-22T10:15Z",
            dt.datetime(2026, 11, 22, 10, 15, tzinfo=UTC),
            dt.datetime(2026, 11, 22, 10, 16, tzinfo=UTC),
        ),
    ],
)
def test_dates_stand_for_the_range_of_their_precision(
    value: str, low: dt.datetime, high: dt.datetime
) -> None:
    assert date_range(value) == (low, high)


@pytest.mark.parametrize("value", ["yesterday", "2026-13-01", "26-01-01", ""])
def test_non_dates_are_refused(value: str) -> None:
    assert date_range(value) is None


def test_strings_compare_without_case_and_accents() -> None:
    assert normalise("Müller-Lüdenscheidt") == normalise("MULLER-ludenscheidt")
    assert normalise("Straße") == "strasse"


def test_expressions_are_rewritten_for_fhirpathpy() -> None:
    patient_of_observation = parameters_of("Observation")["patient"]
    assert patient_of_observation.expression == "Observation.subject"
    assert patient_of_observation.target_types == ("Patient",)
    assert parameters_of("Patient")["_id"].expression == "Patient.id"


def test_extraction_of_tokens_references_and_periods() -> None:
    encounter = {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
        "subject": {"reference": "https://other.example/fhir/Patient/p7/_history/2"},
        "period": {"start": "2026-11-01", "end": "2026-11-05"},
    }
    rows = extract("Encounter", encounter)
    assert ("status", None, "finished") in rows.tokens
    assert ("class", "http://terminology.hl7.org/CodeSystem/v3-ActCode", "IMP") in rows.tokens
    assert ("subject", "Patient", "p7") in rows.references
    assert ("patient", "Patient", "p7") in rows.references
    assert (
        "date",
        dt.datetime(2026, 11, 1, tzinfo=UTC),
        dt.datetime(2026, 11, 6, tzinfo=UTC),
    ) in rows.dates


def test_a_reference_to_another_type_is_not_a_patient() -> None:
    observation = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "x"},
        "subject": {"reference": "Group/g1"},
    }
    rows = extract("Observation", observation)
    assert ("subject", "Group", "g1") in rows.references
    assert all(param != "patient" for param, _, _ in rows.references)


def test_unions_of_other_parameters_are_answered_from_their_members() -> None:
    """R4's Observation has six `combo-*` parameters, each `x | component.x`; nothing else in
    R4 is such a union of parameters of its own type (references are not considered). A few
    select exactly what another does (Practitioner `phonetic` is `Practitioner.name`, as
    `name`): they are answered from that one's rows. Patient `phonetic` has rows of its own,
    the sounds of the names (search/phonetics.py)."""
    unions = {
        (resource_type, code): parameter.members
        for resource_type in (
            "Observation",
            "Patient",
            "Practitioner",
            "Encounter",
            "Condition",
            "Procedure",
        )
        for code, parameter in parameters_of(resource_type).items()
        if parameter.members
    }
    assert unions == {
        ("Observation", "combo-code"): ("code", "component-code"),
        ("Observation", "combo-code-value-concept"): (
            "code-value-concept",
            "component-code-value-concept",
        ),
        ("Observation", "combo-code-value-quantity"): (
            "code-value-quantity",
            "component-code-value-quantity",
        ),
        ("Observation", "combo-data-absent-reason"): (
            "component-data-absent-reason",
            "data-absent-reason",
        ),
        ("Observation", "combo-value-concept"): ("component-value-concept", "value-concept"),
        ("Observation", "combo-value-quantity"): ("component-value-quantity", "value-quantity"),
        ("Observation", "gene-amino-acid-change"): ("amino-acid-change",),
        ("Observation", "gene-dnavariant"): ("dna-variant",),
        ("Practitioner", "phonetic"): ("name",),
    }
    doctor = {"resourceType": "Practitioner", "name": [{"family": "Müller", "given": ["Erika"]}]}
    strings = {code for code, _, _ in extract("Practitioner", doctor).strings}
    assert "name" in strings
    assert "phonetic" not in strings


def test_a_union_selects_what_its_members_select_and_has_no_rows_of_its_own() -> None:
    observation = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
        "valueCodeableConcept": {"text": "normal"},
        "dataAbsentReason": {"coding": [{"code": "not-performed"}]},
        "component": [
            {
                "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
                "valueQuantity": {"value": 120, "code": "mm[Hg]"},
            },
            {
                "code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]},
                "dataAbsentReason": {"coding": [{"code": "error"}]},
            },
        ],
    }
    parameters = parameters_of("Observation")
    for parameter in parameters.values():
        if parameter.members:
            selected = parameter.values(observation)
            by_members = [v for m in parameter.members for v in parameters[m].values(observation)]
            assert sorted(map(repr, selected)) == sorted(map(repr, by_members)), parameter.code
    rows = extract("Observation", observation)
    names = {row[0].split("$")[0].split(":")[0] for row in rows.tokens + rows.strings}
    names |= {row[0].split("$")[0] for row in rows.quantities}
    assert not any(name.startswith("combo-") for name in names)
    assert {"code", "component-code", "value-concept", "data-absent-reason"} <= names


def test_composites_of_the_resource_itself_share_their_components_rows() -> None:
    """Observation `code-value-quantity` is the Observation's `code` and `value-quantity`:
    answered from their rows, it writes none of its own; composites of its components
    (`component-code-value-quantity`) pair each component's code and value in a group."""
    observation = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
        "valueQuantity": {"value": 120, "system": "http://unitsofmeasure.org", "code": "mm[Hg]"},
        "component": [
            {
                "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
                "valueQuantity": {"value": 120, "code": "mm[Hg]"},
            }
        ],
    }
    assert parameters_of("Observation")["code-value-quantity"].shared == (
        "code",
        "value-quantity",
    )
    rows = extract("Observation", observation)
    assert not [code for code, _, _ in rows.tokens if code.startswith("code-value")]
    grouped = {code for group in rows.groups for code, _, _ in group.tokens}
    assert grouped == {"component-code-value-quantity$0"}
