"""Validation of FHIR R4 JSON resources against the official base definitions.

`validate(resource)` walks the parsed JSON once against the tables in
`definitions/structures.json` (generated from `hl7.fhir.r4.core` 4.0.1) and returns every
problem as an `Issue` with a FHIR issue-type code and a FHIRPath location, e.g.
`Observation.code.coding[0].system` or `Bundle.entry[2].resource.status`. It checks what the
StructureDefinitions say about the JSON form: known resource types and elements, JSON types,
arrays exactly for repeating elements, cardinality, one variant per choice element, primitive
formats, `_name` siblings of primitives, extensions, contained and nested resources, and the
syntax and target type of references — plus a few cheap invariants (ele-1, ext-1, dom-2,
qty-3, bdl-3, bdl-7) and, for resources claiming a German profile, the formats of well-known
German identifiers. It is not a FHIRPath invariant engine and does not check terminology
bindings.

The tables are turned into linked `_Structure`/`_Element` objects once, on first use, so that a
validation is a walk over dicts with precompiled regexes — tens of microseconds per resource.

One module over 500 lines on purpose: the checks are steps of one recursive walk and share its
state (the element, its path, the issues so far); apart, each would need all of it.
"""

from __future__ import annotations

import datetime
import functools
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

MAX_ISSUES = 100

STRUCTURE = "structure"
REQUIRED = "required"
VALUE = "value"
INVARIANT = "invariant"
INVALID = "invalid"
TOO_COSTLY = "too-costly"
TOO_LONG = "too-long"

_TABLES = Path(__file__).parent / "definitions" / "structures.json"


@dataclass(frozen=True, slots=True)
class Issue:
    """One problem, shaped like an `OperationOutcome.issue` (all are errors)."""

    severity: str
    code: str
    expression: str
    diagnostics: str


def validate(resource: dict[str, Any]) -> list[Issue]:
    """Every problem of `resource` (at most `MAX_ISSUES`); empty when it is valid R4."""
    issues: list[Issue] = []
    try:
        _resource(resource, "", issues, _schema())
    except RecursionError:
        # json.loads accepts nesting deeper than this walk can follow; refuse, do not crash.
        _add(issues, TOO_COSTLY, "Resource", "The resource is nested too deeply to validate")
    return issues


def _add(issues: list[Issue], code: str, expression: str, diagnostics: str) -> None:
    if len(issues) < MAX_ISSUES:
        issues.append(Issue("error", code, expression, diagnostics))


# --- the tables ---------------------------------------------------------------------------

_INTEGER_RANGES = {
    "integer": (-(2**31), 2**31 - 1),
    "unsignedInt": (0, 2**31 - 1),
    "positiveInt": (1, 2**31 - 1),
}
# R4 gives xhtml no regex; a narrative is a single `<div>` element.
_XHTML = r"\s*<div[\s>].*</div>\s*"
MAX_STRING = 1024 * 1024
"""Characters of a string value at most (R4: "strings SHALL NOT exceed 1MB (1024*1024
characters)"). base64Binary is exempt: attachments and Binary data are only bounded by the
request body limit."""
_CALENDAR_TYPES = frozenset({"date", "dateTime", "instant"})


_BASE64_CHARACTERS = re.compile(r"[0-9a-zA-Z+/=\s]*", re.ASCII)
_BASE64_RUN = re.compile(r"[0-9a-zA-Z+/=]+", re.ASCII)
_SPACE = re.compile(r"\s", re.ASCII)
_SLICE = 1024 * 1024


