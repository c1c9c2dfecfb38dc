"""An ImagingStudy as the portal's study page shows it: when, which modalities, what, its
series, who referred, its DICOM Study Instance UID and where its images are. Pure functions
of the JSON (no database, no HTTP), as `chart` is, so that the rules are tested alone.

The images themselves come with `imaging` (DICOMweb); until then the page shows what the
FHIR hub holds about a study."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from medicus.web.chart import concept_text, fhir_moment

DICOM_UID = "urn:dicom:uid"
"""The identifier system of DICOM UIDs (a Study Instance UID as `urn:oid:1.2.…`)."""
MAX_SERIES = 500
"""Series a page lists (a CT may have a few dozen; more are counted, not listed)."""


@dataclass(frozen=True)
class Series:
    number: int | None
    modality: str
    body_site: str
    description: str
    instances: int


@dataclass(frozen=True)
class Study:
    """What the study page says of one ImagingStudy."""

    id: str
    patient_id: str | None
    """The Patient record it is about (its `subject`), None for a study of something else."""
    started: dt.datetime | None
    modalities: list[str]
    description: str
    status: str
    number_of_series: int
    number_of_instances: int
    referrer: str
    uid: str
    endpoints: list[str]
    series: list[Series] = field(default_factory=list)


def _coding(value: Any) -> str:
    """A Coding as a person reads it: its code (DICOM modalities are known by it: `CT`), with
    its display where that says more."""
    if not isinstance(value, dict):
        return ""
    code, display = value.get("code"), value.get("display")
    code = code if isinstance(code, str) else ""
    display = display if isinstance(display, str) else ""
    if code and display and display != code:
        return f"{code} ({display})"
    return code or display


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _reference(value: Any) -> str:
    """A Reference as a person reads it: its display, else what it points at."""
    if not isinstance(value, dict):
        return ""
    for key in ("display", "reference"):
        if isinstance(value.get(key), str):
            return str(value[key])
    return str((value.get("identifier") or {}).get("value", ""))


def _uid(resource: dict[str, Any]) -> str:
    """The Study Instance UID: the identifier of system `urn:dicom:uid`, without `urn:oid:`."""
    for identifier in resource.get("identifier", []):
        if isinstance(identifier, dict) and identifier.get("system") == DICOM_UID:
            value = identifier.get("value")
            return str(value).removeprefix("urn:oid:") if isinstance(value, str) else ""
    return ""


def _series(element: dict[str, Any]) -> Series:
    instances = _count(element.get("numberOfInstances"))
    if instances is None:
        instances = len([i for i in element.get("instance", []) if isinstance(i, dict)])
    return Series(
        number=_count(element.get("number")),
        modality=_coding(element.get("modality"))[:100],
        body_site=_coding(element.get("bodySite"))[:200],
        description=str(element.get("description", ""))[:300],
        instances=instances,
    )


def _patient_of(resource: dict[str, Any]) -> str | None:
    reference = (resource.get("subject") or {}).get("reference")
    if not isinstance(reference, str) or not reference.startswith("Patient/"):
        return None
    return reference.removeprefix("Patient/") or None


def study(resource: dict[str, Any]) -> Study:
    """One ImagingStudy's JSON as the study page shows it. Counts the resource does not state
    are counted from its series; the modalities are the study's, else its series'."""
    series_elements = [s for s in resource.get("series", []) if isinstance(s, dict)]
    series = [_series(element) for element in series_elements]
    modalities = [_coding(m) for m in resource.get("modality", []) if _coding(m)]
    if not modalities:
        modalities = list(dict.fromkeys(s.modality for s in series if s.modality))
    description = resource.get("description")
    if not isinstance(description, str):
        codes = resource.get("procedureCode") or [{}]
        description = concept_text(codes[0])
    number_of_series = _count(resource.get("numberOfSeries"))
    number_of_instances = _count(resource.get("numberOfInstances"))
    endpoints = [_reference(e) for e in resource.get("endpoint", []) if _reference(e)]
    return Study(
        id=str(resource.get("id", "")),
        patient_id=_patient_of(resource),
        started=fhir_moment(resource.get("started")),
        modalities=modalities[:20],
        description=description[:300],
        status=str(resource.get("status", ""))[:60],
        number_of_series=len(series) if number_of_series is None else number_of_series,
        number_of_instances=(
            sum(s.instances for s in series) if number_of_instances is None else number_of_instances
        ),
        referrer=_reference(resource.get("referrer"))[:200],
        uid=_uid(resource)[:128],
        endpoints=[e[:500] for e in endpoints[:10]],
        series=series[:MAX_SERIES],
    )
