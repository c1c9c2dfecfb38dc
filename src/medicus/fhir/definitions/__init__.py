"""FHIR R4 tables generated from the official package by scripts/generate_fhir_definitions.py."""

from __future__ import annotations

import functools
import json
from pathlib import Path

_HERE = Path(__file__).parent


@functools.cache
def resource_types() -> frozenset[str]:
    """Every concrete FHIR R4 resource type."""
    entries = json.loads((_HERE / "resource_types.json").read_text(encoding="utf-8"))
    return frozenset(entry["type"] for entry in entries)


@functools.cache
def patient_compartment() -> dict[str, tuple[str, ...]]:
    """The resource types in the patient compartment and the parameters that put them there."""
    entries = json.loads((_HERE / "resource_types.json").read_text(encoding="utf-8"))
    return {
        entry["type"]: tuple(entry["patient_compartment"])
        for entry in entries
        if entry["patient_compartment"]
    }


@functools.cache
def top_level_elements(resource_type: str) -> tuple[frozenset[str], frozenset[str]]:
    """The resource type's summary elements and its mandatory elements (choice elements as
    `value[x]`)."""
    for entry in json.loads((_HERE / "resource_types.json").read_text(encoding="utf-8")):
        if entry["type"] == resource_type:
            return frozenset(entry["summary"]), frozenset(entry["mandatory"])
    return frozenset(), frozenset()
