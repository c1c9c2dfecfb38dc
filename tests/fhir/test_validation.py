"""Validation against the R4 base definitions: realistic resources pass, each kind of error is
reported with its code and FHIRPath location."""

from __future__ import annotations

import copy
import json
import os
import tarfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import medicus
from medicus.fhir.validation import MAX_ISSUES, Issue, validate
from tests.support.resources import KVNR, LOINC

STRUCTURES = Path(medicus.__file__).parent / "fhir" / "definitions" / "structures.json"
ICD10GM = "http://fhir.de/CodeSystem/bfarm/icd-10-gm"
PATIENT_UUID = "urn:uuid:0c3f2c4e-9d4b-4b8e-8f2a-5f1d6a7b8c9d"

PATIENT: dict[str, Any] = {
    "resourceType": "Patient",
    "id": "p-1",
    "meta": {
        "versionId": "3",
        "lastUpdated": "2024-03-01T10:15:00.123+01:00",
        "profile": ["https://gematik.de/fhir/isik/v3/Basismodul/StructureDefinition/ISiKPatient"],
    },
    "text": {
        "status": "generated",
        "div": '<div xmlns="http://www.w3.org/1999/xhtml">Erika Mustermann</div>',
    },
    "identifier": [
        {
            "use": "official",
            "type": {
                "coding": [
                    {"system": "http://fhir.de/CodeSystem/identifier-type-de-basis", "code": "GKV"}
                ]
            },
            "system": KVNR,
            "value": "A123456780",
            "assigner": {
                "identifier": {"system": "http://fhir.de/sid/arge-ik/iknr", "value": "108310400"}
            },
        },
        {"system": "https://klinikum-a.example/sid/patienten", "value": "PID-0042"},
    ],
    "active": True,
    "name": [
        {
            "use": "official",
            "family": "Mustermann",
            "_family": {
                "extension": [
                    {
                        "url": "http://hl7.org/fhir/StructureDefinition/humanname-own-name",
                        "valueString": "Mustermann",
                    }
                ]
            },
            "given": ["Erika", "Maria"],
            "prefix": ["Dr."],
            "_prefix": [
                {
                    "extension": [
                        {
                            "url": "http://hl7.org/fhir/StructureDefinition/iso21090-EN-qualifier",
                            "valueCode": "AC",
                        }
                    ]
                }
            ],
        }
    ],
    "telecom": [{"system": "phone", "value": "+49 30 1234567", "use": "home"}],
    "gender": "female",
    "birthDate": "1964-08-12",
    "_birthDate": {
        "extension": [
            {
                "url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime",
                "valueDateTime": "1964-08-12T07:30:00+01:00",
            }
        ]
    },
    "address": [
        {
            "type": "both",
            "line": ["Musterweg 2a"],
            "_line": [
                {
                    "extension": [
                        {
                            "url": "http://hl7.org/fhir/StructureDefinition/iso21090-ADXP-streetName",
                            "valueString": "Musterweg",
                        },
                        {
                            "url": "http://hl7.org/fhir/StructureDefinition/iso21090-ADXP-houseNumber",
                            "valueString": "2a",
                        },
                    ]
                }
            ],
            "city": "Berlin",
            "postalCode": "10115",
            "country": "DE",
        }
    ],
    "managingOrganization": {"reference": "Organization/klinikum-a"},
}

OBSERVATION: dict[str, Any] = {
    "resourceType": "Observation",
    "id": "hb-1",
    "status": "final",
    "category": [
        {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                    "code": "laboratory",
                }
            ]
        }
    ],
    "code": {
        "coding": [
            {"system": LOINC, "code": "718-7", "display": "Hemoglobin [Mass/volume] in Blood"}
        ],
        "text": "Hämoglobin",
    },
    "subject": {"reference": "Patient/p-1", "display": "Erika Mustermann"},
    "encounter": {"reference": "Encounter/enc-1"},
    "effectiveDateTime": "2024-03-01T08:00:00+01:00",
    "issued": "2024-03-01T09:12:44.5Z",
    "performer": [{"reference": "Organization/labor-a"}],
    "valueQuantity": {
        "value": 13.2,
        "unit": "g/dL",
        "system": "http://unitsofmeasure.org",
        "code": "g/dL",
    },
    "interpretation": [
        {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
                    "code": "N",
                }
            ]
        }
    ],
    "referenceRange": [
        {
            "low": {
                "value": 12,
                "unit": "g/dL",
                "system": "http://unitsofmeasure.org",
                "code": "g/dL",
            },
            "high": {
                "value": 16,
                "unit": "g/dL",
                "system": "http://unitsofmeasure.org",
                "code": "g/dL",
            },
        }
    ],
}