def _base64(value: str) -> bool | None:
    """True where the spec's base64Binary regex, `(\\s*([0-9a-zA-Z\\+/=]){4}\\s*)+`, matches
    (runs of the alphabet as long as a multiple of four, whitespace between them), None
    elsewhere. Not by that regex: Python's re backtracks through it at seconds per megabyte,
    and attachments have megabytes. Looked at a megabyte at a time, so that a worker thread
    validating a large attachment lets the event loop run in between (one long C call would
    hold the interpreter)."""
    slices = range(0, len(value), _SLICE)
    if any(_BASE64_CHARACTERS.fullmatch(value, at, at + _SLICE) is None for at in slices):
        return None
    if not any(_SPACE.search(value, at, at + _SLICE) for at in slices):
        return True if value and len(value) % 4 == 0 else None
    lengths = [run.end() - run.start() for run in _BASE64_RUN.finditer(value)]
    return True if lengths and all(length % 4 == 0 for length in lengths) else None


class _Primitive:
    __slots__ = ("calendar", "json", "match", "max_length", "name", "range")

    def __init__(self, name: str, spec: dict[str, str]) -> None:
        self.name = name
        self.json = spec["json"]
        self.max_length = None if name == "base64Binary" else MAX_STRING
        regex = _XHTML if name == "xhtml" else spec.get("regex")
        # ASCII: the spec's regexes are XML-Schema style, where \s and \S are ASCII classes
        # (with Unicode semantics a non-breaking space would not be allowed in a string).
        compiled = re.compile(regex, re.ASCII | re.DOTALL) if regex else None
        self.match: Callable[[str], object] | None = compiled.fullmatch if compiled else None
        if name == "base64Binary":
            self.match = _base64
        self.range = _INTEGER_RANGES.get(name)
        self.calendar = name in _CALENDAR_TYPES


class _Element:
    """One allowed JSON property; `structure`/`primitive` says what its value must be."""

    __slots__ = ("choice", "label", "many", "min", "name", "primitive", "structure", "targets")

    def __init__(self, name: str, entry: list[Any], primitives: dict[str, _Primitive]) -> None:
        self.name = name
        self.min: int = entry[1]
        self.many = entry[2] != "1"
        self.choice: str | None = entry[3] if len(entry) > 3 else None
        type_name: str = entry[0]
        self.targets: frozenset[str] | None = None
        if type_name.startswith("Reference("):
            self.targets = frozenset(type_name[len("Reference(") : -1].split("|"))
            type_name = "Reference"
        self.primitive = primitives.get(type_name)
        self.structure: _Structure | None = None
        self.label = name
        if self.choice is not None:
            # FHIRPath names a choice variant `value.ofType(Quantity)`, not `valueQuantity`.
            suffix = name[len(self.choice) :]
            if self.primitive is not None:
                suffix = suffix[0].lower() + suffix[1:]
            self.label = f"{self.choice}.ofType({suffix})"


class _Structure:
    __slots__ = ("check", "elements", "is_resource", "name", "required")

    def __init__(self, name: str, is_resource: bool) -> None:
        self.name = name
        self.is_resource = is_resource
        self.elements: dict[str, _Element] = {}
        self.required: list[tuple[str, tuple[str, ...]]] = []
        self.check: Callable[[dict[str, Any], str, list[Issue]], None] | None = None


@dataclass(frozen=True, slots=True)
class _Schema:
    structures: dict[str, _Structure]
    element: _Structure  # the shape of a primitive's `_name` sibling
    reference: _Structure


@functools.cache
def _schema() -> _Schema:
    """Loads structures.json once and links every element to its primitive or structure."""
    tables = json.loads(_TABLES.read_text(encoding="utf-8"))
    primitives = {name: _Primitive(name, spec) for name, spec in tables["primitives"].items()}
    resources = set(tables["resources"])
    structures = {name: _Structure(name, name in resources) for name in tables["types"]}
    for name, table in tables["types"].items():
        structure = structures[name]
        for key, entry in table.items():
            element = _Element(key, entry, primitives)
            element.structure = structures.get("Reference" if element.targets else entry[0])
            structure.elements[key] = element
        structure.required = _required(structure.elements)
        structure.check = _CHECKS.get(name)
    for name in resources:
        structures[name].check = _resource_checks
    return _Schema(structures, structures["Element"], structures["Reference"])


