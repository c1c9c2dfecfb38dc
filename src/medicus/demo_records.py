"""Demo patients for `make run` (development only), so that the portal has something to show:
four people with records at both demo hospitals.

- Anna Müller was an inpatient at the university hospital (labs over two years, diagnoses,
  medication, a procedure, a discharge letter, a chest X-ray and a CT) and consented there
  to sharing her data; she is now treated at the district hospital, which therefore sees the
  university hospital's data of her.
- Max Schmidt has records at both too, but gave no consent: the district hospital sees the
  university hospital's data of him only after a physician opens it by break-glass.
- Erika Wagner is an inpatient at the university hospital now and was admitted to the
  district hospital too; she has not consented yet: once a university physician records her
  consent, the district hospital sees the university hospital's data of her.
- Johann Maier (university hospital) and Johann Meier (district hospital, admitted without
  his health card: no KVNR) share a birth date: a pair for the platform's patient matching.

Written through the FHIR hub as each hospital's own system (so `access` keeps consents and
treatment relations as for any write), with fixed ids in each hospital's namespace
(`<organisation id>.anna`): a second run finds them and writes nothing."""

from __future__ import annotations

import datetime as dt
from typing import Any

from medicus.core.errors import ApiError
from medicus.iam.scopes import parse_scopes
from medicus.iam.tokens import Principal
from medicus.platform import Platform

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
ICD10GM = "http://fhir.de/CodeSystem/bfarm/icd-10-gm"
KVNR = "http://fhir.de/sid/gkv/kvid-10"
DICOM = "http://dicom.nema.org/resources/ontology/DCM"
SNOMED = "http://snomed.info/sct"
DEMO_DICOM_ROOT = "1.2.276.0.7230010.3.1.2.4711"
"""A made-up UID root for the demo's studies (never a real device's)."""
LABS = (
    ("718-7", "Hämoglobin", "g/dL", 12.0, 16.0, (13.4, 12.9, 11.2, 9.8, 10.6, 11.9, 12.6)),
    ("2160-0", "Kreatinin", "mg/dL", 0.5, 1.1, (0.9, 1.0, 1.3, 1.6, 1.4, 1.2, 1.1)),
    ("2345-7", "Glukose", "mg/dL", 70.0, 100.0, (92.0, 110.0, 131.0, 118.0, 97.0, 101.0, 95.0)),
)


def _system(organisation_id: str) -> Principal:
    scope = "system/*.cruds"
    return Principal(
        subject=f"demo-{organisation_id}",
        kind="service",
        organisation_id=organisation_id,
        role=None,
        client_id="medicus-demo",
        scope=parse_scopes(scope),
        scope_text=scope,
        jti="demo",
        expires_at=0,
    )


def _put(resource: dict[str, Any]) -> dict[str, Any]:
    url = f"{resource['resourceType']}/{resource['id']}"
    return {"fullUrl": url, "resource": resource, "request": {"method": "PUT", "url": url}}


def _bundle(*resources: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "transaction", "entry": [_put(r) for r in resources]}


def _patient(
    id_: str, kvnr: str | None, family: str, given: str, born: str, gender: str
) -> dict[str, Any]:
    patient: dict[str, Any] = {
        "resourceType": "Patient",
        "id": id_,
        "name": [{"use": "official", "family": family, "given": [given]}],
        "birthDate": born,
        "gender": gender,
    }
    if kvnr:
        patient["identifier"] = [{"system": KVNR, "value": kvnr}]
    return patient


def _encounter(id_: str, patient: str, status: str, start: dt.date, text: str) -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "id": id_,
        "status": status,
        "class": {
            "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
            "code": "IMP",
            "display": "stationär",
        },
        "type": [{"text": text}],
        "subject": {"reference": f"Patient/{patient}"},
        "period": {"start": start.isoformat()},
    }