ENCOUNTER: dict[str, Any] = {
    "resourceType": "Encounter",
    "id": "enc-1",
    "identifier": [{"system": "https://klinikum-a.example/sid/fallnummer", "value": "F-2024-17"}],
    "status": "in-progress",
    "class": {
        "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
        "code": "IMP",
        "display": "inpatient encounter",
    },
    "subject": {"reference": "Patient/p-1"},
    "period": {"start": "2024-02-28T14:00:00+01:00"},
    "diagnosis": [{"condition": {"reference": "Condition/dx-1"}, "rank": 1}],
    "serviceProvider": {"reference": "Organization/klinikum-a"},
    "location": [{"location": {"reference": "Location/station-3b"}, "status": "active"}],
}

CONDITION: dict[str, Any] = {
    "resourceType": "Condition",
    "id": "dx-1",
    "clinicalStatus": {
        "coding": [
            {
                "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                "code": "active",
            }
        ]
    },
    "verificationStatus": {
        "coding": [
            {
                "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                "code": "confirmed",
            }
        ]
    },
    "code": {
        "coding": [
            {
                "system": ICD10GM,
                "version": "2024",
                "code": "E11.90",
                "display": "Diabetes mellitus, Typ 2: Ohne Komplikationen",
                "extension": [
                    {
                        "url": "http://fhir.de/StructureDefinition/icd-10-gm-diagnosesicherheit",
                        "valueCoding": {
                            "system": "https://fhir.kbv.de/CodeSystem/KBV_CS_SFHIR_ICD_DIAGNOSESICHERHEIT",
                            "code": "G",
                        },
                    }
                ],
            }
        ]
    },
    "subject": {"reference": "Patient/p-1"},
    "encounter": {"reference": "Encounter/enc-1"},
    "onsetDateTime": "2019",
    "recordedDate": "2024-02-28",
    "note": [{"text": "Erstdiagnose **2019** beim Hausarzt.", "time": "2024-02-28T15:00:00+01:00"}],
}

MEDICATION_REQUEST: dict[str, Any] = {
    "resourceType": "MedicationRequest",
    "id": "mr-1",
    "contained": [
        {
            "resourceType": "Medication",
            "id": "med",
            "code": {
                "coding": [{"system": "http://fhir.de/CodeSystem/ifa/pzn", "code": "06313728"}],
                "text": "Metformin 500 mg",
            },
        }
    ],
    "status": "active",
    "intent": "order",
    "medicationReference": {"reference": "#med"},
    "subject": {"reference": "Patient/p-1"},
    "authoredOn": "2024-02-29",
    "requester": {"reference": "Practitioner/dr-b"},
    "dosageInstruction": [
        {
            "text": "1-0-1",
            "timing": {
                "repeat": {"frequency": 2, "period": 1, "periodUnit": "d", "when": ["MORN", "EVE"]}
            },
            "route": {"coding": [{"system": "http://standardterms.edqm.eu", "code": "20053000"}]},
            "doseAndRate": [
                {
                    "doseQuantity": {
                        "value": 1,
                        "unit": "Tablette",
                        "system": "http://unitsofmeasure.org",
                        "code": "{tbl}",
                    }
                }
            ],
        }
    ],
    "dispenseRequest": {"numberOfRepeatsAllowed": 0, "quantity": {"value": 180}},
}

DIAGNOSTIC_REPORT: dict[str, Any] = {
    "resourceType": "DiagnosticReport",
    "id": "rep-1",
    "status": "final",
    "category": [
        {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "LAB"}]}
    ],
    "code": {"coding": [{"system": LOINC, "code": "58410-2"}]},
    "subject": {"reference": "Patient/p-1"},
    "effectivePeriod": {"start": "2024-03-01T08:00:00+01:00", "end": "2024-03-01T09:00:00+01:00"},
    "issued": "2024-03-01T09:15:00+01:00",
    "result": [{"reference": "Observation/hb-1"}],
    "conclusion": "Unauffälliges Blutbild.",
    "presentedForm": [
        {"contentType": "application/pdf", "data": "JVBERi0xLjQK", "title": "Befund"}
    ],
}

