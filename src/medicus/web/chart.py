"""A patient's chart as the portal shows it, from the FHIR resources `access` let the caller
read: what each resource says in one line (its date, what, detail, status), and laboratory
values per code as a series for a table and a trend plot. Pure functions of the JSON: no
database, no HTTP, so that the rules are tested alone."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

LOINC = "http://loinc.org"
_BINARY_URL = re.compile(r"(?:^|/)Binary/([A-Za-z0-9\-.]{1,64})$")

SECTIONS = (
    "Encounter",
    "Condition",
    "AllergyIntolerance",
    "MedicationRequest",
    "MedicationStatement",
    "Procedure",
    "DocumentReference",
    "ImagingStudy",
)
"""The resource types of the chart's sections besides laboratory values, in page order."""


@dataclass(frozen=True)
class Holder:
    """The organisation that holds a record, and whether it is the caller's own."""

    organisation_id: str
    name: str
    own: bool


@dataclass(frozen=True)
class Line:
    """One resource in a section: when, what, a detail, its status, who holds it."""

    resource_id: str
    when: dt.date | None
    what: str
    detail: str
    status: str
    holder: Holder
    binary_id: str | None = None
    """A document's bytes as a Binary of the hub (its first attachment's url), if so."""


@dataclass(frozen=True)
class Point:
    when: dt.datetime
    value: float
    holder: Holder


@dataclass
class LabSeries:
    """The values of one laboratory code, oldest first, with the latest reference range."""

    system: str
    code: str
    name: str
    unit: str
    points: list[Point] = field(default_factory=list)
    low: float | None = None
    high: float | None = None

    @property
    def latest(self) -> Point:
        return self.points[-1]

    @property
    def out_of_range(self) -> bool:
        value = self.latest.value
        return (self.low is not None and value < self.low) or (
            self.high is not None and value > self.high
        )


def concept_text(concept: Any) -> str:
    """What a CodeableConcept says to a person: its text, a coding's display, or a code."""
    if not isinstance(concept, dict):
        return ""
    if isinstance(concept.get("text"), str):
        return str(concept["text"])
    codings = [c for c in concept.get("coding", []) if isinstance(c, dict)]
    for coding in codings:
        if isinstance(coding.get("display"), str):
            return str(coding["display"])
    return next((str(c["code"]) for c in codings if isinstance(c.get("code"), str)), "")


def fhir_moment(value: Any) -> dt.datetime | None:
    """A FHIR date or dateTime as a moment (a date alone: its start, in UTC)."""
    if not isinstance(value, str) or len(value) < 4:
        return None
    text = value.replace("Z", "+00:00")
    try:
        if len(text) <= 10:
            parts = [int(p) for p in text.split("-")] + [1, 1]
            return dt.datetime(parts[0], parts[1], parts[2], tzinfo=dt.UTC)
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _first_moment(resource: dict[str, Any], *paths: str) -> dt.datetime | None:
    for path in paths:
        value: Any = resource
        for step in path.split("."):
            value = value.get(step) if isinstance(value, dict) else None
        found = fhir_moment(value)
        if found is not None:
            return found
    return None


_WHEN = {
    "Encounter": ("period.start",),
    "Condition": ("onsetDateTime", "onsetPeriod.start", "recordedDate"),
    "AllergyIntolerance": ("onsetDateTime", "recordedDate"),
    "MedicationRequest": ("authoredOn",),
    "MedicationStatement": ("effectiveDateTime", "effectivePeriod.start", "dateAsserted"),
    "Procedure": ("performedDateTime", "performedPeriod.start"),
    "DocumentReference": ("date", "context.period.start"),
    "ImagingStudy": ("started",),
    "Observation": ("effectiveDateTime", "effectivePeriod.start", "effectiveInstant", "issued"),
}


def _what(resource: dict[str, Any]) -> str:
    kind = resource.get("resourceType")
    if kind == "Encounter":
        types = resource.get("type") or [{}]
        return concept_text(types[0]) or str((resource.get("class") or {}).get("display", ""))
    if kind in ("MedicationRequest", "MedicationStatement"):
        return concept_text(resource.get("medicationCodeableConcept")) or str(
            (resource.get("medicationReference") or {}).get("display", "")
        )
    if kind == "DocumentReference":
        return concept_text(resource.get("type")) or str(resource.get("description", ""))
    if kind == "ImagingStudy":
        codes = resource.get("procedureCode") or [{}]
        return str(resource.get("description", "")) or concept_text(codes[0])
    return concept_text(resource.get("code"))


def _detail(resource: dict[str, Any]) -> str:
    kind = resource.get("resourceType")
    if kind == "Encounter":
        return str((resource.get("class") or {}).get("code", ""))
    if kind in ("MedicationRequest", "MedicationStatement"):
        dosage = resource.get("dosageInstruction") or resource.get("dosage") or [{}]
        return str(dosage[0].get("text", "")) if isinstance(dosage[0], dict) else ""
    if kind == "DocumentReference":
        content = resource.get("content") or [{}]
        attachment = content[0].get("attachment", {}) if isinstance(content[0], dict) else {}
        return str(attachment.get("title", resource.get("description", "")))
    if kind == "AllergyIntolerance":
        return str(resource.get("criticality", ""))
    if kind == "ImagingStudy":
        modalities = [m for m in resource.get("modality", []) if isinstance(m, dict)]
        return ", ".join(str(m["code"]) for m in modalities if isinstance(m.get("code"), str))
    return concept_text(resource.get("bodySite", [{}])[0]) if resource.get("bodySite") else ""