def _labs(prefix: str, patient: str, first: dt.date) -> list[dict[str, Any]]:
    found = []
    for code, name, unit, low, high, values in LABS:
        for number, value in enumerate(values):
            when = first + dt.timedelta(days=100 * number)
            found.append(
                {
                    "resourceType": "Observation",
                    "id": f"{prefix}-{code}-{number}",
                    "status": "final",
                    "category": [{"coding": [{"code": "laboratory"}]}],
                    "code": {"coding": [{"system": LOINC, "code": code, "display": name}]},
                    "subject": {"reference": f"Patient/{patient}"},
                    "effectiveDateTime": f"{when.isoformat()}T07:30:00+01:00",
                    "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit},
                    "referenceRange": [{"low": {"value": low}, "high": {"value": high}}],
                }
            )
    return found


def _condition(id_: str, patient: str, code: str, text: str, onset: dt.date) -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "id": id_,
        "clinicalStatus": {"coding": [{"code": "active"}]},
        "code": {"coding": [{"system": ICD10GM, "code": code, "display": text}]},
        "subject": {"reference": f"Patient/{patient}"},
        "onsetDateTime": onset.isoformat(),
    }


def _consent(id_: str, patient: str, signed: dt.date) -> dict[str, Any]:
    return {
        "resourceType": "Consent",
        "id": id_,
        "status": "active",
        "scope": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                    "code": "patient-privacy",
                }
            ]
        },
        "category": [{"coding": [{"system": LOINC, "code": "59284-0"}]}],
        "patient": {"reference": f"Patient/{patient}"},
        "dateTime": signed.isoformat(),
        "sourceAttachment": {"contentType": "application/pdf", "title": "Einwilligung"},
        "provision": {"type": "permit"},
    }


def _series(
    number: int, modality: str, site: tuple[str, str], text: str, images: int
) -> dict[str, Any]:
    return {
        "number": number,
        "modality": {"system": DICOM, "code": modality},
        "description": text,
        "numberOfInstances": images,
        "bodySite": {"system": SNOMED, "code": site[0], "display": site[1]},
    }


def _imaging_studies(patient: str, today: dt.date) -> list[dict[str, Any]]:
    """A chest X-ray and a CT of the chest, as the PACS connector will record them (no
    images yet: those come with `imaging`)."""
    chest = ("51185008", "Thorax")
    studies = []
    for suffix, modality, days, text, series, endpoint in (
        ("xray", "DX", 96, "Röntgen Thorax p.a.", [_series(1, "DX", chest, "Thorax p.a.", 1)], []),
        (
            "ct",
            "CT",
            94,
            "CT Thorax mit Kontrastmittel",
            [
                _series(1, "CT", chest, "Topogramm", 1),
                _series(2, "CT", chest, "Thorax arteriell 1 mm", 412),
                _series(3, "CT", chest, "Thorax venös 3 mm", 138),
            ],
            [{"display": "PACS Universitätsklinikum (DICOMweb)"}],
        ),
    ):
        started = today - dt.timedelta(days=days)
        uid = f"{DEMO_DICOM_ROOT}.{days}"
        studies.append(
            {
                "resourceType": "ImagingStudy",
                "id": f"{patient}-{suffix}",
                "identifier": [{"system": "urn:dicom:uid", "value": f"urn:oid:{uid}"}],
                "status": "available",
                "modality": [{"system": DICOM, "code": modality}],
                "subject": {"reference": f"Patient/{patient}"},
                "started": f"{started.isoformat()}T10:20:00+01:00",
                "referrer": {"display": "Dr. Lena Berger, Innere Medizin"},
                "numberOfSeries": len(series),
                "numberOfInstances": sum(s["numberOfInstances"] for s in series),
                "description": text,
                "series": [{**s, "uid": f"{uid}.{s['number']}"} for s in series],
                **({"endpoint": endpoint} if endpoint else {}),
            }
        )
    return studies


