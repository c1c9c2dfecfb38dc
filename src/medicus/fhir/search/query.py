"""FHIR search parameters into one SQL query: each parameter an IN over the matching rows of
its index table (repeated parameters AND, comma-separated values OR), chains, `_has` and
`_list` an IN over the referenced or referring resources, `_sort` correlated subqueries, and
what the caller may see (its organisation's data and data shared with it, see `access`) a
condition of the query and of every resource a chain or a list looks into, so that nothing
the caller may not see is ever read, counted or used to select.

The query is a template (template.py): parsing a search yields its shape, a tree of `Sql`
pieces, and its values; the shape is compiled once and run with each search's values."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Label,
    and_,
    exists,
    func,
    literal,
    or_,
    select,
    union_all,
)
from sqlalchemy.sql import Select

from medicus.access.policy import Viewpoint, readable_patients, readable_record
from medicus.core.errors import ApiError
from medicus.fhir.definitions import resource_types
from medicus.fhir.models import RESOURCES
from medicus.fhir.search.geo import on_sphere
from medicus.fhir.search.match import (
    TABLES,
    circle,
    invalid,
    matches,
    parse_date,
    point_condition,
    split_escaped,
    squared_chord,
)
from medicus.fhir.search.parameters import SearchParameter, parameters_of
from medicus.fhir.search.template import (
    FALSE,
    TRUE,
    Slot,
    Sql,
    Values,
    any_of,
    negated,
    one_of,
)

RESULT_PARAMETERS = frozenset(
    {
        "_count",
        "_total",
        "_format",
        "_offset",
        "_cursor",
        "_sort",
        "_include",
        "_revinclude",
        "_summary",
        "_elements",
        "_pretty",
        # Not FHIR: fhirpy's `count()` sends it (Aidbox's way to ask for a total); ignored.
        "_totalMethod",
    }
)
UNSUPPORTED = {
    "_text": "full-text search of the narrative",
    "_content": "full-text search of the content",
    "_query": "named queries",
    "_filter": "the _filter syntax",
    "_contained": "searching contained resources",
    "_containedType": "searching contained resources",
}
MAX_ALTERNATIVES = 200
"""Comma-separated values of one search parameter."""
MAX_VALUES = 10_000
"""Values of one search in all (a prefix match takes three, padded lists up to twice their
length), well below PostgreSQL's 32,767 parameters of a statement."""
MAX_SORT_KEYS = 8
"""Keys of `_sort`: a page after or before a resource compares every key (an OR of ANDs that
grows with their square); SQLite refused that beyond about 16 keys, Python's recursion
limit beyond a few hundred."""
# Per sortable parameter type: the column ascending, the column descending, and the kind of
# value a paging cursor carries for it.
_SORT_COLUMNS = {
    "string": ("value", "value", "text"),
    "token": ("code", "code", "text"),
    "uri": ("value", "value", "text"),
    "reference": ("target_id", "target_id", "text"),
    "number": ("value", "value", "number"),
    "date": ("low", "high", "moment"),
    "quantity": ("low", "high", "number"),
}


@dataclass(frozen=True)
class SearchRequest:
    """A search: its type, its parameters as sent, `Prefer: handling=lenient`, and the types
    the caller may read (None: all), which chains, `_has` and `_include` may look into."""

    resource_type: str
    parameters: Sequence[tuple[str, str]]
    lenient: bool = False
    readable: frozenset[str] | None = None

    def values(self, name: str) -> list[str]:
        return [value for key, value in self.parameters if key == name]


class UnknownParameter(ApiError):
    """A parameter the type does not have: ignored under `Prefer: handling=lenient`."""


def is_result_parameter(name: str) -> bool:
    return name in RESULT_PARAMETERS or name.partition(":")[0] in ("_include", "_revinclude")


def constants(items: Sequence[str]) -> list[BindParameter[str]]:
    """Strings of a search's shape (types, parameter names) as separate bind parameters, so
    that an IN over them compiles to plain SQL (a list of values would be expanded per run)."""
    return [literal(item) for item in items]


