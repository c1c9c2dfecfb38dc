"""Deterministic synthetic clinical data shaped like a German hospital's: per patient a Patient
with a KVNR, two Encounters with case numbers, three Conditions coded in ICD-10-GM and a
series of lab Observations coded in LOINC — as one transaction bundle with urn:uuid
references. Fast to generate (the benchmark needs a million resources), and every value the
typical searches ask for is known from the patient number."""

from __future__ import annotations

import datetime as dt
from typing import Any

KVNR = "http://fhir.de/sid/gkv/kvid-10"
CASE_NUMBER = "http://medicus.example/sid/fallnummer"
ICD10GM = "http://fhir.de/CodeSystem/bfarm/icd-10-gm"
LOINC = "http://loinc.org"
LABS = (("718-7", "g/dL", 13.5), ("2345-7", "mg/dL", 95.0), ("2951-2", "mmol/L", 140.0))
DIAGNOSES = ("E11.9", "I10.90", "J44.9", "N18.3", "E78.0", "I48.9", "K21.9", "M54.5")
FIRST_DAY = dt.date(2024, 1, 1)


def kvnr(number: int) -> str:
    return f"X{number:09d}"


def family(number: int) -> str:
    return f"Familie{number % 5000}"


def birth_date(number: int) -> str:
    return (dt.date(1940, 1, 1) + dt.timedelta(days=(number * 37) % 25000)).isoformat()


def admission(number: int, stay: int) -> dt.date:
    return FIRST_DAY + dt.timedelta(days=(number * 13 + stay * 180) % 1000)


def _uuid(number: int, part: int) -> str:
    return f"urn:uuid:00000000-0000-4000-8000-{number:08d}{part:04d}"


def _entry(full_url: str, resource: dict[str, Any]) -> dict[str, Any]:
    return {
        "fullUrl": full_url,
        "resource": resource,
        "request": {"method": "POST", "url": resource["resourceType"]},
    }


def patient_bundle(number: int, labs_per_stay: int = 16) -> dict[str, Any]:
    """One patient's transaction bundle: 1 + 2 + 3 + 2 * `labs_per_stay` resources."""
    patient = _uuid(number, 0)
    entries = [
        _entry(
            patient,
            {
                "resourceType": "Patient",
                "identifier": [{"system": KVNR, "value": kvnr(number)}],
                "name": [{"family": family(number), "given": [f"Vorname{number % 300}"]}],
                "gender": "female" if number % 2 else "male",
                "birthDate": birth_date(number),
                "address": [{"city": "Greifswald", "postalCode": "17489", "country": "DE"}],
            },
        )
    ]
    for stay in range(2):
        encounter = _uuid(number, 1 + stay)
        start = admission(number, stay)
        entries.append(
            _entry(
                encounter,
                {
                    "resourceType": "Encounter",
                    "identifier": [{"system": CASE_NUMBER, "value": f"F{number}-{stay}"}],
                    "status": "finished",
                    "class": {
                        "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                        "code": "IMP",
                    },
                    "subject": {"reference": patient},
                    "period": {
                        "start": f"{start.isoformat()}T08:00:00+01:00",
                        "end": f"{(start + dt.timedelta(days=4)).isoformat()}T12:00:00+01:00",
                    },
                },
            )
        )
        for lab in range(labs_per_stay):
            code, unit, normal = LABS[lab % len(LABS)]
            taken = start + dt.timedelta(days=lab % 4)
            entries.append(
                _entry(
                    _uuid(number, 100 + stay * labs_per_stay + lab),
                    {
                        "resourceType": "Observation",
                        "status": "final",
                        "category": [
                            {
                                "coding": [
                                    {
                                        "system": "http://terminology.hl7.org/CodeSystem/"
                                        "observation-category",
                                        "code": "laboratory",
                                    }
                                ]
                            }
                        ],
                        "code": {"coding": [{"system": LOINC, "code": code}]},
                        "subject": {"reference": patient},
                        "encounter": {"reference": encounter},
                        "effectiveDateTime": f"{taken.isoformat()}T0{lab % 10}:30:00+01:00",
                        "valueQuantity": {
                            "value": round(normal * (0.8 + (number * 7 + lab) % 40 / 100), 1),
                            "unit": unit,
                            "system": "http://unitsofmeasure.org",
                            "code": unit,
                        },
                    },
                )
            )
    for diagnosis in range(3):
        entries.append(
            _entry(
                _uuid(number, 10 + diagnosis),
                {
                    "resourceType": "Condition",
                    "clinicalStatus": {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/"
                                "condition-clinical",
                                "code": "active",
                            }
                        ]
                    },
                    "code": {
                        "coding": [
                            {
                                "system": ICD10GM,
                                "version": "2026",
                                "code": DIAGNOSES[(number + diagnosis * 3) % len(DIAGNOSES)],
                            }
                        ]
                    },
                    "subject": {"reference": patient},
                    "encounter": {"reference": _uuid(number, 1)},
                    "recordedDate": admission(number, 0).isoformat(),
                },
            )
        )
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}
