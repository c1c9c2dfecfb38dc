"""Conditions that look into other resources: chains (`subject:Patient.name=x`), reverse
chains (`_has:Observation:patient:code=x`) and `_list`, each an IN over the visible resources
it looks into, and `search_condition`, which dispatches a parameter to these or to the one-parameter
conditions of conditions.py (a chain's rest may itself be a chain)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, select, union_all

from medicus.fhir.definitions import resource_types
from medicus.fhir.models import RESOURCES
from medicus.fhir.search.conditions import (
    Check,
    alternatives,
    parameter_condition,
    target_types,
)
from medicus.fhir.search.match import TABLES, invalid
from medicus.fhir.search.parameters import parameters_of
from medicus.fhir.search.request import UNSUPPORTED, UnknownParameter
from medicus.fhir.search.template import FALSE, Slot, Sql, Values
from medicus.fhir.search.visibility import Scope, Viewer, visible


def _referring(
    row: Any,
    resource_type: str,
    code: str,
    viewer: Viewer,
    targets: tuple[tuple[str, Sql], ...],
) -> ColumnElement[bool]:
    """The row refers through `code` to a visible resource of one of the `targets`' types
    that matches its condition."""
    selects = []
    for kind, condition in targets:
        target_row, reference = RESOURCES.alias().c, TABLES["reference"].alias().c
        selects.append(
            select(reference.rid).where(
                reference.resource_type == resource_type,
                reference.param == code,
                reference.target_type == kind,
                target_row.resource_type == kind,
                target_row.fhir_id == reference.target_id,
                *visible(target_row, viewer),
                condition.build(target_row),
            )
        )
    return row.rid.in_(union_all(*selects) if len(selects) > 1 else selects[0])  # type: ignore[no-any-return]


def _chain(
    values: Values,
    scope: Scope,
    resource_type: str,
    head: str,
    rest: str,
    value: str,
    name: str,
) -> Sql:
    """`subject:Patient.name=x`: a reference of the row to a visible resource matching `rest`.
    An IN over the (uncorrelated) referring rows, so that the database starts from the few
    targets that match rather than from every row of the searched type."""
    code, _, target = head.partition(":")
    parameter = parameters_of(resource_type).get(code)
    if parameter is None or parameter.type != "reference":
        raise invalid(f"{name}: {code} is not a reference parameter of {resource_type}.", name)
    if target and target not in target_types(parameter):
        raise invalid(f"{name}: {code} does not refer to {target}.", name)
    following = rest.split(".")[0].split(":")[0]
    candidates = [
        kind
        for kind in ([target] if target else target_types(parameter))
        if following == "_has" or following in parameters_of(kind)
    ]
    if not candidates:
        raise invalid(f"{name}: no type {code} refers to has a parameter {following}.", name)
    if target:
        scope.require_readable(target, name)
    targets = tuple(
        (kind, search_condition(values, scope, kind, rest, value, name))
        for kind in candidates
        if scope.readable is None or kind in scope.readable
    )
    if not targets:
        return FALSE
    return Sql(_referring, (resource_type, code, scope.viewer, targets))


def _referred_by(
    row: Any,
    resource_type: str,
    source_type: str,
    code: str,
    viewer: Viewer,
    condition: Sql,
) -> ColumnElement[bool]:
    source, reference = RESOURCES.alias().c, TABLES["reference"].alias().c
    referring = select(reference.target_id).where(
        source.resource_type == source_type,
        *visible(source, viewer),
        reference.rid == source.rid,
        reference.resource_type == source_type,
        reference.param == code,
        reference.target_type == resource_type,
        condition.build(source),
    )
    return row.fhir_id.in_(referring)  # type: ignore[no-any-return]


def _reverse_chain(
    values: Values, scope: Scope, resource_type: str, key: str, value: str, name: str
) -> Sql:
    """`_has:Observation:patient:code=x`: a visible Observation referring to the row through
    `patient` and matching `code=x` (which may itself be a chain or another `_has`); an IN
    over the ids those Observations refer to, for the same reason as in `_chain`."""
    parts = key.split(":", 3)
    if len(parts) < 4 or not all(parts):
        raise invalid(f"{name} must be _has:Type:reference:parameter.", name)
    _, source_type, code, rest = parts
    if source_type not in resource_types():
        raise invalid(f"{name}: {source_type} is not a resource type.", name)
    parameter = parameters_of(source_type).get(code)
    if parameter is None or parameter.type != "reference":
        raise invalid(f"{name}: {code} is not a reference parameter of {source_type}.", name)
    if resource_type not in target_types(parameter):
        raise invalid(f"{name}: {source_type}.{code} does not refer to {resource_type}.", name)
    scope.require_readable(source_type, name)
    referring = search_condition(values, scope, source_type, rest, value, name)
    return Sql(_referred_by, (resource_type, source_type, code, scope.viewer, referring))


def _listed(
    row: Any, resource_type: str, ids: tuple[Slot, ...], viewer: Viewer
) -> ColumnElement[bool]:
    """The row is an item of one of the visible Lists `ids`: its id among the ids the Lists'
    `item` rows name, so that the search reads the items by type and id."""
    listing, reference = RESOURCES.alias().c, TABLES["reference"].alias().c
    named = select(reference.target_id).where(
        listing.resource_type == "List",
        listing.fhir_id.in_(ids),
        *visible(listing, viewer),
        # The List's own rows by its row id: their type goes without saying, and without it
        # SQLite cannot start from every List's `item` rows instead.
        reference.rid == listing.rid,
        reference.param == "item",
        reference.target_type == resource_type,
    )
    return row.fhir_id.in_(named)  # type: ignore[no-any-return]


def _in_list(
    values: Values, scope: Scope, resource_type: str, key: str, value: str, name: str
) -> Sql:
    """`_list=42`: what List/42 refers to in `entry.item` (its reference index rows), if that
    List is visible to the caller: another organisation's List, or a deleted one, names
    nothing, as if it did not exist. An IN over the row ids of the items (each found by type
    and id), so that the search starts from the List's few entries, not from every resource
    of the type (an IN over their ids did, on SQLite)."""
    if key != "_list":
        raise invalid(f"The modifier :{key.partition(':')[2]} is not supported on _list.", name)
    ids = alternatives(value, name)
    if any(fhir_id.startswith("$") for fhir_id in ids):
        message = f"{name}: functional lists ({value}) are not supported; name a List by its id."
        raise invalid(message, name)
    scope.require_readable("List", name)
    return Sql(_listed, (resource_type, values.many(ids), scope.viewer))


def search_condition(
    values: Values,
    scope: Scope,
    resource_type: str,
    key: str,
    value: str,
    name: str,
    check: Check = Check.READ,
) -> Sql:
    """The condition of parameter `key` (all of `name`, or what is left of it in a chain),
    checked as `check` says (see `conditions.Check`)."""
    if key.startswith("_has:"):
        return _reverse_chain(values, scope, resource_type, key, value, name)
    if key.partition(":")[0] == "_list":
        return _in_list(values, scope, resource_type, key, value, name)
    head, dot, rest = key.partition(".")
    if dot:
        return _chain(values, scope, resource_type, head, rest, value, name)
    code, _, modifier = key.partition(":")
    if code in UNSUPPORTED:
        raise invalid(f"{code} ({UNSUPPORTED[code]}) is not supported by medicus.", name)
    parameter = parameters_of(resource_type).get(code)
    if parameter is None or not parameter.searchable:
        message = f"{code} is not a search parameter of {resource_type} that medicus supports."
        if key == name:
            raise UnknownParameter(
                400, message, errors=invalid(message, name).errors, issue_type="invalid"
            )
        raise invalid(message, name)
    return parameter_condition(
        values, resource_type, parameter, name, modifier or None, value, check
    )