@dataclass(frozen=True)
class Viewer:
    """A caller's `Viewpoint` as bound values of a query: its organisation and the moment
    (values), and whether data shared with it counts (`sharing`: part of the shape; writes
    match their conditions among their own organisation's data only)."""

    organisation: Slot
    actor: Slot
    at: Slot
    sharing: bool


def viewer(values: Values, viewpoint: Viewpoint) -> Viewer:
    return Viewer(
        values.slot(viewpoint.organisation_id),
        values.slot(viewpoint.actor),
        values.slot(viewpoint.at),
        viewpoint.sharing,
    )


@dataclass(frozen=True)
class _Scope:
    viewer: Viewer
    readable: frozenset[str] | None

    def require_readable(self, resource_type: str, name: str) -> None:
        if self.readable is not None and resource_type not in self.readable:
            raise invalid(
                f"{name} looks into {resource_type}, which your access token may not read.",
                name,
                403,
            )


def visible(row: Any, viewer: Viewer, leading: bool = True) -> list[ColumnElement[bool]]:
    """The conditions under which a resource row may be used at all: a current resource that
    the viewer's organisation holds, or whose patient's data is shared with it or opened by
    the viewer's break-glass (`access`).
    Not `leading`: the conditions must not drive the query through an index (a few rows
    found by key do), so they compare expressions instead of the columns."""
    organisation = row.organisation_id if leading else row.organisation_id.concat("")
    own = organisation == viewer.organisation
    if not viewer.sharing:
        return [own, row.deleted.is_(False)]
    return [or_(own, _readable(row, viewer)), row.deleted.is_(False)]


def _readable(row: Any, viewer: Viewer) -> ColumnElement[bool]:
    readable: ColumnElement[bool] = readable_record(
        row.patient_id, viewer.organisation, viewer.actor, viewer.at
    )
    return readable


def _index_row(
    row: Any,
    resource_type: str,
    kind: str,
    names: tuple[str, ...],
    where: Sql | None,
    negate: bool,
    probe: bool,
) -> ColumnElement[bool]:
    """Whether the row has (`negate`: has no) index row named one of `names` matching `where`
    (several: a union parameter's members, see `SearchParameter.members`). Positive:
    an IN over the uncorrelated index rows, which both databases start from (SQLite would run
    a correlated EXISTS once per row of the type) — unless `probe`: another, more selective
    condition drives the search, and this one is checked per candidate row by a correlated
    EXISTS instead of being read in full (`code=718-7` matches a third of all Observations).
    Negative: a correlated NOT EXISTS, which PostgreSQL runs as an anti-join after the other
    conditions rather than reading every excluded row first.

    The index table is not aliased: each subquery is a scope of its own with the table once."""
    table = TABLES[kind].c
    named = table.param == names[0] if len(names) == 1 else table.param.in_(constants(names))
    conditions = [table.resource_type == resource_type, named]
    if where is not None:
        conditions.append(where.build(table))
    if negate:
        return ~exists().where(table.rid == row.rid, *conditions)
    if probe:
        # Compared as an expression, the type cannot lead an index: without statistics
        # SQLite would otherwise take the lookup index (more equalities) and scan every row
        # of the value per candidate; the `rid` index finds the candidate's few rows directly.
        unindexed = [table.resource_type.concat("") == resource_type, *conditions[1:]]
        return exists().where(table.rid == row.rid, *unindexed)
    return row.rid.in_(select(table.rid).where(*conditions))  # type: ignore[no-any-return]


def _has_index_row(
    resource_type: str,
    kind: str,
    names: Sequence[str],
    where: Sql | None = None,
    negate: bool = False,
    probe: bool = False,
) -> Sql:
    return Sql(_index_row, (resource_type, kind, tuple(names), where, negate, probe))


