"""The search parameters of each resource type, from the generated definitions, with their
FHIRPath expressions compiled once (fhirpathpy, R4 model).

Three forms fhirpathpy cannot evaluate are rewritten: `Resource.x`/`DomainResource.x` start at
the concrete type; `.where(resolve() is Type)` (no resolver here) becomes a filter on the
reference's type, applied by the extractor; and `x as T`/`x.as(T)`, which strict FHIRPath
refuses on more than one value (two components of an Observation), become `x.ofType(T)`.

Composite parameters keep their components (the component parameter's type and its
expression, relative to each element the composite's expression selects).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from fhirpathpy import compile as compile_fhirpath
from fhirpathpy.models import models

from medicus.fhir.search.paths import alternatives, compile_path

_DEFINITIONS = Path(__file__).parent.parent / "definitions" / "search_parameters.json"
_RESOLVE_IS = re.compile(r"\.where\(resolve\(\) is (\w+)\)")
_AS = re.compile(r"(?:\s+as\s+(\w+)|\.as\((\w+)\))")
INDEXED_TYPES = frozenset(
    {"token", "string", "reference", "date", "number", "quantity", "uri", "composite"}
)
INDEXED_SPECIAL = frozenset({"near"})
"""The special parameters medicus indexes: Location's `near`, its position (search/geo.py)."""
SOUNDING = frozenset({("Patient", "phonetic")})
"""The parameters that compare names by how they sound (search/phonetics.py), with rows of
their own: the other types' `phonetic` are answered from `name`'s rows (`_aliases`)."""


@dataclass(frozen=True)
class Component:
    """One part of a composite parameter: its type, and its expression relative to an element
    the composite's expression selects."""

    type: str
    expression: str


@dataclass(frozen=True)
class SearchParameter:
    resource_type: str
    code: str
    type: str
    expression: str | None
    target_types: tuple[str, ...] = ()
    components: tuple[Component, ...] = ()
    targets: tuple[str, ...] = ()
    members: tuple[str, ...] = ()
    """Parameters whose index rows together are this one's (see `_unions`); empty: it has
    rows of its own."""
    shared: tuple[str, ...] = ()
    """A composite of the resource itself: the parameters whose rows are its components'
    rows (see `_shared`); empty: its components have rows of their own (`code$k`)."""
    sounds: bool = False
    """Its rows are the Kölner Phonetik codes of the names' words, and a search compares
    codes (search/phonetics.py): Patient `phonetic`."""
    _compiled: list[Callable[..., list[Any]]] = field(
        default_factory=list, compare=False, repr=False
    )

    def index_names(self, name: str) -> list[str]:
        """The `param` values of the index rows that hold `name` (this parameter's code, or
        one derived from it: `code:text`, `code$0`)."""
        suffix = name.removeprefix(self.code)
        return [member + suffix for member in self.members] or [name]

    def values(self, resource: dict[str, Any]) -> list[Any]:
        """What the expression selects in `resource` (empty if the parameter has none)."""
        if self.expression is None:
            return []
        if not self._compiled:
            accessor = compile_path(self.expression, self.resource_type)
            self._compiled.append(accessor or compiled(self.expression))
        return list(self._compiled[0](resource))

    @property
    def searchable(self) -> bool:
        """Whether medicus can search on this parameter (not `_text`, `_content`, `_filter`...)."""
        indexed = self.type in INDEXED_TYPES or (
            self.type == "special" and self.code in INDEXED_SPECIAL
        )
        return indexed and (self.expression is not None or self.code == "_id")


@functools.cache
def compiled(expression: str) -> Callable[..., list[Any]]:
    """A FHIRPath expression compiled once by fhirpathpy."""
    return compile_fhirpath(expression, models["r4"])


@functools.cache
def component_accessor(expression: str, root_type: str | None) -> Callable[..., list[Any]]:
    """A composite component's expression, evaluated on the element the composite selects
    (`root_type` None) or on the resource. fhirpathpy, the fallback, loses the type of a
    bare element, so its choice elements (`value.ofType(Quantity)`) find nothing there."""
    return compile_path(expression, root_type) or compiled(expression)


def _of_type(expression: str) -> str:
    def replace(found: re.Match[str]) -> str:
        kind = found[1] or found[2]
        return f".ofType({'dateTime' if kind == 'DateTime' else kind})"

    return _AS.sub(replace, expression)


def _rewrite(expression: str | None, resource_type: str) -> tuple[str | None, tuple[str, ...]]:
    if expression is None:
        return None, ()
    targets = tuple(_RESOLVE_IS.findall(expression))
    expression = _of_type(_RESOLVE_IS.sub("", expression))
    expression = re.sub(r"\b(Domain)?Resource\.", f"{resource_type}.", expression)
    return expression, targets


@functools.cache
def parameters_of(resource_type: str) -> dict[str, SearchParameter]:
    """The search parameters of `resource_type`, by code."""
    return _all().get(resource_type, {})