CONSENT: dict[str, Any] = {
    "resourceType": "Consent",
    "id": "bc-1",
    "status": "active",
    "scope": {
        "coding": [
            {"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "research"}
        ]
    },
    "category": [{"coding": [{"system": LOINC, "code": "57016-8"}]}],
    "patient": {"reference": "Patient/p-1"},
    "dateTime": "2024-01-15T11:00:00+01:00",
    "policy": [{"uri": "urn:oid:2.16.840.1.113883.3.1937.777.24.2.1790"}],
    "provision": {
        "type": "permit",
        "period": {"start": "2024-01-15", "end": "2029-01-15"},
        "provision": [
            {
                "type": "permit",
                "code": [
                    {
                        "coding": [
                            {
                                "system": "urn:oid:2.16.840.1.113883.3.1937.777.24.5.3",
                                "code": "2.16.840.1.113883.3.1937.777.24.5.3.8",
                            }
                        ]
                    }
                ],
            }
        ],
    },
}

IMAGING_STUDY: dict[str, Any] = {
    "resourceType": "ImagingStudy",
    "id": "ct-1",
    "identifier": [
        {"system": "urn:dicom:uid", "value": "urn:oid:1.2.840.113619.2.55.3.604688119.971.1"}
    ],
    "status": "available",
    "modality": [{"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "CT"}],
    "subject": {"reference": "Patient/p-1"},
    "started": "2024-02-20T10:03:00+01:00",
    "numberOfSeries": 1,
    "numberOfInstances": 1,
    "endpoint": [{"reference": "https://medicus.example/fhir/Endpoint/dicomweb"}],
    "series": [
        {
            "uid": "1.2.840.113619.2.55.3.604688119.971.1.1",
            "number": 1,
            "modality": {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "CT"},
            "bodySite": {
                "system": "http://snomed.info/sct",
                "code": "51185008",
                "display": "Thorax",
            },
            "instance": [
                {
                    "uid": "1.2.840.113619.2.55.3.604688119.971.1.1.1",
                    "sopClass": {
                        "system": "urn:ietf:rfc:3986",
                        "code": "urn:oid:1.2.840.10008.5.1.4.1.1.2",
                    },
                    "number": 1,
                }
            ],
        }
    ],
}


def _transaction() -> dict[str, Any]:
    patient = {key: value for key, value in PATIENT.items() if key not in ("id", "meta")}
    observation = {**OBSERVATION, "subject": {"reference": PATIENT_UUID}}
    del observation["id"]
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": PATIENT_UUID,
                "resource": patient,
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "fullUrl": "urn:uuid:4a1e9b7c-2d3f-4e5a-8b6c-7d8e9f0a1b2c",
                "resource": observation,
                "request": {"method": "POST", "url": "Observation"},
            },
            {"request": {"method": "DELETE", "url": "Flag/f-1"}},
        ],
    }


VALID = [
    PATIENT,
    OBSERVATION,
    ENCOUNTER,
    CONDITION,
    MEDICATION_REQUEST,
    DIAGNOSTIC_REPORT,
    CONSENT,
    IMAGING_STUDY,
    _transaction(),
    {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "resource", "resource": CONDITION},
            {"name": "mode", "valueCode": "create"},
            {"name": "options", "part": [{"name": "strict", "valueBoolean": True}]},
        ],
    },
    {
        "resourceType": "Questionnaire",
        "status": "draft",
        "item": [
            {
                "linkId": "1",
                "type": "group",
                "item": [{"linkId": "1.1", "type": "integer", "initial": [{"valueInteger": -3}]}],
            }
        ],
    },
]


@pytest.mark.parametrize("resource", VALID, ids=lambda r: r["resourceType"])
def test_valid_resources_have_no_issues(resource: dict[str, Any]) -> None:
    assert validate(resource) == []


def _issues(resource: dict[str, Any]) -> list[tuple[str, str]]:
    return [(issue.code, issue.expression) for issue in validate(resource)]


def _changed(resource: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**copy.deepcopy(resource), **changes}


def test_issue_shape() -> None:
    (issue,) = validate(_changed(PATIENT, birthDate="12.08.1964"))
    assert issue == Issue("error", "value", "Patient.birthDate", "'12.08.1964' is not a valid date")