def _alternatives(value: str, name: str) -> list[str]:
    """The comma-separated values of a parameter (any of them matches), at most
    MAX_ALTERNATIVES: databases refuse deeper conditions (SQLite: an expression depth of
    1,000, which 500 prefix matches in a chain exceed) or more parameters (PostgreSQL:
    32,767) than a much longer list would need."""
    texts = split_escaped(value, ",")
    if not all(texts):
        raise invalid(f"{name} needs a value.", name)
    if len(texts) > MAX_ALTERNATIVES:
        raise invalid(f"{name} has more than {MAX_ALTERNATIVES} values; search in parts.", name)
    return texts


def _modified(parameter: SearchParameter, name: str, modifier: str | None) -> tuple[str, str, bool]:
    """The index (type, parameter row name) a modifier searches, and whether it negates."""
    kind, code = parameter.type, parameter.code
    if modifier is None:
        return kind, code, False
    if kind == "token" and modifier in ("not", "text", "of-type"):
        return {
            "not": ("token", code, True),
            "text": ("string", f"{code}:text", False),
            "of-type": ("token", f"{code}:of-type", False),
        }[modifier]
    if kind == "reference" and modifier == "identifier":
        return "token", f"{code}:identifier", False
    if (
        (kind == "string" and modifier in ("exact", "contains"))
        or (kind == "uri" and modifier in ("above", "below", "contains"))
        or (kind == "reference" and modifier in _target_types(parameter))
    ):
        return kind, code, False
    if kind == "token" and modifier in ("above", "below", "in", "not-in"):
        raise invalid(
            f"{name}: :{modifier} needs a terminology server, which medicus has not.", name
        )
    raise invalid(f"The modifier :{modifier} is not supported on {code} ({kind}).", name)


def _target_types(parameter: SearchParameter) -> Sequence[str]:
    return parameter.targets or sorted(resource_types())


def _missing(resource_type: str, parameter: SearchParameter, name: str, value: str) -> Sql:
    if value not in ("true", "false"):
        raise invalid(f"{name} must be true or false.", name)
    if parameter.code in ("_id", "_lastUpdated"):
        return FALSE if value == "true" else TRUE
    kind, param = parameter.type, parameter.code
    if kind == "composite":
        kind, param = parameter.components[0].type, f"{param}$0"
    names = parameter.index_names(param)
    return _has_index_row(resource_type, kind, names, negate=value == "true")


def _same_element(
    row: Any, resource_type: str, code: str, kinds: tuple[str, ...], parts: tuple[Sql, ...]
) -> ColumnElement[bool]:
    """A composite's components on rows of the same element (`grp`) of one resource."""
    tables = [TABLES[kind].alias().c for kind in kinds]
    conditions: list[ColumnElement[bool]] = []
    for number, (table, part) in enumerate(zip(tables, parts, strict=True)):
        conditions += [
            table.resource_type == resource_type,
            table.param == f"{code}${number}",
            part.build(table),
        ]
        if number:
            conditions += [table.rid == tables[0].rid, table.grp == tables[0].grp]
    return row.rid.in_(select(tables[0].rid).where(*conditions))  # type: ignore[no-any-return]


def _composite(
    values: Values, resource_type: str, parameter: SearchParameter, name: str, value: str
) -> Sql:
    """All components on rows of the same element (`grp`), e.g. `code$gt10`."""
    parts = split_escaped(value, "$")
    if len(parts) != len(parameter.components):
        raise invalid(f"{name} needs {len(parameter.components)} values joined by $.", name)
    kinds = tuple(component.type for component in parameter.components)
    matched = tuple(
        matches(values, kind, part, name, None) for kind, part in zip(kinds, parts, strict=True)
    )
    return Sql(_same_element, (resource_type, parameter.code, kinds, matched))


def _members(resource_type: str, parameter: SearchParameter) -> list[SearchParameter]:
    """The parameters whose rows answer `parameter`: its members, or itself."""
    every = parameters_of(resource_type)
    return [every[member] for member in parameter.members] or [parameter]


