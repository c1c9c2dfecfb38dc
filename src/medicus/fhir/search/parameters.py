"""The search parameters of each resource type, from the generated definitions, with their
FHIRPath expressions compiled once (fhirpathpy, R4 model).

Two forms fhirpathpy cannot evaluate are rewritten: `Resource.x`/`DomainResource.x` start at
the concrete type, and `.where(resolve() is Type)` (no resolver here) becomes a filter on the
reference's type, applied by the extractor.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fhirpathpy import compile as compile_fhirpath
from fhirpathpy.models import models

_DEFINITIONS = Path(__file__).parent.parent / "definitions" / "search_parameters.json"
_RESOLVE_IS = re.compile(r"\.where\(resolve\(\) is (\w+)\)")
INDEXED_TYPES = frozenset({"token", "string", "reference", "date"})


@dataclass(frozen=True)
class SearchParameter:
    resource_type: str
    code: str
    type: str
    expression: str | None
    target_types: tuple[str, ...] = ()
    _compiled: list[Callable[..., list[Any]]] = field(
        default_factory=list, compare=False, repr=False
    )

    def values(self, resource: dict[str, Any]) -> list[Any]:
        """What the expression selects in `resource` (empty if the parameter has none)."""
        if self.expression is None:
            return []
        if not self._compiled:
            self._compiled.append(compile_fhirpath(self.expression, models["r4"]))
        return list(self._compiled[0](resource))


def _rewrite(expression: str | None, resource_type: str) -> tuple[str | None, tuple[str, ...]]:
    if expression is None:
        return None, ()
    targets = tuple(_RESOLVE_IS.findall(expression))
    expression = _RESOLVE_IS.sub("", expression)
    expression = re.sub(r"\b(Domain)?Resource\.", f"{resource_type}.", expression)
    return expression, targets


@functools.cache
def parameters_of(resource_type: str) -> dict[str, SearchParameter]:
    """The search parameters of `resource_type`, by code."""
    return _all().get(resource_type, {})


@functools.cache
def _all() -> dict[str, dict[str, SearchParameter]]:
    table: dict[str, dict[str, SearchParameter]] = {}
    for entry in json.loads(_DEFINITIONS.read_text(encoding="utf-8")):
        expression, targets = _rewrite(entry["expression"], entry["resource_type"])
        parameter = SearchParameter(
            entry["resource_type"], entry["code"], entry["type"], expression, targets
        )
        table.setdefault(entry["resource_type"], {})[entry["code"]] = parameter
    return table