@pytest.mark.parametrize(
    "resource",
    [{"resourceType": "Patiente"}, {"resourceType": "DomainResource"}, {"id": "x"}],
)
def test_unknown_resource_type(resource: dict[str, Any]) -> None:
    assert _issues(resource) == [("invalid", "resourceType")]


def test_unknown_elements_anywhere() -> None:
    patient = _changed(PATIENT, birthdate="1964-08-12")
    patient["name"][0]["middle"] = "M"
    assert _issues(patient) == [
        ("structure", "Patient.name[0].middle"),
        ("structure", "Patient.birthdate"),
    ]


@pytest.mark.parametrize(
    ("changes", "expression"),
    [
        ({"active": "true"}, "Patient.active"),
        ({"birthDate": 19640812}, "Patient.birthDate"),
        ({"gender": None}, "Patient.gender"),
        ({"managingOrganization": "Organization/klinikum-a"}, "Patient.managingOrganization"),
        ({"multipleBirthInteger": 2.0}, "Patient.multipleBirth.ofType(integer)"),
        ({"multipleBirthInteger": True}, "Patient.multipleBirth.ofType(integer)"),
    ],
)
def test_wrong_json_types(changes: dict[str, Any], expression: str) -> None:
    assert _issues(_changed(PATIENT, **changes)) == [("structure", expression)]


def test_numbers() -> None:
    observation = _changed(OBSERVATION, valueQuantity={"value": "13.2"})
    assert _issues(observation) == [("structure", "Observation.value.ofType(Quantity).value")]
    observation = _changed(OBSERVATION, valueQuantity={"value": float("nan")})
    assert _issues(observation) == [("structure", "Observation.value.ofType(Quantity).value")]
    request = copy.deepcopy(MEDICATION_REQUEST)
    request["dosageInstruction"][0]["timing"]["repeat"]["frequency"] = 0
    request["dispenseRequest"]["numberOfRepeatsAllowed"] = -1
    assert _issues(request) == [
        ("value", "MedicationRequest.dosageInstruction[0].timing.repeat.frequency"),
        ("value", "MedicationRequest.dispenseRequest.numberOfRepeatsAllowed"),
    ]
    assert _issues(_changed(PATIENT, multipleBirthInteger=2**31)) == [
        ("value", "Patient.multipleBirth.ofType(integer)")
    ]


def test_arrays_exactly_for_repeating_elements() -> None:
    patient = _changed(PATIENT, name={"family": "Mustermann"}, gender=["female"])
    assert _issues(patient) == [("structure", "Patient.name"), ("structure", "Patient.gender")]


def test_empty_values_are_not_allowed() -> None:
    patient = _changed(PATIENT, telecom=[], gender="", photo=[{}])
    patient["name"][0]["given"] = ["Erika", ""]
    assert _issues(patient) == [
        ("value", "Patient.name[0].given[1]"),
        ("invariant", "Patient.telecom"),
        ("value", "Patient.gender"),
        ("invariant", "Patient.photo[0]"),
    ]


def test_missing_required_elements() -> None:
    observation = copy.deepcopy(OBSERVATION)
    del observation["status"], observation["code"]
    observation["referenceRange"][0] = {}
    assert _issues(observation) == [
        ("invariant", "Observation.referenceRange[0]"),
        ("required", "Observation.code"),
        ("required", "Observation.status"),
    ]
    extension_only = _changed(OBSERVATION, _status={"extension": [_absent()]})
    del extension_only["status"]
    assert validate(extension_only) == []


def _absent() -> dict[str, Any]:
    return {
        "url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason",
        "valueCode": "unknown",
    }


def test_required_choice_and_backbone_elements() -> None:
    usage = {
        "code": {
            "system": "http://terminology.hl7.org/CodeSystem/usage-context-type",
            "code": "focus",
        }
    }
    consent = _changed(CONSENT, provision={"actor": [{"role": {"text": "Arzt"}}]})
    library = {
        "resourceType": "Library",
        "status": "draft",
        "type": {"text": "logic"},
        "useContext": [usage],
    }
    assert _issues(consent) == [("required", "Consent.provision.actor[0].reference")]
    assert _issues(library) == [("required", "Library.useContext[0].value")]