def _resource_column(
    values: Values, parameter: SearchParameter, name: str, texts: list[str], modifier: str | None
) -> Sql:
    """`_id` and `_lastUpdated` are columns of the resource row, not index rows."""
    if parameter.code == "_id":
        if modifier not in (None, "not"):
            raise invalid(f"The modifier :{modifier} is not supported on _id.", name)
        found = one_of("fhir_id", values.many(texts))
        return negated(found) if modifier == "not" else found
    if modifier is not None:
        raise invalid(f"The modifier :{modifier} is not supported on _lastUpdated.", name)
    return any_of(
        *[point_condition(values, "last_updated", *parse_date(text, name)) for text in texts]
    )


def _parameter(
    values: Values,
    resource_type: str,
    parameter: SearchParameter,
    name: str,
    modifier: str | None,
    value: str,
    probe: bool = False,
) -> Sql:
    if modifier == "missing":
        return _missing(resource_type, parameter, name, value)
    texts = _alternatives(value, name)
    if parameter.code in ("_id", "_lastUpdated"):
        return _resource_column(values, parameter, name, texts, modifier)
    if parameter.type == "composite":
        if modifier is not None:
            raise invalid(f"The modifier :{modifier} is not supported on {parameter.code}.", name)
        return any_of(
            *[
                _composite(values, resource_type, part, name, text)
                for part in _members(resource_type, parameter)
                for text in texts
            ]
        )
    kind, param, negate = _modified(parameter, name, modifier)
    match_modifier = None if negate or kind != parameter.type else modifier
    if (
        parameter.type == "token"
        and modifier == "of-type"
        and any(len(split_escaped(text, "|")) != 3 for text in texts)
    ):
        raise invalid(f"{name} must be system|code|value (the identifier's type and value).", name)
    where = any_of(*[matches(values, kind, text, name, match_modifier) for text in texts])
    return _has_index_row(resource_type, kind, parameter.index_names(param), where, negate, probe)


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
    scope: _Scope,
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
    if target and target not in _target_types(parameter):
        raise invalid(f"{name}: {code} does not refer to {target}.", name)
    following = rest.split(".")[0].split(":")[0]
    candidates = [
        kind
        for kind in ([target] if target else _target_types(parameter))
        if following == "_has" or following in parameters_of(kind)
    ]
    if not candidates:
        raise invalid(f"{name}: no type {code} refers to has a parameter {following}.", name)
    if target:
        scope.require_readable(target, name)
    targets = tuple(
        (kind, _condition(values, scope, kind, rest, value, name))
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
    values: Values, scope: _Scope, resource_type: str, key: str, value: str, name: str
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
    if resource_type not in _target_types(parameter):
        raise invalid(f"{name}: {source_type}.{code} does not refer to {resource_type}.", name)
    scope.require_readable(source_type, name)
    condition = _condition(values, scope, source_type, rest, value, name)
    return Sql(_referred_by, (resource_type, source_type, code, scope.viewer, condition))


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
    values: Values, scope: _Scope, resource_type: str, key: str, value: str, name: str
) -> Sql:
    """`_list=42`: what List/42 refers to in `entry.item` (its reference index rows), if that
    List is visible to the caller: another organisation's List, or a deleted one, names
    nothing, as if it did not exist. An IN over the row ids of the items (each found by type
    and id), so that the search starts from the List's few entries, not from every resource
    of the type (an IN over their ids did, on SQLite)."""
    if key != "_list":
        raise invalid(f"The modifier :{key.partition(':')[2]} is not supported on _list.", name)
    ids = _alternatives(value, name)
    if any(fhir_id.startswith("$") for fhir_id in ids):
        message = f"{name}: functional lists ({value}) are not supported; name a List by its id."
        raise invalid(message, name)
    scope.require_readable("List", name)
    return Sql(_listed, (resource_type, values.many(ids), scope.viewer))