def _required(elements: dict[str, _Element]) -> list[tuple[str, tuple[str, ...]]]:
    """(label, JSON keys any of which satisfies it) for every element with min >= 1."""
    groups: dict[str, list[str]] = {}
    for key, element in elements.items():
        if element.min >= 1:
            keys = groups.setdefault(element.choice or key, [])
            keys.append(key)
            if element.primitive is not None:
                keys.append("_" + key)  # a primitive may be present as extensions only
    return [(label, tuple(keys)) for label, keys in groups.items()]


@dataclass(frozen=True, slots=True)
class Property:
    """A JSON property of a FHIR structure as the tables describe it, e.g. Patient's
    `deceasedBoolean`: `name` is what FHIRPath calls it (`deceased`), `type` a primitive
    (`boolean`), a data type (`HumanName`), a backbone element (`Patient.contact`) or
    `Resource` (contained and nested resources)."""

    key: str
    name: str
    type: str
    many: bool
    primitive: bool


def properties(structure: str, name: str) -> list[Property]:
    """The properties of `structure` (`Patient`, `HumanName`, `Patient.contact`…) that hold its
    element `name`: one, or one per type of a choice element (`deceased`); a JSON key such as
    `deceasedBoolean` names just that variant. Empty for an unknown structure or element."""
    found = _schema().structures.get(structure)
    if found is None:
        return []
    return [
        Property(
            element.name,
            element.choice or element.name,
            _type_name(element),
            element.many,
            element.primitive is not None,
        )
        for element in found.elements.values()
        if name in (element.name, element.choice)
    ]


def _type_name(element: _Element) -> str:
    if element.primitive is not None:
        return element.primitive.name
    return element.structure.name if element.structure is not None else "Resource"


# --- the walk ------------------------------------------------------------------------------


def _resource(value: Any, path: str, issues: list[Issue], schema: _Schema) -> None:
    if type(value) is not dict:
        _add(issues, STRUCTURE, path or "Resource", "A resource must be a JSON object")
        return
    kind = value.get("resourceType")
    structure = schema.structures.get(kind) if type(kind) is str else None
    if structure is None or not structure.is_resource:
        where = f"{path}.resourceType" if path else "resourceType"
        _add(issues, INVALID, where, f"Unknown resourceType {kind!r}")
        return
    _object(value, structure, path or structure.name, issues, schema)


def _object(
    value: dict[str, Any], structure: _Structure, path: str, issues: list[Issue], schema: _Schema
) -> None:
    if not value:
        _add(issues, INVARIANT, path, "ele-1: an element must have a value or children")
        return
    elements = structure.elements
    choices: dict[str, str] | None = None
    for key, item in value.items():
        element = elements.get(key)
        if element is not None:
            _property(item, element, path, issues, schema, value)
        elif key[:1] == "_" and (element := elements.get(key[1:])) and element.primitive:
            _sibling(item, element, path, issues, schema, value)
        else:
            if key != "resourceType" or not structure.is_resource:
                _add(issues, STRUCTURE, f"{path}.{key}", f"Unknown element '{key}'")
            continue
        if element.choice is not None:
            choices = choices or {}
            if choices.setdefault(element.choice, element.name) != element.name:
                where = f"{path}.{element.choice}[x]"
                found = f"{choices[element.choice]} and {element.name}"
                _add(issues, STRUCTURE, where, f"Only one choice variant allowed, got {found}")
    for label, keys in structure.required:
        for key in keys:
            if key in value:
                break
        else:
            _add(issues, REQUIRED, f"{path}.{label}", f"Missing required element '{label}'")
    if structure.check is not None:
        structure.check(value, path, issues)


