"""FHIRPath Patch (FHIR R4, http://hl7.org/fhir/R4/fhirpatch.html): a `Parameters` resource
whose `operation` parameters add, insert, delete, replace or move elements named by FHIRPath.

`apply(parameters, resource)` is pure: the patched copy, or a 422 `ApiError` naming the
offending `Parameters.parameter[i]`. The spec's rules: the path of every operation selects
exactly one element (for insert and move: the elements of exactly one list), except that
deleting what is not there does nothing; add only creates what is not there, or appends to a
list; the value's type must fit the element. Operations apply in order, each to the result of
the one before. What a patch leaves empty is removed (FHIR JSON has no empty objects or
arrays); the writer then validates the result like any update.

fhirpathpy evaluates the paths, but it returns values, not where they are; places are found
here, on fhirpathpy's parse tree: `X.name` is the property `name` of each object that X selects
(fhirpathpy returns the resource's own dicts for X), `X[n]` the n-th place of X, and any other
step (`where()`, `first()`, `ofType()`…) the places of its input whose values fhirpathpy
returns, found by identity.

One module over 500 lines on purpose: the five operations are small, and all of them stand on
the same place-finding over the parse tree; apart, each would reach into the other's
internals.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass
from typing import Any

from antlr4 import (  # type: ignore[import-untyped]
    CommonTokenStream,
    InputStream,
    ParseTreeWalker,
    Token,
)
from antlr4.error.ErrorListener import ErrorListener  # type: ignore[import-untyped]
from fhirpathpy import apply_parsed_path
from fhirpathpy.engine.nodes import ResourceNode
from fhirpathpy.models import models
from fhirpathpy.parser.ASTPathListener import ASTPathListener
from fhirpathpy.parser.generated.FHIRPathLexer import FHIRPathLexer
from fhirpathpy.parser.generated.FHIRPathParser import FHIRPathParser

from medicus.core.errors import ApiError, ErrorDetail
from medicus.fhir.validation import Property, properties

Node = dict[str, Any]  # a node of fhirpathpy's parse tree
_R4 = models["r4"]
_ROOT = ""  # the key under which a `_Slot` holds the resource itself
_PARTS = {  # the parts each type of operation takes, besides `type`
    "add": frozenset({"path", "name", "value"}),
    "insert": frozenset({"path", "value", "index"}),
    "delete": frozenset({"path"}),
    "replace": frozenset({"path", "value"}),
    "move": frozenset({"path", "source", "destination"}),
}
_PART_NAMES = frozenset({"type"}).union(*_PARTS.values())


@dataclass(frozen=True)
class FhirPathPatch:
    """The body of a FHIRPath Patch as received (it is checked when applied); tells it apart
    from a JSON Patch on the way from the request to the writer."""

    parameters: Any


class _Refused(Exception):
    """What is wrong with one operation; `apply` names the operation."""

    def __init__(self, message: str, issue_type: str = "processing") -> None:
        super().__init__(message)
        self.issue_type = issue_type


def apply(parameters: Any, resource: dict[str, Any]) -> dict[str, Any]:
    """`resource` changed by the FHIRPath Patch `parameters` (a copy: `resource` is kept)."""
    if not isinstance(parameters, dict) or parameters.get("resourceType") != "Parameters":
        raise _error("Parameters", _Refused("a FHIRPath Patch is a Parameters resource", "invalid"))
    operations = parameters.get("parameter", [])
    if not isinstance(operations, list):
        raise _error("Parameters.parameter", _Refused("must be an array", "invalid"))
    patched = copy.deepcopy(resource)
    for index, raw in enumerate(operations):
        try:
            _apply_one(patched, _operation(raw))
        except _Refused as refused:
            raise _error(f"Parameters.parameter[{index}]", refused) from None
        except RecursionError:  # parts nested deeper than this walk can follow
            deep = _Refused("the value is nested too deeply", "too-costly")
            raise _error(f"Parameters.parameter[{index}]", deep) from None
    _tidy(patched)
    return patched


def _error(where: str, refused: _Refused) -> ApiError:
    return ApiError(
        422,
        f"The FHIRPath Patch does not apply: {where}: {refused}.",
        errors=[ErrorDetail(str(refused), expression=where)],
        issue_type=refused.issue_type,
    )


# --- the operations ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Operation:
    type: str
    path: Node
    parts: dict[str, dict[str, Any]]

    def string(self, name: str) -> str:
        return _string(self.parts, name)

    def integer(self, name: str) -> int:
        value = self.parts[name].get("valueInteger")
        if type(value) is not int:
            raise _Refused(f"the part '{name}' needs a valueInteger", "invalid")
        return value


def _operation(raw: Any) -> _Operation:
    """One `operation` parameter, checked for its parts (the profile's slices are closed)."""
    if not isinstance(raw, dict) or raw.get("name") != "operation":
        raise _Refused("every parameter is an 'operation' with parts", "invalid")
    parts: dict[str, dict[str, Any]] = {}
    given = raw.get("part")
    for part in given if isinstance(given, list) else []:
        name = part.get("name") if isinstance(part, dict) else None
        if not isinstance(name, str) or name not in _PART_NAMES or name in parts:
            raise _Refused(f"the part {name!r} is unknown or repeated", "invalid")
        parts[name] = part
    kind = parts.get("type", {}).get("valueCode")
    if not isinstance(kind, str) or kind not in _PARTS:
        raise _Refused("the part 'type' is add, insert, delete, replace or move", "invalid")
    if parts.keys() - {"type"} != _PARTS[kind]:
        wanted = ", ".join(sorted(_PARTS[kind]))
        raise _Refused(f"{kind} takes the parts type, {wanted}", "invalid")
    return _Operation(kind, _parse(_string(parts, "path")), parts)


def _string(parts: dict[str, dict[str, Any]], name: str) -> str:
    value = parts[name].get("valueString")
    if not isinstance(value, str) or not value:
        raise _Refused(f"the part '{name}' needs a valueString", "invalid")
    return value


def _apply_one(resource: dict[str, Any], operation: _Operation) -> None:
    slots = _select(resource, operation.path)
    if operation.type == "delete":
        _delete(slots)
        return
    if not slots:
        raise _Refused("the path matches nothing")
    {"add": _add, "insert": _insert, "replace": _replace, "move": _move}[operation.type](
        slots, operation
    )


def _add(slots: list[_Slot], operation: _Operation) -> None:
    target = _one(slots)
    holder = target.value
    if not isinstance(holder, dict):
        raise _Refused("add needs the path of an element with children, not of a primitive")
    name, kind = operation.string("name"), _type_of(target)
    variants = properties(kind, name)
    if not variants:
        raise _Refused(f"{kind} has no element '{name}'")
    chosen, value, companion = _value(operation.parts["value"], variants)
    if chosen.many:
        _insert_item(holder, chosen.key, len(holder.get(chosen.key, [])), value, companion)
    elif any(variant.key in holder or f"_{variant.key}" in holder for variant in variants):
        raise _Refused(f"{kind}.{name} is there already (replace changes it)")
    else:
        _set(holder, chosen.key, value, companion)


def _insert(slots: list[_Slot], operation: _Operation) -> None:
    first = _whole_list(slots)
    index, count = operation.integer("index"), len(slots)
    if not 0 <= index <= count:
        raise _Refused(f"the index must be 0 to {count}, not {index}")
    _chosen, value, companion = _value(operation.parts["value"], [_property(first)])
    _insert_item(first.holder, first.key, index, value, companion)


def _move(slots: list[_Slot], operation: _Operation) -> None:
    first = _whole_list(slots)
    source, destination = operation.integer("source"), operation.integer("destination")
    if not (0 <= source < len(slots) and 0 <= destination < len(slots)):
        raise _Refused(f"source and destination must be 0 to {len(slots) - 1}")
    for key in (first.key, f"_{first.key}"):
        if isinstance(items := first.holder.get(key), list):
            items.insert(destination, items.pop(source))


def _replace(slots: list[_Slot], operation: _Operation) -> None:
    target = _one(slots)
    if target.key == _ROOT:
        raise _Refused("the resource itself cannot be replaced")
    # a choice element may change its type: all variants are candidates
    variants = properties(target.holder_type, _property(target).name)
    chosen, value, companion = _value(operation.parts["value"], variants)
    if target.index is not None:
        _remove(target)
        _insert_item(target.holder, target.key, target.index, value, companion)
        return
    target.holder.pop(f"_{target.key}", None)
    if chosen.key != target.key:  # keep the key's place in the object unless the type changes
        del target.holder[target.key]
    _set(target.holder, chosen.key, value, companion)


def _delete(slots: list[_Slot]) -> None:
    if not slots:
        return  # deleting what is not there is no error
    target = _one(slots)
    if target.key == _ROOT:
        raise _Refused("the resource itself cannot be deleted")
    _remove(target)


def _one(slots: list[_Slot]) -> _Slot:
    if len(slots) != 1:
        raise _Refused(f"the path matches {len(slots)} elements; it must select one")
    return slots[0]


def _whole_list(slots: list[_Slot]) -> _Slot:
    """The first place of a path that selects every element of one list, and nothing else."""
    first = slots[0]
    if (
        first.index is None
        or len(slots) != len(first.holder[first.key])
        or any(slot.holder is not first.holder or slot.key != first.key for slot in slots)
    ):
        raise _Refused("insert and move need the path of one whole list, e.g. Patient.identifier")
    return first


# --- changing the JSON ------------------------------------------------------------------------
# A primitive's id and extensions live in a companion property (`_birthDate`, or for a list
# `_given`, an array as long as `given`): they go with the value, and a list's stay aligned.


def _set(holder: dict[str, Any], key: str, value: Any, companion: Any) -> None:
    holder[key] = value
    if companion is not None:
        holder[f"_{key}"] = companion


def _insert_item(holder: dict[str, Any], key: str, index: int, value: Any, companion: Any) -> None:
    items = holder.setdefault(key, [])
    items.insert(index, value)
    companions = holder.get(f"_{key}")
    if isinstance(companions, list):
        companions.insert(index, companion)
    elif companion is not None:
        holder[f"_{key}"] = [companion if at == index else None for at in range(len(items))]


def _remove(slot: _Slot) -> None:
    for key in (slot.key, f"_{slot.key}"):
        if slot.index is None:
            slot.holder.pop(key, None)
        elif isinstance(items := slot.holder.get(key), list) and slot.index < len(items):
            items.pop(slot.index)


def _tidy(value: Any) -> bool:
    """Removes the objects and arrays that are left empty, and companion arrays of nothing but
    nulls; True when `value` itself is empty."""
    if isinstance(value, dict):
        for key in [key for key, item in value.items() if _tidy(item) or _nulls(key, item)]:
            del value[key]
        return not value
    if isinstance(value, list):
        value[:] = [item for item in value if not _tidy(item)]
        return not value
    return False


def _nulls(key: str, value: Any) -> bool:
    return key.startswith("_") and isinstance(value, list) and all(i is None for i in value)


# --- values -----------------------------------------------------------------------------------


def _value(part: dict[str, Any], variants: list[Property]) -> tuple[Property, Any, Any]:
    """What a `value` part gives — a value[x], a `resource`, or parts that make up a complex
    value — with the variant of the element it is and the companion of a primitive."""
    given = [key for key in part if key.startswith("value") or key in ("resource", "part")]
    if len(given) != 1:
        raise _Refused("a value part has one value[x], a resource, or parts", "invalid")
    if given[0] == "part":
        return _composed(part["part"], variants)
    value = copy.deepcopy(part[given[0]])
    if given[0] == "resource":
        return _variant(variants, "Resource", value), value, None
    companion = copy.deepcopy(part.get(f"_{given[0]}"))
    return _variant(variants, given[0].removeprefix("value"), value), value, companion


def _variant(variants: list[Property], suffix: str, value: Any) -> Property:
    """The variant of the element that a value of type `suffix` (`Date`, `HumanName`) fits.
    Any primitive fits a primitive element (the validator checks its format): the spec itself
    sets `Narrative.div` (xhtml) with a valueString."""
    for variant in variants:
        if len(variants) > 1 or variant.key != variant.name:  # a choice: the key has the type
            fits = variant.key == variant.name + suffix
        elif variant.primitive:
            fits = not isinstance(value, dict | list)
        else:
            fits = suffix == variant.type
        if fits:
            return variant
    raise _Refused(f"a value of type {suffix} does not fit '{variants[0].name}'")


def _composed(parts: Any, variants: list[Property]) -> tuple[Property, Any, None]:
    """A complex value made of parts, one per element (`name` with a valueHumanName…)."""
    element = variants[0]
    if len(variants) != 1 or element.primitive or not isinstance(parts, list):
        raise _Refused(f"'{element.name}' takes a value[x], or an array of parts", "invalid")
    built: dict[str, Any] = {}
    for part in parts:
        name = part.get("name") if isinstance(part, dict) else None
        inner = properties(element.type, name) if isinstance(name, str) else []
        if not inner:
            raise _Refused(f"{element.type} has no element {name!r}", "invalid")
        chosen, value, companion = _value(part, inner)
        if chosen.many:
            _insert_item(built, chosen.key, len(built.get(chosen.key, [])), value, companion)
        elif chosen.key in built:
            raise _Refused(f"'{name}' is given twice but does not repeat", "invalid")
        else:
            _set(built, chosen.key, value, companion)
    return element, built, None


# --- paths ------------------------------------------------------------------------------------


class _SyntaxErrors(ErrorListener):  # type: ignore[misc]
    def syntaxError(  # ANTLR's name
        self, recognizer: Any, symbol: Any, line: int, column: int, message: str, error: Any
    ) -> None:
        raise _Refused(f"the path is not FHIRPath (at {column + 1}: {message})", "invalid")


def _parse(path: str) -> Node:
    """The parse tree of `path` as fhirpathpy's `parse` builds it, but refusing every syntax
    error: fhirpathpy's parser recovers from them silently and ignores what follows a
    complete expression (`Patient.name )`), which would patch some other element."""
    lexer = FHIRPathLexer(InputStream(path))
    lexer.removeErrorListeners()
    lexer.addErrorListener(_SyntaxErrors())
    tokens = CommonTokenStream(lexer)
    tokens.fill()
    _names_after_dots(tokens.tokens)
    _refuse_patterns(tokens.tokens)
    parser = FHIRPathParser(tokens)
    parser.removeErrorListeners()
    parser.addErrorListener(_SyntaxErrors())
    listener = ASTPathListener()  # type: ignore[no-untyped-call]
    ParseTreeWalker().walk(listener, parser.entireExpression())  # type: ignore[no-untyped-call]
    entire: Node = listener.parentStack[0]["children"][0]
    return entire["children"][0]  # type: ignore[no-any-return]


def _names_after_dots(tokens: list[Any]) -> None:
    """A keyword after a dot is a name: FHIRPath's grammar reads `div` as the operator even in
    `Patient.text.div` (Narrative.div), a path of the spec's own patch tests."""
    visible = [token for token in tokens if token.channel == Token.DEFAULT_CHANNEL]
    for dot, word in itertools.pairwise(visible):
        if dot.text == "." and word.type != FHIRPathLexer.IDENTIFIER and word.text.isalpha():
            word.type = FHIRPathLexer.IDENTIFIER


_PATTERN_FUNCTIONS = frozenset({"matches", "replaceMatches"})


def _refuse_patterns(tokens: list[Any]) -> None:
    """No regular expressions from a patch: Python's `re` would run one such as `(a+)+$`
    against the resource's text for as long as it backtracks, holding the server's event
    loop (a denial of service by anyone who may patch). FHIRPath Patch needs none to name
    an element."""
    visible = [token for token in tokens if token.channel == Token.DEFAULT_CHANNEL]
    for word, bracket in itertools.pairwise(visible):
        if word.text in _PATTERN_FUNCTIONS and bracket.text == "(":
            raise _Refused(f"{word.text}() is not allowed in a patch path.", "not-supported")


@dataclass(frozen=True)
class _Slot:
    """Where one element is: `holder[key]`, or `holder[key][index]` in a list; `holder_type`
    is the FHIR type of `holder` (`Patient`, `HumanName`, `Patient.contact`)."""

    holder: dict[str, Any]
    holder_type: str
    key: str
    index: int | None = None

    @property
    def value(self) -> Any:
        held = self.holder[self.key]
        return held if self.index is None else held[self.index]


def _root(resource: dict[str, Any]) -> _Slot:
    return _Slot({_ROOT: resource}, "", _ROOT)


def _select(resource: dict[str, Any], node: Node) -> list[_Slot]:
    """The places of the elements that the expression `node` selects in `resource`."""
    kind, children = node["type"], node.get("children", [])
    if kind == "InvocationExpression" and children[1]["type"] == "MemberInvocation":
        name = _identifier(children[1])
        holders = [h for h in _evaluate(resource, children[0]) if isinstance(h, ResourceNode)]
        if any(not isinstance(holder.data, dict) for holder in holders):
            # `Patient.birthDate.extension` lives in `_birthDate`: not reached from here
            raise _Refused(f"'{name}' of a primitive value cannot be patched")
        return [slot for h in holders for slot in _members(h.data, h.path, name)]
    if kind == "TermExpression" and (term := _term_name(node)) is not None:
        if term == resource.get("resourceType"):
            return [_root(resource)]
        return _members(resource, resource.get("resourceType"), term)
    if kind == "IndexerExpression":
        index = _index(resource, children[1])
        return _select(resource, children[0])[index : index + 1] if index >= 0 else []
    # Anything else, such as `X.where(…)`: the places of X whose values fhirpathpy returns.
    candidates = (
        _select(resource, children[0]) if kind == "InvocationExpression" else [_root(resource)]
    )
    return _match(_evaluate(resource, node), candidates)


def _members(holder: dict[str, Any], holder_type: Any, name: str) -> list[_Slot]:
    """The places of the element `name` of the object `holder` (any variant of a choice)."""
    kind = holder_type if isinstance(holder_type, str) else ""
    keys = [variant.key for variant in properties(kind, name)] or [name]
    slots = []
    for key in (key for key in keys if key in holder):
        value = holder[key]
        if isinstance(value, list):
            slots += [_Slot(holder, kind, key, index) for index in range(len(value))]
        else:
            slots.append(_Slot(holder, kind, key))
    return slots


def _match(results: list[Any], candidates: list[_Slot]) -> list[_Slot]:
    """The candidates whose values fhirpathpy returned, found by identity, in document order;
    one primitive object can be in several places (`true`, small numbers), which the order and
    the list position fhirpathpy keeps tell apart."""
    remaining = iter(candidates)
    matched = []
    for result in results:
        data = result.data if isinstance(result, ResourceNode) else result
        position = result.index if isinstance(result, ResourceNode) else None
        slot = next((c for c in remaining if c.value is data and position in (None, c.index)), None)
        if slot is None:
            raise _Refused(
                "the path must select elements of the resource "
                "(element names, [index], where(), first(), ofType()…)"
            )
        matched.append(slot)
    return matched


def _evaluate(resource: dict[str, Any], node: Node) -> list[Any]:
    """fhirpathpy's result for the expression `node`: ResourceNodes holding the resource's own
    objects (raw data: its usual result is a copy)."""
    variables = {"resource": resource, "rootResource": resource}
    try:
        found = apply_parsed_path(  # type: ignore[no-untyped-call]
            resource, {"children": [node]}, variables, _R4, {"returnRawData": True}
        )
    except Exception as error:  # fhirpathpy raises bare Exceptions: "Not implemented: resolve"
        raise _Refused(f"the path cannot be evaluated ({error})", "invalid") from None
    return found if isinstance(found, list) else [found]


def _index(resource: dict[str, Any], node: Node) -> int:
    values = [v.data if isinstance(v, ResourceNode) else v for v in _evaluate(resource, node)]
    if len(values) != 1 or type(values[0]) is not int:
        raise _Refused("an index in the path must be an integer", "invalid")
    return values[0]


def _identifier(member: Node) -> str:
    return str(member["children"][0]["text"]).strip("`")


def _term_name(node: Node) -> str | None:
    """The name of a term that is an element name (`Patient`, `name`), else None."""
    term = node["children"][0]
    if term["type"] == "InvocationTerm" and term["children"][0]["type"] == "MemberInvocation":
        return _identifier(term["children"][0])
    return None


def _property(slot: _Slot) -> Property:
    """What the tables say of the element at `slot`."""
    found = properties(slot.holder_type, slot.key)
    if not found:
        raise _Refused(f"{slot.holder_type or 'the resource'} has no element '{slot.key}'")
    return found[0]


def _type_of(slot: _Slot) -> str:
    """The FHIR type of the value at `slot` (a contained resource's is its resourceType)."""
    if slot.key == _ROOT:
        return str(slot.value["resourceType"])
    kind = _property(slot).type
    return str(slot.value.get("resourceType")) if kind == "Resource" else kind
