"""The compiled accessors select exactly what fhirpathpy selects, for every search parameter
(and composite component) of the resource types in generated and hand-written data."""

from __future__ import annotations

from typing import Any

import carebundle
import orjson
import pytest
from benchmarks import clinical_data

from medicus.fhir.search.parameters import compiled, parameters_of
from medicus.fhir.search.paths import compile_path


def _corpus() -> list[dict[str, Any]]:
    bundles = [
        orjson.loads(carebundle.to_json(b)) for b in carebundle.generate_cohort(count=3, seed=5)
    ]
    bundles.append(clinical_data.patient_bundle(7, labs_per_stay=3))
    resources = [entry["resource"] for bundle in bundles for entry in bundle["entry"]]
    resources.append(
        {
            "resourceType": "Patient",
            "identifier": [{"system": clinical_data.KVNR, "value": "A123456780"}],
            "telecom": [
                {"system": "phone", "value": "+49 3834 86-0"},
                {"system": "email", "value": "a@b.de"},
            ],
            "deceasedDateTime": "2026-01-01",
            "extension": [{"url": "http://example.org/x", "valueString": "y"}],
            "contained": [{"resourceType": "Organization", "id": "o", "name": "Klinikum"}],
        }
    )
    resources.append(
        {
            "resourceType": "Encounter",
            "status": "finished",
            "class": {"code": "IMP"},
            "classHistory": [{"class": {"code": "AMB"}, "period": {"start": "2026"}}],
        }
    )
    resources.append(
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "SARS-CoV-2 PCR"},
            "valueCodeableConcept": {"text": "positiv", "coding": [{"code": "10828004"}]},
        }
    )
    resources.append(
        {"resourceType": "Observation", "status": "final", "code": {}, "valueString": "klar"}
    )
    return resources


CORPUS = _corpus()


def _canonical(values: list[Any]) -> list[bytes]:
    return sorted(
        orjson.dumps(value, option=orjson.OPT_SORT_KEYS, default=float) for value in values
    )


@pytest.mark.parametrize("resource", CORPUS, ids=lambda r: r["resourceType"])
def test_compiled_paths_agree_with_fhirpathpy(resource: dict[str, Any]) -> None:
    checked = 0
    for parameter in parameters_of(resource["resourceType"]).values():
        if not parameter.expression:
            continue
        accessor = compile_path(parameter.expression, parameter.resource_type)
        if accessor is None:
            continue
        expected = compiled(parameter.expression)(resource)
        assert _canonical(accessor(resource)) == _canonical(list(expected)), parameter.code
        checked += 1
    assert checked > 5


def test_almost_all_official_expressions_compile() -> None:
    from medicus.fhir.search.parameters import _all

    expressions = [
        (p.expression, p.resource_type) for t in _all().values() for p in t.values() if p.expression
    ]
    simple = [e for e, t in expressions if compile_path(e, t) is not None]
    assert len(simple) / len(expressions) > 0.95
    assert (
        compile_path("Patient.deceased.exists() and Patient.deceased != false", "Patient") is None
    )


def test_a_bracketed_first_step_followed_by_more_steps_compiles() -> None:
    """Observation's value-string, on every Observation, fell back to fhirpathpy (~7 % of
    ingest) because of the brackets around its second alternative's first part."""
    expression = parameters_of("Observation")["value-string"].expression
    assert expression is not None
    accessor = compile_path(expression, "Observation")
    assert accessor is not None
    assert accessor({"resourceType": "Observation", "valueCodeableConcept": {"text": "neg"}}) == [
        "neg"
    ]


def test_relative_component_paths_resolve_choices_by_their_type() -> None:
    """Composite components are evaluated on elements (Observation.component); fhirpathpy
    finds nothing in `value.ofType(Quantity)` there, the compiled accessor finds the value."""
    component = {"code": {"text": "systolic"}, "valueQuantity": {"value": 128, "unit": "mmHg"}}
    accessor = compile_path("value.ofType(Quantity)", None)
    assert accessor is not None
    assert accessor(component) == [{"value": 128, "unit": "mmHg"}]
    assert list(compiled("value.ofType(Quantity)")(component)) == []