def _property(
    value: Any,
    element: _Element,
    path: str,
    issues: list[Issue],
    schema: _Schema,
    parent: dict[str, Any],
) -> None:
    """One JSON property; paths of primitives are only built for an issue (the hot path)."""
    primitive = element.primitive
    if not element.many:
        if type(value) is list:
            message = "Must be a single value, not an array (max 1)"
            _add(issues, STRUCTURE, f"{path}.{element.label}", message)
        elif primitive is None:
            _complex(value, element, f"{path}.{element.label}", issues, schema)
        elif (problem := _primitive(value, primitive)) is not None:
            _add(issues, problem[0], f"{path}.{element.label}", problem[1])
        return
    here = f"{path}.{element.label}"
    if type(value) is not list:
        _add(issues, STRUCTURE, here, "Must be an array (the element repeats)")
        return
    if not value:
        _add(issues, INVARIANT, here, "ele-1: an array must not be empty")
    if primitive is None:
        for index, item in enumerate(value):
            _complex(item, element, f"{here}[{index}]", issues, schema)
        return
    siblings = parent.get("_" + element.name)
    for index, item in enumerate(value):
        problem = _primitive(item, primitive)
        # null stands in for a value that only the `_name` sibling gives
        if problem is not None and (item is not None or not _has_entry(siblings, index)):
            _add(issues, problem[0], f"{here}[{index}]", problem[1])


def _has_entry(siblings: Any, index: int) -> bool:
    return type(siblings) is list and index < len(siblings) and siblings[index] is not None


def _complex(
    value: Any, element: _Element, here: str, issues: list[Issue], schema: _Schema
) -> None:
    if element.structure is None:
        _resource(value, here, issues, schema)
    elif type(value) is not dict:
        _add(issues, STRUCTURE, here, f"Must be a JSON object ({element.structure.name})")
    else:
        _object(value, element.structure, here, issues, schema)
        if element.structure is schema.reference:
            _reference(value, element.targets, here, issues)


def _sibling(
    value: Any,
    element: _Element,
    path: str,
    issues: list[Issue],
    schema: _Schema,
    parent: dict[str, Any],
) -> None:
    """`_birthDate: {extension: [...]}` — the id and extensions of a primitive."""
    here = f"{path}.{element.label}"
    if not element.many:
        if type(value) is dict:
            _object(value, schema.element, here, issues, schema)
        else:
            _add(issues, STRUCTURE, f"{path}._{element.name}", "Must be a JSON object")
        return
    values = parent.get(element.name)
    if type(value) is not list or (type(values) is list and len(values) != len(value)):
        message = "Must be an array as long as the array of values"
        _add(issues, STRUCTURE, f"{path}._{element.name}", message)
        return
    for index, item in enumerate(value):
        if type(item) is dict:
            _object(item, schema.element, f"{here}[{index}]", issues, schema)
        elif item is not None:
            _add(issues, STRUCTURE, f"{here}[{index}]", "Must be a JSON object or null")


def _primitive(value: Any, primitive: _Primitive) -> tuple[str, str] | None:
    """(issue code, diagnostics) when `value` is not a valid `primitive`."""
    kind = type(value)
    if primitive.json == "string":
        if kind is not str:
            return STRUCTURE, f"Must be a JSON string ({primitive.name})"
        if not value:
            return VALUE, "ele-1: a string must not be empty"
        if primitive.max_length is not None and len(value) > primitive.max_length:
            return TOO_LONG, f"A {primitive.name} may have at most {MAX_STRING} characters"
        if "\x00" in value:
            return VALUE, "A string must not contain U+0000 (NUL)"
        if primitive.match is not None and primitive.match(value) is None:
            return VALUE, f"{value[:80]!r} is not a valid {primitive.name}"
        if primitive.calendar and len(value) >= 10 and value[8:10] > "28":
            return _calendar(value, primitive)
    elif primitive.json == "boolean":
        if kind is not bool:
            return STRUCTURE, "Must be a JSON boolean (true or false)"
    elif primitive.range is not None:
        if isinstance(value, Decimal) and str(value).lstrip("-").isdigit():  # beyond 64 bits
            return VALUE, f"{str(value)[:40]} is out of range for {primitive.name}"
        if kind is not int:
            return STRUCTURE, f"Must be a JSON integer ({primitive.name})"
        if not primitive.range[0] <= value <= primitive.range[1]:
            return VALUE, f"{value} is out of range for {primitive.name}"
    elif (
        kind is not int
        and not isinstance(value, Decimal)
        and (kind is not float or not math.isfinite(value))
    ):
        return STRUCTURE, f"Must be a JSON number ({primitive.name})"
    return None