def _condition(
    values: Values,
    scope: _Scope,
    resource_type: str,
    key: str,
    value: str,
    name: str,
    probe: bool = False,
) -> Sql:
    """The condition of parameter `key` (all of `name`, or what is left of it in a chain);
    `probe`: checked per row found by another condition (see `_index_row`)."""
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
    return _parameter(values, resource_type, parameter, name, modifier or None, value, probe)


def _selectivity(resource_type: str, name: str, value: str) -> int:
    """How few rows a parameter is likely to match (lower: fewer), without statistics: the
    search starts from the most selective parameter and checks the others per row. A
    reference (`subject=Patient/1`), an identifier or a chain names one thing; so, nearly,
    do a List's entries and one day (`birthdate=1964-05-17`: a name prefix matches more
    people as the database grows); a plain token (`code`, `status`) or a date range may
    match a large share."""
    code, _, modifier = name.partition(":")
    if code.startswith("_has") or code == "_list" or "." in code:
        return 1
    parameter = parameters_of(resource_type).get(code.split(".")[0])
    if parameter is None or modifier in ("missing", "not"):
        return 9
    if code == "_id" or parameter.type == "reference" or modifier in ("identifier", "of-type"):
        return 0
    if "identifier" in code or (_indexed_date(parameter) and _one_day_or_less(value)):
        return 1
    return {"string": 2, "token": 3, "uri": 3, "composite": 4}.get(parameter.type, 5)


def _indexed_date(parameter: SearchParameter) -> bool:
    """A date with index rows (`_lastUpdated` is a column without an index of its own)."""
    return parameter.type == "date" and parameter.code != "_lastUpdated"


def _one_day_or_less(value: str) -> bool:
    """An `eq` date of day precision or finer, alone (not an OR of several)."""
    moment = value.removeprefix("eq")
    return "," not in moment and len(moment) >= len("2026-01-01") and moment[:1].isdigit()


def _matching(
    row: Any,
    resource_type: str,
    viewer: Viewer,
    conditions: tuple[Sql, ...],
    start: str,
) -> Select[Any]:
    return select(*RESOURCES.c).where(
        *visible_of_type(row, resource_type, viewer, start),
        row.deleted.is_(False),
        *[condition.build(row) for condition in conditions],
    )


def visible_of_type(
    row: Any, resource_type: str, viewer: Viewer, start: str
) -> list[ColumnElement[bool]]:
    """The resources of the type that the viewer sees, written for the way the search starts
    (`_start`), so that SQLite (which plans without statistics) takes the index it should
    rather than every resource of the type."""
    own = row.organisation_id == viewer.organisation
    kind = row.resource_type == resource_type
    if not viewer.sharing:
        return [kind, own]
    # Compared as an expression, the type cannot lead an index.
    unindexed_kind = row.resource_type.concat("") == resource_type
    listed = readable_patients(viewer.organisation, viewer.actor, viewer.at)
    if start == "type":
        # Both index ranges: the organisation's resources of the type, and those of the
        # records it may read (listed first, as a per-row condition could use no index).
        return [or_(and_(own, kind), and_(row.patient_id.in_(listed), unindexed_kind))]
    if start == "broad":
        # The records it may read listed once: PostgreSQL may then walk the type's newest
        # rows and stop at a page (a common code), or start from the index rows (a rare one).
        return [unindexed_kind, or_(own, row.patient_id.in_(listed))]
    return [unindexed_kind if start == "rows" else kind, or_(own, _readable(row, viewer))]


def _start(name: str | None, selectivity: int) -> str:
    """How a search whose most selective parameter is `name` starts: from the ids it names
    (`_id`, `_list`, `_has`: the type's index by id), from index rows or a chain (`rows`:
    by row id; `broad`: index rows that may be a large share of the type's, a plain token or
    a date range), or from the type (`type`: no parameter, or one without an index of its
    own: the organisation's resources of the type, and those of the persons shared with
    it)."""
    if name is None:
        return "type"
    code, _, modifier = name.partition(":")
    if code in ("_id", "_list") or code.startswith("_has"):
        return "ids"
    if code == "_lastUpdated" or modifier in ("missing", "not"):
        return "type"
    return "broad" if selectivity >= _BROAD else "rows"


