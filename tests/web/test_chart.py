"""The chart's rules alone: what a resource says in one line, laboratory values by code with
their reference range, and the geometry of a trend plot."""

from __future__ import annotations

import datetime as dt

from medicus.web.chart import Holder, lab_series, line, newest_first, plot

OWN = Holder("hospital-b", "Klinikum B", True)
OTHER = Holder("hospital-a", "Klinikum A", False)
LOINC = "http://loinc.org"


def _lab(
    code: str, value: object, when: str, low: float | None = None, high: float | None = None
) -> dict:
    resource: dict = {
        "resourceType": "Observation",
        "code": {
            "coding": [
                {"system": "urn:local", "code": "HB"},
                {"system": LOINC, "code": code, "display": f"Test {code}"},
            ]
        },
        "valueQuantity": {"value": value, "unit": "g/dL"},
        "effectiveDateTime": when,
    }
    if low is not None or high is not None:
        resource["referenceRange"] = [{"low": {"value": low}, "high": {"value": high}}]
    return resource


def test_values_are_grouped_by_loinc_code_oldest_first() -> None:
    series = lab_series(
        [
            (_lab("718-7", 13.1, "2026-11-03T08:00:00Z", 12, 16), OWN),
            (_lab("718-7", 9.1, "2026-11-01T08:00:00+01:00", 12, 16), OTHER),
            (_lab("2345-7", 5.2, "2026-11-02"), OWN),
        ]
    )
    assert [(s.code, len(s.points)) for s in series] == [("2345-7", 1), ("718-7", 2)]
    haemoglobin = series[1]
    assert haemoglobin.system == LOINC
    assert [p.value for p in haemoglobin.points] == [9.1, 13.1]
    assert haemoglobin.points[0].holder is OTHER
    assert (haemoglobin.low, haemoglobin.high) == (12, 16)
    assert not haemoglobin.out_of_range


def test_values_without_a_number_or_a_time_are_left_out() -> None:
    series = lab_series(
        [
            (_lab("718-7", "13", "2026-11-03"), OWN),
            (_lab("718-7", True, "2026-11-03"), OWN),
            (_lab("718-7", 13.0, "not a date"), OWN),
            ({"resourceType": "Observation", "valueString": "positive"}, OWN),
        ]
    )
    assert series == []


def test_the_latest_value_outside_its_range_is_flagged() -> None:
    (series,) = lab_series([(_lab("718-7", 9.1, "2026-11-03", 12, 16), OWN)])
    assert series.out_of_range


def test_a_trend_plot_draws_time_across_and_value_up_with_the_range_as_a_band() -> None:
    (series,) = lab_series(
        [
            (_lab("718-7", 10.0, "2026-11-01", 12, 16), OWN),
            (_lab("718-7", 20.0, "2026-11-11", 12, 16), OWN),
        ]
    )
    drawn = plot(series)
    (x0, y0, _), (x1, y1, _) = drawn.dots
    assert x0 < x1, "later is further right"
    assert y1 < y0, "higher is further up"
    assert (drawn.bottom, drawn.top) == (10.0, 20.0)
    assert drawn.band is not None
    top_of_band, height = drawn.band
    assert y1 < top_of_band < y0
    assert height > 0
    assert drawn.points == f"{x0},{y0} {x1},{y1}"


def test_one_value_is_drawn_in_the_middle() -> None:
    (series,) = lab_series([(_lab("718-7", 13.0, "2026-11-01"), OWN)])
    drawn = plot(series)
    ((x, y, _),) = drawn.dots
    assert x == (drawn.plot_left + drawn.width - 12) / 2
    assert drawn.top_y < y < drawn.bottom_y


def test_a_line_says_when_what_and_status() -> None:
    condition = {
        "resourceType": "Condition",
        "id": "c1",
        "code": {
            "coding": [
                {
                    "system": "http://fhir.de/CodeSystem/bfarm/icd-10-gm",
                    "code": "I21.0",
                    "display": "Akuter Vorderwandinfarkt",
                }
            ]
        },
        "clinicalStatus": {"coding": [{"code": "active"}]},
        "onsetDateTime": "2026-10-30T14:00:00+01:00",
    }
    found = line(condition, OWN)
    assert (found.when, found.what, found.status) == (
        dt.date(2026, 10, 30),
        "Akuter Vorderwandinfarkt",
        "active",
    )
    medication = {
        "resourceType": "MedicationRequest",
        "medicationCodeableConcept": {"text": "ASS 100 mg"},
        "dosageInstruction": [{"text": "1-0-0"}],
        "authoredOn": "2026-10-31",
        "status": "active",
    }
    assert (line(medication, OWN).what, line(medication, OWN).detail) == ("ASS 100 mg", "1-0-0")


def test_lines_come_newest_first_and_undated_last() -> None:
    lines = [
        line({"resourceType": "Procedure", "performedDateTime": "2025-01-01"}, OWN),
        line({"resourceType": "Procedure"}, OWN),
        line({"resourceType": "Procedure", "performedDateTime": "2026-01-01"}, OWN),
    ]
    assert [item.when for item in newest_first(lines)] == [
        dt.date(2026, 1, 1),
        dt.date(2025, 1, 1),
        None,
    ]
