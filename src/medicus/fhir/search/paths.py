"""Plain-Python accessors for the simple FHIRPath expressions of search parameters.

Indexing a resource evaluates every search parameter of its type (38 for an Observation);
fhirpathpy interprets each expression anew, at about 1 ms per Observation in all, which caps
ingest at a few hundred resources per second. 97 % of the official expressions are paths
(`Observation.code`), unions (`a | b`), type filters (`value.ofType(Quantity)`), simple
`where(field='literal')` filters, `extension('url')` and indexes (`entry[0]`): those are
compiled here into functions over the JSON, with choice elements (`Observation.effective` →
`effectiveDateTime`, `effectivePeriod`…) resolved from the R4 structure definitions. Anything
else (`exists()`, `resolve()`, arithmetic…) returns None and stays with fhirpathpy. A test
checks both give the same values over generated data.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_STRUCTURES = Path(__file__).parent.parent / "definitions" / "structures.json"
_STEP = re.compile(
    r"\.?(?:"
    r"ofType\((?P<type>\w+)\)"
    r"|where\((?P<field>\w+)\s*=\s*'(?P<literal>[^']*)'\)"
    r"|extension\('(?P<url>[^']+)'\)"
    r"|\[(?P<index>\d+)\]"
    r"|(?P<name>[A-Za-z_]\w*)\b(?!\()"
    r")"
)

_GROUPED_HEAD = re.compile(r"^\((?P<head>[^()]*(?:\([^()]*\)[^()]*)*)\)(?P<rest>\..+)$")
"""A bracketed first part followed by more steps: `(Observation.value.ofType(X)).text`."""

Node = tuple[Any, str | None]
"""A value and its FHIR type name (None where it is not known)."""
Accessor = Callable[[Any], list[Any]]


@dataclass(frozen=True)
class _Elements:
    """The children of one structure: plain elements by name (→ type) and choice groups by
    name (→ the JSON keys and types of their variants)."""

    plain: dict[str, str]
    choices: dict[str, list[tuple[str, str]]]


@functools.cache
def _structures() -> dict[str, _Elements]:
    types = json.loads(_STRUCTURES.read_text(encoding="utf-8"))["types"]
    table: dict[str, _Elements] = {}
    for name, children in types.items():
        plain: dict[str, str] = {}
        choices: dict[str, list[tuple[str, str]]] = {}
        for key, entry in children.items():
            kind = entry[0].split("(")[0]
            if len(entry) > 3:
                choices.setdefault(entry[3], []).append((key, kind))
            else:
                plain[key] = kind
        table[name] = _Elements(plain, choices)
    return table


def _flatten(value: Any, kind: str | None, into: list[Node]) -> None:
    if isinstance(value, list):
        for item in value:
            _flatten(item, kind, into)
    elif value is not None:
        if kind in ("Resource", "DomainResource") and isinstance(value, dict):
            kind = value.get("resourceType")
        into.append((value, kind))


def _json_key(name: str, of_type: str | None) -> str:
    """The JSON key of element `name` of type `of_type` where the structure is not known
    (`value` of Quantity: `valueQuantity`)."""
    return name + of_type[0].upper() + of_type[1:] if of_type else name


def _child(nodes: list[Node], name: str, of_type: str | None) -> list[Node]:
    found: list[Node] = []
    structures = _structures()
    for value, kind in nodes:
        if not isinstance(value, dict):
            continue
        elements = structures.get(kind) if kind else None
        if elements is None:
            _flatten(value.get(_json_key(name, of_type)), of_type, found)
        elif name in elements.choices:
            for key, variant in elements.choices[name]:
                if of_type is None or variant == of_type:
                    _flatten(value.get(key), variant, found)
        elif name in elements.plain and (of_type is None or elements.plain[name] == of_type):
            _flatten(value.get(name), elements.plain[name], found)
    return found


def _step(found: re.Match[str], then_type: str | None) -> Callable[[list[Node]], list[Node]]:
    if found["name"]:
        name = found["name"]
        return lambda nodes: _child(nodes, name, then_type)
    if found["field"]:
        field, literal = found["field"], found["literal"]
        return lambda nodes: [
            (v, k) for v, k in nodes if isinstance(v, dict) and v.get(field) == literal
        ]
    if found["url"]:
        url = found["url"]
        return lambda nodes: [
            (v, "Extension")
            for v, _ in _child(nodes, "extension", None)
            if isinstance(v, dict) and v.get("url") == url
        ]
    position = int(found["index"])
    return lambda nodes: nodes[position : position + 1]


def _matches(text: str, root_type: str | None) -> list[re.Match[str]] | None:
    """The steps of one path as matches (None: not simple); a leading type name
    (`Observation.`) is the root itself and no step."""
    matches = []
    position = 0
    while position < len(text):
        found = _STEP.match(text, position)
        if found is None or found.end() == position:
            return None
        matches.append(found)
        position = found.end()
    if root_type and matches and matches[0]["name"] == root_type:
        matches = matches[1:]
    return matches


def _path(text: str, root_type: str | None) -> Callable[[list[Node]], list[Node]] | None:
    """The steps of one path as one function over nodes."""
    matches = _matches(text, root_type)
    if matches is None:
        return None
    steps: list[Callable[[list[Node]], list[Node]]] = []
    for number, found in enumerate(matches):
        if found["type"]:
            if number == 0 or not matches[number - 1]["name"]:
                return None
            continue
        following = matches[number + 1] if number + 1 < len(matches) else None
        steps.append(_step(found, following["type"] if following else None))

    def run(nodes: list[Node]) -> list[Node]:
        for step in steps:
            nodes = step(nodes)
        return nodes

    return run


def alternatives(expression: str) -> list[str] | None:
    """The top-level `|` alternatives, each without enclosing brackets (None: not simple)."""
    parts, depth, current = [], 0, ""
    for character in expression:
        depth += (character == "(") - (character == ")")
        if character == "|" and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += character
    parts.append(current)
    cleaned = []
    for part in parts:
        part = part.strip()
        while part.startswith("(") and part.endswith(")"):
            part = part[1:-1].strip()
        if grouped := _GROUPED_HEAD.match(part):
            part = grouped["head"] + grouped["rest"]
        if "|" in part:
            return None
        cleaned.append(part)
    return cleaned


def _first_keys(text: str, root_type: str | None) -> frozenset[str] | None:
    """The JSON keys of the root that a path's first step reads (`Observation.effective` →
    `effectiveDateTime`, `effectivePeriod`…); None where its first step is not a child."""
    matches = _matches(text, root_type)
    if not matches or not (matches[0]["name"] or matches[0]["url"]):
        return None
    if matches[0]["url"]:
        return frozenset({"extension"})
    name = matches[0]["name"]
    of_type = matches[1]["type"] if len(matches) > 1 else None
    elements = _structures().get(root_type) if root_type else None
    if elements is None:
        return frozenset({_json_key(name, of_type)})
    if name in elements.choices:
        return frozenset(key for key, kind in elements.choices[name] if of_type in (None, kind))
    return frozenset({name} if name in elements.plain else ())


@functools.cache
def compile_path(expression: str, root_type: str | None) -> Accessor | None:
    """A function giving what `expression` selects from a resource of `root_type` (or, with
    None, from an element of unknown type); None if the expression is not simple.

    Indexing evaluates every parameter of a type, and most select elements a resource does
    not have: where every alternative starts with a child of the root, a root without any of
    those keys selects nothing, found without walking the path (a third of the cost of
    indexing an Observation)."""
    texts = alternatives(expression)
    if texts is None:
        return None
    paths = [_path(text, root_type) for text in texts]
    if any(path is None for path in paths):
        return None
    starts = [_first_keys(text, root_type) for text in texts]
    keys = None if None in starts else frozenset().union(*(k for k in starts if k is not None))

    def accessor(value: Any) -> list[Any]:
        if keys is not None and isinstance(value, dict) and keys.isdisjoint(value):
            return []
        start: list[Node] = [(value, root_type)]
        return [item for path in paths if path for item, _ in path(start)]

    return accessor