def _calendar(value: str, primitive: _Primitive) -> tuple[str, str] | None:
    """The regexes allow 31 days in every month; the calendar does not."""
    try:
        datetime.date.fromisoformat(value[:10])
    except ValueError:
        return VALUE, f"{value!r} is not a valid {primitive.name} (no such day)"
    return None


# --- references ------------------------------------------------------------------------------

_ID = r"[A-Za-z0-9\-\.]{1,64}"
_RELATIVE = re.compile(rf"([A-Z][A-Za-z]+)/{_ID}(?:/_history/{_ID})?", re.ASCII)
_ABSOLUTE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s/]+(?:/\S*)?", re.ASCII)
_FHIR_URL_TAIL = re.compile(rf"/([A-Z][A-Za-z]+)/{_ID}(?:/_history/{_ID})?", re.ASCII)
_URN = re.compile(
    r"urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
    r"|urn:oid:[0-2](?:\.(?:0|[1-9][0-9]*))+",
    re.ASCII,
)
_LOCAL = re.compile(rf"#(?:{_ID})?", re.ASCII)


def _reference(
    value: dict[str, Any], targets: frozenset[str] | None, here: str, issues: list[Issue]
) -> None:
    """`Type/id[/_history/v]`, an absolute URL, `urn:uuid:`/`urn:oid:` or `#local`."""
    reference = value.get("reference")
    if type(reference) is not str or not reference:
        return  # wrong JSON types were reported by the walk
    where = f"{here}.reference"
    relative = _RELATIVE.fullmatch(reference)
    if relative is not None:
        _target(relative.group(1), targets, where, issues)
    elif _ABSOLUTE.fullmatch(reference):
        tail = _FHIR_URL_TAIL.search(reference)
        if tail is not None and tail.end() == len(reference):
            _target(tail.group(1), targets, where, issues)
    elif not (_URN.fullmatch(reference) or _LOCAL.fullmatch(reference)):
        message = (
            f"{reference[:80]!r} is not a reference: expected Type/id, an absolute URL, "
            "urn:uuid:, urn:oid: or #id"
        )
        _add(issues, VALUE, where, message)


def _target(kind: str, targets: frozenset[str] | None, where: str, issues: list[Issue]) -> None:
    structure = _schema().structures.get(kind)
    if structure is None or not structure.is_resource:
        _add(issues, VALUE, where, f"Unknown resource type {kind!r} in reference")
    elif targets is not None and kind not in targets:
        allowed = ", ".join(sorted(targets))
        _add(issues, VALUE, where, f"A reference to {kind} is not allowed here ({allowed})")


# --- invariants ------------------------------------------------------------------------------


def _extension(value: dict[str, Any], path: str, issues: list[Issue]) -> None:
    # whatever is not url, id or extension is the value[x] (unknown keys were reported)
    has_value = len(value) > ("url" in value) + ("id" in value) + ("extension" in value)
    if has_value == ("extension" in value):
        message = "ext-1: an extension must have either extensions or a value[x], not both"
        _add(issues, INVARIANT, path, message)


def _quantity(value: dict[str, Any], path: str, issues: list[Issue]) -> None:
    if "code" in value and "system" not in value:
        _add(issues, INVARIANT, path, "qty-3: a coded unit needs a system")