_BROAD = 3
"""From this selectivity (`_selectivity`) a parameter may match a large share of a type."""


def _driver(request: SearchRequest) -> tuple[int | None, str]:
    """The search parameter the search starts from (its place among the searched ones) and
    how it starts (`_start`)."""
    searched = [(n, v) for n, v in request.parameters if not is_result_parameter(n)]
    ranked = [_selectivity(request.resource_type, *parameter) for parameter in searched]
    driver = min(range(len(searched)), key=ranked.__getitem__, default=None)
    if driver is None:
        return None, _start(None, 0)
    return driver, _start(searched[driver][0], ranked[driver])


def planned_per_execution(request: SearchRequest) -> bool:
    """Whether the database should plan the search for its values each time (PostgreSQL):
    a broad search's best start depends on how common the value is (`code=718-7` is a third
    of all Observations, another code a few), which a plan made once for any value cannot
    know; its planning costs less than its execution anyway."""
    return _driver(request)[1] == "broad"


def build(values: Values, request: SearchRequest, viewpoint: Viewpoint) -> Sql:
    """The SELECT of matching current resources the viewpoint sees, unordered, unpaged."""
    for name, value in request.parameters:
        if "\x00" in name or "\x00" in value:
            # Nothing stored contains it, and PostgreSQL refuses it in a text parameter.
            raise invalid("A search parameter must not contain a NUL character (%00).", name)
    scope = _Scope(viewer(values, viewpoint), request.readable)
    searched = [(n, v) for n, v in request.parameters if not is_result_parameter(n)]
    driver, driving = _driver(request)
    conditions, start = [], _start(None, 0)
    for number, (name, value) in enumerate(searched):
        try:
            conditions.append(
                _condition(
                    values,
                    scope,
                    request.resource_type,
                    name,
                    value,
                    name,
                    probe=number != driver,
                )
            )
            start = driving if number == driver else start
        except UnknownParameter:
            if not request.lenient:
                raise
    if len(values.items) > MAX_VALUES:
        message = f"This search has more than {MAX_VALUES} values in all; search in parts."
        raise invalid(message, searched[-1][0])
    return Sql(_matching, (request.resource_type, scope.viewer, tuple(conditions), start))


@dataclass(frozen=True)
class SortKey:
    """One key of a search's order: its SQL expression (on the resource row), its direction,
    the kind of its values (`text`, `number`, `moment`, `rid`; what a paging cursor carries)
    and whether resources may lack a value (they come last in either direction, and first
    in the reverse order that pages backwards)."""

    expression: Sql
    descending: bool
    kind: str
    nullable: bool = False
    missing_first: bool = False

    def reversed(self) -> SortKey:
        """The key of the opposite order (to read the page before a resource)."""
        return replace(self, descending=not self.descending, missing_first=not self.missing_first)


def _column(row: Any, name: str) -> Any:
    return getattr(row, name)


def _nearest(row: Any, resource_type: str, code: str, centre: tuple[float, float, float]) -> Any:
    table = TABLES["special"].alias().c
    return (
        select(func.min(squared_chord(table, *centre)))
        .where(
            table.rid == row.rid,
            table.resource_type == resource_type,
            table.param == code,
        )
        .scalar_subquery()
    )


def near_point(request: SearchRequest) -> tuple[float, float] | None:
    """The one point a search's `near` is about (None: no `near`, or several points), whose
    distance each match carries."""
    every = parameters_of(request.resource_type)
    points = [
        (name, point)
        for name, value in request.parameters
        if name in every and every[name].type == "special" and every[name].searchable
        for point in split_escaped(value, ",")
    ]
    if len(points) != 1:
        return None
    centre = circle(points[0][1], points[0][0])
    return centre.latitude, centre.longitude