@pytest.mark.parametrize(
    ("element", "value", "type_name"),
    [
        ("birthDate", "1964-13-01", "date"),
        ("birthDate", "1964-02-30", "date"),
        ("birthDate", "64-08-12", "date"),
        ("deceasedDateTime", "2024-03-01T10:00:00", "dateTime"),
        ("deceasedDateTime", "2024-03-01 10:00:00Z", "dateTime"),
        ("gender", "fe male ", "code"),
        ("implicitRules", "http://x y", "uri"),
        ("id", "a_b", "id"),
        ("id", "x" * 65, "id"),
        ("language", "de  DE", "code"),
    ],
)
def test_primitive_formats(element: str, value: str, type_name: str) -> None:
    issues = validate(_changed(PATIENT, **{element: value}))
    assert [(i.code, f"valid {type_name}" in i.diagnostics) for i in issues] == [("value", True)]


def test_more_primitive_formats() -> None:
    observation = _changed(
        OBSERVATION, issued="2024-03-01", valueTime="25:00:00", identifier=[{"value": "a\u000bb"}]
    )
    del observation["valueQuantity"]
    assert _issues(observation) == [
        ("value", "Observation.issued"),
        ("value", "Observation.value.ofType(time)"),
        ("value", "Observation.identifier[0].value"),
    ]
    report = copy.deepcopy(DIAGNOSTIC_REPORT)
    report["presentedForm"][0]["data"] = "not base64!"
    report["text"] = {"status": "generated", "div": "Befund"}
    assert _issues(report) == [
        ("value", "DiagnosticReport.presentedForm[0].data"),
        ("value", "DiagnosticReport.text.div"),
    ]
    # XML-Schema regexes: a non-breaking space is an ordinary character of a string.
    assert validate(_changed(PATIENT, name=[{"text": "Erika\u00a0Mustermann"}])) == []


def test_only_one_choice_variant() -> None:
    observation = _changed(OBSERVATION, valueString="13,2 g/dl")
    assert _issues(observation) == [("structure", "Observation.value[x]")]
    sibling = _changed(PATIENT, deceasedBoolean=False, _deceasedDateTime={"extension": [_absent()]})
    assert _issues(sibling) == [("structure", "Patient.deceased[x]")]


def test_primitive_extension_siblings() -> None:
    patient = copy.deepcopy(PATIENT)
    patient["name"][0]["given"] = ["Erika", None]
    patient["name"][0]["_given"] = [None, {"extension": [_absent()]}]
    assert validate(patient) == []
    patient["name"][0]["_given"] = [None]
    patient["_birthDate"] = [{"extension": [_absent()]}]
    patient["_gender"] = {"extension": [{"valueCode": "x"}]}
    patient["_name"] = {"id": "n"}
    assert _issues(patient) == [
        ("structure", "Patient.name[0].given[1]"),
        ("structure", "Patient.name[0]._given"),
        ("structure", "Patient._birthDate"),
        ("required", "Patient.gender.extension[0].url"),
        ("structure", "Patient._name"),
    ]
    patient = copy.deepcopy(PATIENT)
    patient["name"][0]["given"] = [None, "Maria"]
    assert _issues(patient) == [("structure", "Patient.name[0].given[0]")]


def test_extensions() -> None:
    patient = _changed(
        PATIENT,
        extension=[
            {"valueString": "x"},
            {"url": "http://example.org/a"},
            {"url": "http://example.org/b", "valueString": "x", "extension": [_absent()]},
            {"url": "http://example.org/c", "valueSting": "x"},
        ],
        modifierExtension=[{"url": "http://example.org/m", "valueBoolean": "yes"}],
    )
    assert _issues(patient) == [
        ("required", "Patient.extension[0].url"),
        ("invariant", "Patient.extension[1]"),
        ("invariant", "Patient.extension[2]"),
        ("structure", "Patient.extension[3].valueSting"),
        ("structure", "Patient.modifierExtension[0].value.ofType(boolean)"),
    ]


def test_contained_resources_are_validated_as_resources() -> None:
    request = copy.deepcopy(MEDICATION_REQUEST)
    request["contained"][0]["status"] = " active"
    request["contained"].append({"resourceType": "Medikament", "id": "m2"})
    request["contained"].append(
        {"resourceType": "Medication", "id": "m3", "contained": [{"resourceType": "Substance"}]}
    )
    assert _issues(request) == [
        ("value", "MedicationRequest.contained[0].status"),
        ("invalid", "MedicationRequest.contained[1].resourceType"),
        ("required", "MedicationRequest.contained[2].contained[0].code"),
        ("invariant", "MedicationRequest.contained[2]"),
    ]