def _university_records(uk: str, today: dt.date) -> list[dict[str, Any]]:
    first = today - dt.timedelta(days=700)
    anna, max_, erika = f"{uk}.anna", f"{uk}.max", f"{uk}.erika"
    letter = {
        "resourceType": "DocumentReference",
        "id": f"{anna}-letter",
        "status": "current",
        "type": {"coding": [{"system": LOINC, "code": "18842-5", "display": "Entlassbrief"}]},
        "subject": {"reference": f"Patient/{anna}"},
        "date": f"{(today - dt.timedelta(days=80)).isoformat()}T12:00:00+01:00",
        "content": [{"attachment": {"contentType": "application/pdf", "title": "Entlassbrief"}}],
    }
    medication = {
        "resourceType": "MedicationRequest",
        "id": f"{anna}-ramipril",
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": {"text": "Ramipril 5 mg"},
        "subject": {"reference": f"Patient/{anna}"},
        "authoredOn": (today - dt.timedelta(days=90)).isoformat(),
        "dosageInstruction": [{"text": "1-0-0"}],
    }
    kidneys = "Chronische Nierenkrankheit, Stadium 3"
    return [
        _patient(anna, "M123456781", "Müller", "Anna", "1964-05-17", "female"),
        _patient(max_, "S987654320", "Schmidt", "Max", "1958-11-02", "male"),
        *_labs(anna, anna, first),
        *_labs(max_, max_, first),
        _patient(erika, "W445566770", "Wagner", "Erika", "1971-03-08", "female"),
        *_labs(erika, erika, first),
        _encounter(f"{erika}-stay", erika, "in-progress", today, "Kardiologie"),
        _patient(f"{uk}.johann", "J112233440", "Maier", "Johann", "1949-09-21", "male"),
        _condition(f"{anna}-n18", anna, "N18.3", kidneys, first),
        _condition(f"{anna}-d50", anna, "D50.9", "Eisenmangelanämie", first),
        _condition(f"{max_}-i25", max_, "I25.1", "Atherosklerotische Herzkrankheit", first),
        medication,
        letter,
        *_imaging_studies(anna, today),
    ]


async def load_demo_records(
    platform: Platform, university: str, district: str, today: dt.date | None = None
) -> bool:
    """Write the demo patients unless they are there; whether they were written."""
    today = today or dt.date.today()
    fhir, bundles = platform.fhir.service, platform.fhir.bundles
    anna, anna_here, max_here = f"{university}.anna", f"{district}.anna", f"{district}.max"
    erika_here = f"{district}.erika"
    try:
        await fhir.read(_system(university), "Patient", anna)
        return False
    except ApiError as missing:
        if missing.status != 404:
            raise
    stay = today - dt.timedelta(days=95)
    uk, kkh = _system(university), _system(district)
    anna_stay = _encounter(f"{anna}-stay", anna, "in-progress", stay, "Innere Medizin")
    await bundles.process(uk, _bundle(*_university_records(university, today), anna_stay), None)
    await bundles.process(uk, _bundle(_consent(f"{anna}-consent", anna, stay)), None)
    await bundles.process(uk, _bundle({**anna_stay, "status": "finished"}), None)
    await bundles.process(
        kkh,
        _bundle(
            _patient(anna_here, "M123456781", "Müller", "Anna", "1964-05-17", "female"),
            _encounter(f"{anna_here}-stay", anna_here, "in-progress", today, "Notaufnahme"),
            _patient(max_here, "S987654320", "Schmidt", "Max", "1958-11-02", "male"),
            _encounter(f"{max_here}-stay", max_here, "in-progress", today, "Notaufnahme"),
            _patient(erika_here, "W445566770", "Wagner", "Erika", "1971-03-08", "female"),
            _encounter(f"{erika_here}-stay", erika_here, "in-progress", today, "Innere"),
            _patient(f"{district}.johann", None, "Meier", "Johann", "1949-09-21", "male"),
        ),
        None,
    )
    return True