def _near_key(request: SearchRequest, code: str, descending: bool) -> SortKey:
    """`_sort=near`: by the distance from the search's one `near` point (to a resource's
    closest position; as its chord, which grows with the distance, see geo.py). The point is
    part of the statement's shape: such searches are compiled per point."""
    points = [point for value in request.values(code) for point in split_escaped(value, ",")]
    if len(points) != 1:
        raise invalid(f"_sort={code} needs one {code} parameter with one point.", "_sort")
    centre = circle(points[0], code)
    distance = Sql(
        _nearest,
        (request.resource_type, code, on_sphere(centre.latitude, centre.longitude)),
    )
    return SortKey(distance, descending, "number", nullable=True)


def _sort_value(
    row: Any, resource_type: str, kind: str, names: tuple[str, ...], descending: bool
) -> Any:
    """A resource's lowest value of the parameter ascending, its highest descending."""
    table = TABLES[kind].alias().c
    lowest, highest, _ = _SORT_COLUMNS[kind]
    aggregate = (
        func.max(getattr(table, highest)) if descending else func.min(getattr(table, lowest))
    )
    return (
        select(aggregate)
        .where(
            table.rid == row.rid,
            table.resource_type == resource_type,
            table.param.in_(constants(names)),
        )
        .scalar_subquery()
    )


_ID, _LAST_UPDATED, _RID = (Sql(_column, (name,)) for name in ("fhir_id", "last_updated", "rid"))


def _sort_key(request: SearchRequest, key: str) -> SortKey:
    resource_type = request.resource_type
    descending, code = key.startswith("-"), key.removeprefix("-")
    if code == "_id":
        return SortKey(_ID, descending, "text")
    if code == "_lastUpdated":
        return SortKey(_LAST_UPDATED, descending, "moment")
    parameter = parameters_of(resource_type).get(code)
    if parameter is not None and parameter.type == "special" and parameter.searchable:
        return _near_key(request, code, descending)
    if parameter is None or not parameter.searchable or parameter.type not in _SORT_COLUMNS:
        raise invalid(f"_sort: {code} is not a parameter of {resource_type} to sort by.", "_sort")
    names = tuple(parameter.index_names(code))
    value = Sql(_sort_value, (resource_type, parameter.type, names, descending))
    return SortKey(value, descending, _SORT_COLUMNS[parameter.type][2], nullable=True)


def sort_keys(request: SearchRequest) -> list[SortKey]:
    """The order `_sort` asks for (several keys, `-` descending; a resource's lowest value
    ascending, its highest descending), the row id breaking ties so that every resource has a
    place of its own. Without `_sort`: the most recently created first, by row id alone, which
    an update does not change (`_lastUpdated` does, and would move a resource across pages)."""
    keys = [key for value in request.values("_sort") for key in value.split(",")]
    if not keys:
        return [SortKey(_RID, True, "rid")]
    if not all(keys):
        raise invalid("_sort needs parameter names separated by commas.", "_sort")
    if len(keys) > MAX_SORT_KEYS:
        raise invalid(f"_sort takes at most {MAX_SORT_KEYS} parameters.", "_sort")
    columns = [_sort_key(request, key) for key in keys]
    return [*columns, SortKey(_RID, False, "rid")]


def _where(row: Any, statement: Sql, condition: Sql) -> Select[Any]:
    return statement.build(row).where(condition.build(row))  # type: ignore[no-any-return]


def narrowed(statement: Sql, condition: Sql) -> Sql:
    """`statement` with one condition more."""
    return Sql(_where, (statement, condition))