def test_bundle_entries_are_validated_as_resources() -> None:
    bundle = _transaction()
    bundle["entry"][1]["resource"]["status"] = 1
    bundle["entry"][1]["resource"]["subject"] = {"reference": "urn:uuid:nope"}
    bundle["entry"][2]["resource"] = {"resourceType": "Flag"}
    assert _issues(bundle) == [
        ("structure", "Bundle.entry[1].resource.status"),
        ("value", "Bundle.entry[1].resource.subject.reference"),
        ("required", "Bundle.entry[2].resource.code"),
        ("required", "Bundle.entry[2].resource.status"),
        ("required", "Bundle.entry[2].resource.subject"),
    ]


def test_bundle_invariants() -> None:
    bundle = _transaction()
    bundle["entry"][1]["fullUrl"] = PATIENT_UUID
    del bundle["entry"][0]["request"]
    assert _issues(bundle) == [
        ("invariant", "Bundle.entry[0]"),
        ("invariant", "Bundle.entry[1].fullUrl"),
    ]
    searchset = {"resourceType": "Bundle", "type": "searchset", "entry": bundle["entry"][:2]}
    assert _issues(searchset) == [
        ("invariant", "Bundle.entry[1]"),
        ("invariant", "Bundle.entry[1].fullUrl"),
    ]


def test_parameters_resources_are_validated() -> None:
    parameters = {
        "resourceType": "Parameters",
        "parameter": [{"name": "resource", "resource": {"resourceType": "Patient", "gender": 1}}],
    }
    assert _issues(parameters) == [("structure", "Parameters.parameter[0].resource.gender")]


@pytest.mark.parametrize(
    "reference",
    [
        "Patient/p-1",
        "Patient/p-1/_history/3",
        "https://other.example/fhir/Patient/7",
        "https://other.example/fhir/Patient/7/_history/1",
        "http://example.org/some/thing",
        "urn:uuid:0c3f2c4e-9d4b-4b8e-8f2a-5f1d6a7b8c9d",
        "urn:oid:1.2.276.0.76.4.8",
        "#",
    ],
)
def test_reference_syntax_accepted(reference: str) -> None:
    assert validate(_changed(OBSERVATION, subject={"reference": reference})) == []


@pytest.mark.parametrize(
    "reference",
    [
        "Patient",
        "Patient/",
        "Patient/p_1",
        "patient/p-1",
        "Patient/p-1/_history",
        "urn:uuid:0C3F2C4E",
        "urn:oid:abc",
        "#a b",
        "Patient/p-1 ",
        "Patiente/p-1",
        "Practitioner/dr-b",
        "https://other.example/fhir/Practitioner/7",
    ],
)
def test_reference_syntax_and_targets_rejected(reference: str) -> None:
    issues = _issues(_changed(OBSERVATION, subject={"reference": reference}))
    assert issues == [("value", "Observation.subject.reference")]


def test_any_resource_may_be_the_target_of_an_unrestricted_reference() -> None:
    assert validate(_changed(OBSERVATION, focus=[{"reference": "Practitioner/dr-b"}])) == []


def test_quantity_with_code_needs_system() -> None:
    observation = _changed(OBSERVATION, valueQuantity={"value": 1, "code": "g/dL"})
    assert _issues(observation) == [("invariant", "Observation.value.ofType(Quantity)")]


def test_german_identifier_formats_when_a_german_profile_is_claimed() -> None:
    patient = copy.deepcopy(PATIENT)
    patient["identifier"][0]["value"] = "123456789"
    assert _issues(patient) == [("value", "Patient.identifier[0].value")]
    del patient["meta"]["profile"]
    assert validate(patient) == []
    organisation = {
        "resourceType": "Organization",
        "meta": {"profile": ["http://fhir.de/StructureDefinition/organization-de-basis"]},
        "identifier": [{"system": "http://fhir.de/sid/arge-ik/iknr", "value": "26071016"}],
        "name": "Klinikum A",
    }
    assert _issues(organisation) == [("value", "Organization.identifier[0].value")]


def test_issues_are_capped() -> None:
    patient = _changed(PATIENT, name=[{"given": [1]} for _ in range(MAX_ISSUES + 5)])
    assert len(validate(patient)) == MAX_ISSUES


