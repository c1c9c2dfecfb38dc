"""FHIR resources as the tests write them: the smallest valid resource of each kind, and
keyword arguments for whatever a test cares about (they go into the resource as they are)."""

from __future__ import annotations

from typing import Any

KVNR = "http://fhir.de/sid/gkv/kvid-10"
"""The statutory health insurance number (KVNR) of a person in Germany."""
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
HAEMOGLOBIN = "718-7"
FHIR_JSON = {"content-type": "application/fhir+json"}
PRIVACY = {
    "coding": [
        {"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}
    ]
}
"""The scope of a sharing consent."""
SHARING_CONSENT = [{"coding": [{"system": LOINC, "code": "59284-0"}]}]
SIGNED_FORM = {"contentType": "application/pdf", "title": "Einwilligung, unterschrieben"}
"""A sharing consent's source document (`Consent.sourceAttachment`)."""
INPATIENT = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"}


def kvnr(value: str) -> dict[str, str]:
    """The identifier of a person's KVNR."""
    return {"system": KVNR, "value": value}


def patient(
    kvnr_value: str | None = None,
    family: str | None = None,
    given: str | None = None,
    born: str | None = None,
    **elements: Any,
) -> dict[str, Any]:
    """A Patient record: the person's KVNR, name and birth date where given."""
    resource: dict[str, Any] = {"resourceType": "Patient"}
    if kvnr_value is not None:
        resource["identifier"] = [kvnr(kvnr_value)]
    name: dict[str, Any] = {}
    if family is not None:
        name["family"] = family
    if given is not None:
        name["given"] = [given]
    if name:
        resource["name"] = [name]
    if born is not None:
        resource["birthDate"] = born
    return {**resource, **elements}


def subject(patient_id: str) -> dict[str, str]:
    return {"reference": f"Patient/{patient_id}"}


def observation(
    patient_id: str | None = None,
    loinc: str = HAEMOGLOBIN,
    when: str | None = None,
    **elements: Any,
) -> dict[str, Any]:
    """A final Observation of code `loinc` about Patient record `patient_id`, made `when`."""
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": loinc}]},
    }
    if patient_id is not None:
        resource["subject"] = subject(patient_id)
    if when is not None:
        resource["effectiveDateTime"] = when
    return {**resource, **elements}


def grams_per_decilitre(value: float) -> dict[str, Any]:
    """A haemoglobin concentration (`Observation.valueQuantity`) in UCUM."""
    return {"value": value, "unit": "g/dL", "system": UCUM, "code": "g/dL"}


def consent(
    patient_id: str, decision: str = "permit", signed: bool = True, **elements: Any
) -> dict[str, Any]:
    """An active sharing consent of the person of Patient record `patient_id`, with a signed
    form (`signed`) and a provision of type `decision`."""
    resource: dict[str, Any] = {
        "resourceType": "Consent",
        "status": "active",
        "scope": PRIVACY,
        "category": SHARING_CONSENT,
        "patient": subject(patient_id),
        "provision": {"type": decision},
    }
    if signed:
        resource["sourceAttachment"] = SIGNED_FORM
    return {**resource, **elements}


def encounter(patient_id: str, status: str = "in-progress", **elements: Any) -> dict[str, Any]:
    """An inpatient stay of the person of Patient record `patient_id`."""
    return {
        "resourceType": "Encounter",
        "status": status,
        "class": INPATIENT,
        "subject": subject(patient_id),
        **elements,
    }


def referral(patient_id: str, to: str, status: str = "active", **elements: Any) -> dict[str, Any]:
    """A ServiceRequest that refers the person of Patient record `patient_id` to organisation
    `to`."""
    return {
        "resourceType": "ServiceRequest",
        "status": status,
        "intent": "order",
        "subject": subject(patient_id),
        "performer": [{"reference": f"Organization/{to}"}],
        **elements,
    }


DICOM_MODALITY = "http://dicom.nema.org/resources/ontology/DCM"
CHEST_XRAY_UID = "1.2.276.0.7230010.3.1.2.8323329.4711.1"


def chest_xray(patient_id: str, **elements: Any) -> dict[str, Any]:
    """An ImagingStudy of the person of Patient record `patient_id`: a chest X-ray, p.a. and
    lateral, with its DICOM Study Instance UID (CHEST_XRAY_UID)."""
    return {
        "resourceType": "ImagingStudy",
        "status": "available",
        "identifier": [{"system": "urn:dicom:uid", "value": f"urn:oid:{CHEST_XRAY_UID}"}],
        "modality": [{"system": DICOM_MODALITY, "code": "DX"}],
        "subject": subject(patient_id),
        "started": "2026-11-02T09:15:00+01:00",
        "referrer": {"display": "Dr. Weber, Innere Medizin"},
        "numberOfSeries": 2,
        "numberOfInstances": 2,
        "description": "Röntgen Thorax p.a. und seitlich",
        "series": [
            {
                "uid": f"{CHEST_XRAY_UID}.1",
                "number": 1,
                "modality": {"system": DICOM_MODALITY, "code": "DX"},
                "description": "Thorax p.a.",
                "numberOfInstances": 1,
                "bodySite": {
                    "system": "http://snomed.info/sct",
                    "code": "51185008",
                    "display": "Thorax",
                },
            },
            {
                "uid": f"{CHEST_XRAY_UID}.2",
                "number": 2,
                "modality": {"system": DICOM_MODALITY, "code": "DX"},
                "description": "Thorax seitlich",
                "numberOfInstances": 1,
                "bodySite": {
                    "system": "http://snomed.info/sct",
                    "code": "51185008",
                    "display": "Thorax",
                },
            },
        ],
        **elements,
    }
