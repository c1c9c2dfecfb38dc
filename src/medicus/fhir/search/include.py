"""`_include` and `_revinclude`: the resources a page refers to, and those referring to it.
Each pass is one SQL query (a template, see template.py) over the reference index with the
caller's organisation (and the types the caller may read) as conditions; `:iterate` repeats
the pass on what was included."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select, tuple_
from sqlalchemy.sql import Select

from medicus.access.policy import Viewpoint
from medicus.fhir.definitions import resource_types
from medicus.fhir.models import RESOURCES
from medicus.fhir.search.match import TABLES, invalid
from medicus.fhir.search.parameters import parameters_of
from medicus.fhir.search.request import SearchRequest
from medicus.fhir.search.template import FALSE, Slot, Sql, Values, constants
from medicus.fhir.search.visibility import Viewer, viewer, visible

MAX_INCLUDED = 1000
MAX_ITERATIONS = 4
_NAMES = {
    "_include": (False, False),
    "_include:iterate": (False, True),
    "_include:recurse": (False, True),
    "_revinclude": (True, False),
    "_revinclude:iterate": (True, True),
    "_revinclude:recurse": (True, True),
}


@dataclass(frozen=True)
class Include:
    """`Source:param[:Target]`: references of `Source` resources through `param` (None: every
    reference parameter, `*`), to `Target` only if given."""

    source_type: str | None
    param: str | None
    target_type: str | None
    reverse: bool
    iterate: bool


def _parse(name: str, value: str, resource_type: str) -> Include:
    reverse, iterate = _NAMES[name]
    if value == "*":
        source = None if iterate or reverse else resource_type
        return Include(source, None, None, reverse, iterate)
    parts = value.split(":")
    if len(parts) not in (2, 3) or parts[0] not in resource_types():
        raise invalid(f"{name} must be Type:parameter[:TargetType] or *.", name)
    source, code = parts[0], parts[1]
    target = parts[2] if len(parts) == 3 else None
    if code != "*":
        parameter = parameters_of(source).get(code)
        if parameter is None or parameter.type != "reference":
            raise invalid(f"{name}: {code} is not a reference parameter of {source}.", name)
        if target and parameter.targets and target not in parameter.targets:
            raise invalid(f"{name}: {source}.{code} does not refer to {target}.", name)
    if not iterate and not reverse and source != resource_type:
        raise invalid(f"{name}: {source} is not the type searched; use :iterate.", name)
    return Include(source, None if code == "*" else code, target, reverse, iterate)


def includes_of(request: SearchRequest) -> list[Include]:
    """The `_include`/`_revinclude` directives of a search (400 on malformed ones)."""
    found = []
    for name, value in request.parameters:
        if name.partition(":")[0] in ("_include", "_revinclude"):
            if name not in _NAMES:
                raise invalid(f"{name}: the only modifier of includes is :iterate.", name)
            found += [_parse(name, part, request.resource_type) for part in value.split(",")]
    return found


@dataclass(frozen=True)
class Found:
    """A resource already in the bundle, by row id, type and id."""

    rid: int
    resource_type: str
    fhir_id: str


def _targets_of(
    row: Any, sources: tuple[Slot, ...], param: str | None, target_type: str | None
) -> ColumnElement[bool]:
    reference = TABLES["reference"].alias().c
    conditions: list[ColumnElement[bool]] = [reference.rid.in_(sources)]
    if param:
        conditions.append(reference.param == param)
    if target_type:
        conditions.append(reference.target_type == target_type)
    targets = select(reference.target_type, reference.target_id).where(*conditions)
    return tuple_(row.resource_type, row.fhir_id).in_(targets)


def _forward(values: Values, include: Include, found: Sequence[Found]) -> Sql:
    """The row is a target of the found resources' references: a (type, id) IN over the
    references of those few rows, which finds targets by their key instead of testing every
    resource of the organisation."""
    sources = [item.rid for item in found if include.source_type in (None, item.resource_type)]
    if not sources:
        return FALSE
    return Sql(_targets_of, (values.many(sources), include.param, include.target_type))


def _referring_to(
    row: Any,
    targets: tuple[tuple[str, tuple[Slot, ...]], ...],
    source_type: str | None,
    param: str | None,
) -> ColumnElement[bool]:
    reference = TABLES["reference"].alias().c
    conditions = [
        or_(
            *[
                and_(reference.target_type == kind, reference.target_id.in_(ids))
                for kind, ids in targets
            ]
        ),
    ]
    if source_type:
        conditions.append(reference.resource_type == source_type)
    if param:
        conditions.append(reference.param == param)
    return row.rid.in_(select(reference.rid).where(*conditions))  # type: ignore[no-any-return]


def _reverse(values: Values, include: Include, found: Sequence[Found]) -> Sql:
    """The row refers to one of the found resources: an IN over the referring index rows."""
    by_type: dict[str, list[str]] = {}
    for item in found:
        if include.target_type in (None, item.resource_type):
            by_type.setdefault(item.resource_type, []).append(item.fhir_id)
    if not by_type:
        return FALSE
    targets = tuple((kind, values.many(ids)) for kind, ids in sorted(by_type.items()))
    return Sql(_referring_to, (targets, include.source_type, include.param))


def _including(
    row: Any,
    viewer: Viewer,
    seen: tuple[Slot, ...],
    alternatives: tuple[Sql, ...],
    readable: tuple[str, ...] | None,
) -> Select[Any]:
    statement = select(*RESOURCES.c).where(
        # Not leading: the few targets, found by key, drive the query, not every resource
        # the organisation holds of their type.
        *visible(row, viewer, leading=False),
        row.rid.not_in(seen),
        or_(*[alternative.build(row) for alternative in alternatives]),
    )
    if readable is not None:
        statement = statement.where(row.resource_type.in_(constants(readable)))
    return statement.order_by(row.rid).limit(MAX_INCLUDED)


def included(
    values: Values,
    includes: Iterable[Include],
    found: Sequence[Found],
    seen: Iterable[int],
    viewpoint: Viewpoint,
    readable: frozenset[str] | None,
) -> Sql | None:
    """One pass: the visible resources `includes` reach from `found`, not yet `seen` (None if
    there is nothing to look for)."""
    alternatives = tuple(
        (_reverse if include.reverse else _forward)(values, include, found) for include in includes
    )
    if not alternatives or not found or readable == frozenset():
        return None
    return Sql(
        _including,
        (
            viewer(values, viewpoint),
            values.many(sorted(seen)),
            alternatives,
            None if readable is None else tuple(sorted(readable)),
        ),
    )