@functools.cache
def _all() -> dict[str, dict[str, SearchParameter]]:
    table: dict[str, dict[str, SearchParameter]] = {}
    entries = json.loads(_DEFINITIONS.read_text(encoding="utf-8"))
    types_by_url = {entry["url"]: entry["type"] for entry in entries}
    for entry in entries:
        expression, targets = _rewrite(entry["expression"], entry["resource_type"])
        components = tuple(
            Component(
                types_by_url[part["definition"]],
                _of_type(part["expression"].replace("%resource", entry["resource_type"])),
            )
            for part in entry["component"]
        )
        parameter = SearchParameter(
            entry["resource_type"],
            entry["code"],
            entry["type"],
            expression,
            targets,
            components,
            tuple(entry["target"]),
            sounds=(entry["resource_type"], entry["code"]) in SOUNDING,
        )
        table.setdefault(entry["resource_type"], {})[entry["code"]] = parameter
    return {resource_type: _unions(parameters) for resource_type, parameters in table.items()}


_UNION_TYPES = frozenset({"token", "string", "date", "number", "quantity", "uri", "composite"})


def _unions(parameters: dict[str, SearchParameter]) -> dict[str, SearchParameter]:
    """Parameters that select exactly what others of their type select together are answered
    from those others' index rows instead of rows of their own: R4's Observation `combo-code`
    is `code` | `component-code`, and its six `combo-*` parameters were a third of a lab
    value's index rows. Members are parameters of the same type (and components) whose
    expressions' alternatives are a proper part of the union's and which are no union
    themselves; they must cover it exactly. References are left alone: theirs differ by
    target type, which the expressions do not show."""
    paths: dict[str, frozenset[str]] = {}
    for code, parameter in parameters.items():
        texts = alternatives(parameter.expression) if parameter.expression else None
        if texts and parameter.type in _UNION_TYPES and not parameter.sounds:
            paths[code] = frozenset(texts)

    def parts(code: str) -> list[str]:
        whole, parameter = paths[code], parameters[code]
        return [
            other
            for other, part in paths.items()
            if part < whole
            and parameters[other].type == parameter.type
            and parameters[other].components == parameter.components
        ]

    composed = {code for code in paths if parts(code)}
    result = dict(parameters)
    for code in composed:
        members = sorted(other for other in parts(code) if other not in composed)
        if members and frozenset().union(*(paths[m] for m in members)) == paths[code]:
            result[code] = replace(parameters[code], members=tuple(members))
    return _aliases(result, paths)


def _aliases(
    parameters: dict[str, SearchParameter], paths: dict[str, frozenset[str]]
) -> dict[str, SearchParameter]:
    """A parameter that selects exactly what another of its type selects (Practitioner
    `phonetic` and `name`, both `Practitioner.name`) is answered from the first one's rows (by
    code), which it would only repeat: Patient's `phonetic` rows were a third of its string
    rows, before they became the names' sounds (`SOUNDING`, which `_unions` leaves out)."""
    first: dict[tuple[str, tuple[Component, ...], frozenset[str]], SearchParameter] = {}
    result = dict(parameters)
    for code in sorted(paths):
        parameter = parameters[code]
        key = (parameter.type, parameter.components, paths[code])
        if key not in first:
            first[key] = parameter
        elif not parameter.members:
            same = first[key]
            result[code] = replace(parameter, members=same.members or (same.code,))
    return _shared(result, paths)


_ROWLESS_CHOICES = (".ofType(SampledData)",)
"""Choices of an element that never give index rows: a SampledData has no value, unit or
range, so `value-quantity` (`value` as Quantity or SampledData) has the rows of its
Quantity alone."""


def _shared(
    parameters: dict[str, SearchParameter], paths: dict[str, frozenset[str]]
) -> dict[str, SearchParameter]:
    """A composite whose element is the resource itself (R4's Observation `code-value-*`:
    one element, the Observation) has component rows equal to other parameters' rows
    (`code`, `value-quantity`): it is answered from those (`shared`) instead of writing them
    again under `code$k`, which were a third of an Observation's token and quantity rows.
    Only if every component has such a parameter."""
    result = dict(parameters)
    for code, parameter in parameters.items():
        if parameter.type != "composite" or parameter.expression != parameter.resource_type:
            continue
        shared = [_same_rows(parameters, paths, component) for component in parameter.components]
        if all(shared):
            result[code] = replace(parameter, shared=tuple(str(name) for name in shared))
    return result


def _same_rows(
    parameters: dict[str, SearchParameter], paths: dict[str, frozenset[str]], component: Component
) -> str | None:
    """The parameter of the resource whose rows are exactly a component's, if one is."""
    texts = alternatives(component.expression)
    if texts is None:
        return None
    root = f"{_root(parameters)}."
    wanted = frozenset(text if text.startswith(root) else root + text for text in texts)
    for other in sorted(paths):
        candidate, path = parameters[other], paths[other]
        if candidate.type != component.type or candidate.members or candidate.components:
            continue
        rows = {text for text in path if not text.endswith(_ROWLESS_CHOICES)}
        if wanted <= path and rows <= wanted:
            return other
    return None


def _root(parameters: dict[str, SearchParameter]) -> str:
    return next(iter(parameters.values())).resource_type