KEYS = ["resourceType", "id", "extension", "url", "valueString", "_given", "given", "reference"]
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(resource=st.sampled_from(VALID), spot=st.integers(0, 10_000), junk=JSON)
def test_any_json_gives_issues_never_an_exception(resource: Any, spot: int, junk: Any) -> None:
    broken = copy.deepcopy(resource)
    target, key = _some_place(broken, spot)
    target[key] = junk
    assert all(isinstance(issue, Issue) for issue in validate(broken))


def _some_place(value: Any, spot: int) -> tuple[Any, Any]:
    """A (container, key) pair somewhere inside `value`, picked by `spot`."""
    places = []
    stack = [value]
    while stack:
        current = stack.pop()
        keys = current.keys() if isinstance(current, dict) else range(len(current))
        for key in keys:
            places.append((current, key))
            if isinstance(current[key], dict | list) and current[key]:
                stack.append(current[key])
    return places[spot % len(places)]


def test_deep_nesting_is_an_issue_not_a_crash() -> None:
    extension: dict[str, Any] = {"url": "http://example.org/x", "valueString": "x"}
    for _ in range(2000):
        extension = {"url": "http://example.org/x", "extension": [extension]}
    issues = _issues(_changed(PATIENT, extension=[extension]))
    assert issues == [("too-costly", "Resource")]


def test_not_an_object() -> None:
    assert _issues([1, 2]) == [("structure", "Resource")]  # type: ignore[arg-type]


def test_structures_say_what_the_definitions_say() -> None:
    tables = json.loads(STRUCTURES.read_text(encoding="utf-8"))
    types = tables["types"]
    assert types["Patient"]["birthDate"] == ["date", 0, "1"]
    assert types["Patient"]["id"] == ["id", 0, "1"]
    assert types["Observation"]["status"] == ["code", 1, "1"]
    assert types["Observation"]["subject"][0] == "Reference(Device|Group|Location|Patient)"
    choices = {key for key, entry in types["Observation"].items() if entry[3:] == ["value"]}
    assert {"valueQuantity", "valueCodeableConcept", "valueString", "valuePeriod"} <= choices
    assert len(choices) == 11
    assert types["Observation.referenceRange"]["low"][0] == "SimpleQuantity"
    assert types["Questionnaire.item"]["item"][0] == "Questionnaire.item"
    assert types["Bundle.entry"]["resource"] == ["Resource", 0, "1"]
    assert types["Extension"]["url"] == ["uri", 1, "1"]
    assert "comparator" not in types["SimpleQuantity"]
    assert {"HumanName", "Dosage", "Timing.repeat", "Meta", "Narrative"} <= set(types)
    assert len(tables["resources"]) == 146
    assert tables["primitives"]["positiveInt"] == {"json": "integer"}
    assert tables["primitives"]["id"]["regex"] == r"[A-Za-z0-9\-\.]{1,64}"
    assert STRUCTURES.stat().st_size < 1_000_000


def test_every_type_named_in_structures_is_defined() -> None:
    tables = json.loads(STRUCTURES.read_text(encoding="utf-8"))
    defined = set(tables["primitives"]) | set(tables["types"]) | {"Resource"}
    named = {entry[0] for table in tables["types"].values() for entry in table.values()}
    assert {name.split("(")[0] for name in named} <= defined
    assert {
        t for name in named if name.startswith("Reference(") for t in name[10:-1].split("|")
    } <= set(tables["resources"])


# The errata of hl7.fhir.r4.core 4.0.1 itself: ten SearchParameters without `base`, one id
# longer than 64 characters.
PACKAGE_ERRATA = 11


@pytest.mark.skipif(
    "MEDICUS_FHIR_R4_PACKAGE" not in os.environ,
    reason="set MEDICUS_FHIR_R4_PACKAGE to hl7.fhir.r4.core.tgz (see the generator script)",
)
def test_every_resource_of_the_core_package_validates() -> None:
    invalid = []
    with tarfile.open(os.environ["MEDICUS_FHIR_R4_PACKAGE"]) as archive:
        for member in archive.getmembers():
            handle = archive.extractfile(member) if member.name.endswith(".json") else None
            resource = json.load(handle) if handle is not None else None
            if isinstance(resource, dict) and "resourceType" in resource and validate(resource):
                invalid.append(member.name)
    assert len(invalid) == PACKAGE_ERRATA, invalid