def _bundle(value: dict[str, Any], path: str, issues: list[Issue]) -> None:
    entries = value.get("entry")
    if type(entries) is not list:
        return
    needs_request = value.get("type") in ("batch", "transaction", "history")
    seen: set[tuple[str, str | None]] = set()
    for index, entry in enumerate(entries):
        if type(entry) is not dict:
            continue
        if ("request" in entry) != needs_request:
            message = "bdl-3: entry.request is needed in, and only in, batch/transaction/history"
            _add(issues, INVARIANT, f"{path}.entry[{index}]", message)
        _unique_full_url(entry, value.get("type"), seen, f"{path}.entry[{index}]", issues)


def _unique_full_url(
    entry: dict[str, Any],
    kind: Any,
    seen: set[tuple[str, str | None]],
    where: str,
    issues: list[Issue],
) -> None:
    """bdl-7: the same fullUrl twice only as different versions (or in a history)."""
    full_url = entry.get("fullUrl")
    resource = entry.get("resource")
    if type(full_url) is not str or kind == "history" or type(resource) is not dict:
        return
    meta = resource.get("meta")
    version = meta.get("versionId") if type(meta) is dict else None
    key = (full_url, version if type(version) is str else None)
    if key in seen:
        _add(issues, INVARIANT, f"{where}.fullUrl", f"bdl-7: fullUrl {full_url!r} repeats")
    seen.add(key)


def _resource_checks(value: dict[str, Any], path: str, issues: list[Issue]) -> None:
    contained = value.get("contained")
    if type(contained) is list:
        for index, item in enumerate(contained):
            if type(item) is dict and "contained" in item:
                where = f"{path}.contained[{index}]"
                _add(issues, INVARIANT, where, "dom-2: a contained resource must not contain")
    meta = value.get("meta")
    if type(meta) is dict and type(meta.get("profile")) is list:
        _german_profiles(value, meta["profile"], path, issues)
    if value.get("resourceType") == "Bundle":
        _bundle(value, path, issues)


# --- German profiles (de.basisprofil, ISiK Basis) ------------------------------------------

GERMAN_PROFILE_PREFIXES = ("http://fhir.de/StructureDefinition/", "https://gematik.de/fhir/isik/")
# Value formats of the German identifier systems that de.basisprofil defines slices for.
GERMAN_IDENTIFIER_FORMATS = {
    "http://fhir.de/sid/gkv/kvid-10": re.compile(r"[A-Z][0-9]{9}", re.ASCII),  # KVNR
    "http://fhir.de/sid/pkv/kvid-10": re.compile(r"[A-Z][0-9]{9}", re.ASCII),  # KVNR (PKV)
    "http://fhir.de/sid/arge-ik/iknr": re.compile(r"[0-9]{9}", re.ASCII),  # IK-Nummer
    "https://fhir.kbv.de/NamingSystem/KBV_NS_Base_ANR": re.compile(r"[0-9]{9}", re.ASCII),  # LANR
    "https://fhir.kbv.de/NamingSystem/KBV_NS_Base_BSNR": re.compile(r"[0-9]{9}", re.ASCII),
}


def _german_profiles(
    value: dict[str, Any], profiles: list[Any], path: str, issues: list[Issue]
) -> None:
    """Identifier formats, only for resources that claim a German profile."""
    if not any(type(p) is str and p.startswith(GERMAN_PROFILE_PREFIXES) for p in profiles):
        return
    identifiers = value.get("identifier")
    for index, identifier in enumerate(identifiers if type(identifiers) is list else ()):
        system = identifier.get("system") if type(identifier) is dict else None
        pattern = GERMAN_IDENTIFIER_FORMATS.get(system) if type(system) is str else None
        number = identifier.get("value") if pattern is not None else None
        if pattern is not None and type(number) is str and not pattern.fullmatch(number):
            where = f"{path}.identifier[{index}].value"
            _add(issues, VALUE, where, f"{number[:40]!r} is not a valid identifier of {system}")


_QUANTITIES = ("Quantity", "SimpleQuantity", "Age", "Count", "Distance", "Duration")
_CHECKS: dict[str, Callable[[dict[str, Any], str, list[Issue]], None]] = {
    "Extension": _extension,
    **dict.fromkeys(_QUANTITIES, _quantity),
}
