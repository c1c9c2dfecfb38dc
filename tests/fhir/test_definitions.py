"""The generated FHIR R4 tables (scripts/generate_fhir_definitions.py) say what the official
definitions say."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import medicus

DEFINITIONS = Path(medicus.__file__).parent / "fhir" / "definitions"


def _load(name: str) -> list[dict[str, object]]:
    loaded: list[dict[str, object]] = json.loads((DEFINITIONS / f"{name}.json").read_text())
    return loaded


def test_every_concrete_resource_type_is_listed() -> None:
    types = {entry["type"] for entry in _load("resource_types")}
    assert len(types) == 146
    assert {"Patient", "Observation", "Encounter", "Consent", "ImagingStudy"} <= types
    assert "DomainResource" not in types


def test_search_parameters_are_per_type_with_their_own_expression() -> None:
    parameters = {(p["resource_type"], p["code"]): p for p in _load("search_parameters")}
    assert parameters[("Observation", "code")]["expression"] == "Observation.code"
    assert parameters[("Condition", "code")]["expression"] == "Condition.code"
    assert parameters[("Patient", "identifier")]["type"] == "token"
    assert parameters[("Observation", "_id")]["expression"] == "Resource.id"
    assert parameters[("Observation", "code-value-quantity")]["type"] == "composite"
    assert parameters[("Encounter", "date")]["type"] == "date"


def test_no_parameter_is_listed_twice() -> None:
    counts = Counter((p["resource_type"], p["code"]) for p in _load("search_parameters"))
    assert max(counts.values()) == 1


def test_patient_compartment_memberships() -> None:
    compartment = {e["type"]: e["patient_compartment"] for e in _load("resource_types")}
    assert compartment["Observation"] == ["subject", "performer"]
    assert compartment["Patient"] == ["link"]
    assert compartment["Organization"] == []