def _status(resource: dict[str, Any]) -> str:
    for name in ("clinicalStatus", "verificationStatus"):
        if isinstance(resource.get(name), dict):
            return concept_text(resource[name])
    return str(resource.get("status", ""))


def line(resource: dict[str, Any], holder: Holder) -> Line:
    """One resource of a section as a line of the chart."""
    when = _first_moment(resource, *_WHEN.get(str(resource.get("resourceType")), ()))
    return Line(
        resource_id=str(resource.get("id", "")),
        when=when.date() if when else None,
        what=_what(resource)[:300],
        detail=_detail(resource)[:300],
        status=_status(resource)[:60],
        holder=holder,
        binary_id=_binary_of(resource),
    )


def _binary_of(resource: dict[str, Any]) -> str | None:
    """The Binary of this hub holding a document's bytes (`Binary/{id}`, or an absolute
    url ending so), None for other resources and attachments."""
    if resource.get("resourceType") != "DocumentReference":
        return None
    content = resource.get("content") or [{}]
    attachment = content[0].get("attachment", {}) if isinstance(content[0], dict) else {}
    url = attachment.get("url") if isinstance(attachment, dict) else None
    found = _BINARY_URL.search(url) if isinstance(url, str) else None
    return found.group(1) if found else None


def newest_first(lines: Iterable[Line]) -> list[Line]:
    """Lines by date, newest first; undated last."""
    return sorted(lines, key=lambda item: (item.when is not None, item.when), reverse=True)


def _lab_code(resource: dict[str, Any]) -> tuple[str, str, str]:
    """The code a value is plotted by (LOINC preferred), and its name."""
    concept = resource.get("code") or {}
    codings = [c for c in concept.get("coding", []) if isinstance(c, dict) and c.get("code")]
    chosen = next((c for c in codings if c.get("system") == LOINC), codings[0] if codings else {})
    return str(chosen.get("system", "")), str(chosen.get("code", "")), concept_text(concept)


def _bound(range_: dict[str, Any], end: str) -> float | None:
    value = (range_.get(end) or {}).get("value")
    return float(value) if isinstance(value, int | float) else None


def lab_series(observations: Iterable[tuple[dict[str, Any], Holder]]) -> list[LabSeries]:
    """Laboratory values with a number (`valueQuantity`), by code, each oldest first, the
    codes by name."""
    series: dict[tuple[str, str], LabSeries] = {}
    for resource, holder in observations:
        quantity = resource.get("valueQuantity") or {}
        value, when = quantity.get("value"), _first_moment(resource, *_WHEN["Observation"])
        if not isinstance(value, int | float) or isinstance(value, bool) or when is None:
            continue
        system, code, name = _lab_code(resource)
        found = series.setdefault(
            (system, code),
            LabSeries(system, code, name[:200] or code, str(quantity.get("unit", ""))[:40]),
        )
        found.points.append(Point(when, float(value), holder))
        ranges = [r for r in resource.get("referenceRange", []) if isinstance(r, dict)]
        if ranges and (found.low is None or when >= found.points[-1].when):
            found.low, found.high = _bound(ranges[0], "low"), _bound(ranges[0], "high")
    for each in series.values():
        each.points.sort(key=lambda point: point.when)
    return sorted(series.values(), key=lambda each: each.name.casefold())


@dataclass(frozen=True)
class Plot:
    """A trend plot's geometry in SVG user units: the values as a polyline, the reference
    range as a band, and where the axis labels go (the highest and lowest value drawn at the
    left, the first and last time below)."""

    width: int
    height: int
    points: str
    dots: list[tuple[float, float, Point]]
    band: tuple[float, float] | None
    top: float
    bottom: float
    first: dt.datetime
    last: dt.datetime

    @property
    def plot_left(self) -> int:
        return _LEFT

    @property
    def top_y(self) -> int:
        return _TOP

    @property
    def bottom_y(self) -> int:
        return self.height - _BOTTOM


PLOT_WIDTH, PLOT_HEIGHT = 640, 170
_LEFT, _RIGHT, _TOP, _BOTTOM = 52, 12, 12, 24


def plot(series: LabSeries) -> Plot:
    """The trend plot of one code: time across, value up; the reference range drawn as a
    band when the latest value has one."""
    values = [point.value for point in series.points]
    bounds = [b for b in (series.low, series.high) if b is not None]
    bottom, top = min(values + bounds), max(values + bounds)
    if top == bottom:
        top, bottom = top + 1, bottom - 1
    first, last = series.points[0].when, series.points[-1].when
    span = (last - first).total_seconds() or 1.0
    inner_w, inner_h = PLOT_WIDTH - _LEFT - _RIGHT, PLOT_HEIGHT - _TOP - _BOTTOM

    def x(when: dt.datetime) -> float:
        share = (when - first).total_seconds() / span if len(series.points) > 1 else 0.5
        return round(_LEFT + share * inner_w, 1)

    def y(value: float) -> float:
        return round(_TOP + (top - value) / (top - bottom) * inner_h, 1)

    dots = [(x(point.when), y(point.value), point) for point in series.points]
    band = None
    if series.low is not None or series.high is not None:
        upper = y(series.high if series.high is not None else top)
        lower = y(series.low if series.low is not None else bottom)
        band = (upper, round(lower - upper, 1))
    polyline = " ".join(f"{px},{py}" for px, py, _ in dots)
    return Plot(PLOT_WIDTH, PLOT_HEIGHT, polyline, dots, band, top, bottom, first, last)