def _page(
    row: Any, statement: Sql, keys: tuple[SortKey, ...], limit: Slot, offset: Slot
) -> Select[Any]:
    labelled: list[Label[Any]] = [
        key.expression.build(row).label(f"sort_{number}") for number, key in enumerate(keys)
    ]
    order = []
    for key, column in zip(keys, labelled, strict=True):
        direction = column.desc() if key.descending else column.asc()
        # Only where a value may be missing: PostgreSQL would not read the row id's index
        # backwards for `DESC NULLS LAST`.
        if key.nullable:
            direction = direction.nulls_first() if key.missing_first else direction.nulls_last()
        order.append(direction)
    selected: Select[Any] = statement.build(row)
    return selected.add_columns(*labelled).order_by(*order).limit(limit).offset(offset)


def page(values: Values, statement: Sql, keys: Sequence[SortKey], size: int, offset: int) -> Sql:
    """`size` resources of `statement` from `offset` on, in the order of `keys`, those without
    a value last; each key's value is a column after the resource (the last one's values are
    where the next page starts)."""
    return Sql(_page, (statement, tuple(keys), values.slot(size), values.slot(offset)))


def total_mode(request: SearchRequest, accurate: bool) -> str:
    """How to count: `none`, `estimate` or `accurate` (`_summary=count` is accurate)."""
    if request.values("_summary") == ["count"]:
        return "accurate"
    modes = request.values("_total")
    if len(modes) > 1 or (modes and modes[0] not in ("none", "estimate", "accurate")):
        raise invalid("_total must be none, estimate or accurate.", "_total")
    return "accurate" if accurate else (modes[0] if modes else "default")


def _counted(row: Any, statement: Sql, limit: Slot | None) -> Select[Any]:
    inner = statement.build(row).with_only_columns(row.rid)
    if limit is not None:
        inner = inner.limit(limit)
    return select(func.count()).select_from(inner.subquery())


def count_of(values: Values, statement: Sql, limit: int | None = None) -> Sql:
    """The number of matches (counting at most `limit`, for an estimate of bounded cost)."""
    return Sql(_counted, (statement, None if limit is None else values.slot(limit)))


def _effective(row: Any) -> Any:
    """An Observation's latest `date` (the end of its effective[x]), as `_sort=-date` orders.
    Compared as an expression, the type cannot lead an index: the row's own few date rows
    are found by `rid`."""
    table = TABLES["date"].alias("effective").c
    return (
        select(func.max(table.high))
        .where(
            table.rid == row.rid,
            table.resource_type.concat("") == "Observation",
            table.param == "date",
        )
        .scalar_subquery()
    )


def _lastn(row: Any, statement: Sql, newest: Slot, limit: Slot) -> Select[Any]:
    """The matches of `statement` that are among the `newest` of their patient's
    Observations of one code (system and code of any of their codings), newest first by
    `_effective` (undated last), the row id breaking ties: a window over the code rows of
    the matches, each found by its row id (never every Observation's codes)."""
    matched = statement.build(row).subquery("matched")
    token = TABLES["token"].alias("codes")
    codes = token.c
    ranked = (
        select(
            matched.c.rid,
            func.row_number()
            .over(
                partition_by=(matched.c.patient_id, codes.system, codes.code),
                order_by=(_effective(matched.c).desc().nulls_last(), matched.c.rid.desc()),
            )
            .label("place"),
        )
        .join(
            token,
            and_(
                codes.rid == matched.c.rid,
                codes.resource_type.concat("") == "Observation",
                codes.param == "code",
            ),
        )
        .subquery("ranked")
    )
    chosen = select(ranked.c.rid).where(ranked.c.place <= newest)
    return (
        select(*RESOURCES.c)
        .where(row.rid.in_(chosen))
        .order_by(_effective(row).desc().nulls_last(), row.rid.desc())
        .limit(limit)
    )


def lastn(
    values: Values, request: SearchRequest, viewpoint: Viewpoint, newest: int, limit: int
) -> Sql:
    """`Observation/$lastn`: of the Observations the search `request` finds (what the
    viewpoint sees), the `newest` of each patient and code, newest first, at most `limit`."""
    return Sql(_lastn, (build(values, request, viewpoint), values.slot(newest), values.slot(limit)))
