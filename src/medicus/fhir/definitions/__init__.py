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
