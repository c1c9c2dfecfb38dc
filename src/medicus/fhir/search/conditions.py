"""The condition of one search parameter on the searched resources: an IN over the matching
rows of its index table (comma-separated values OR), `:missing`, `:not` and the other
modifiers, composites, and the columns `_id` and `_lastUpdated`. Chains, `_has` and `_list`
build on these (chains.py)."""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum
from operator import eq
from typing import Any

from sqlalchemy import ColumnElement, exists, select

from medicus.fhir.definitions import resource_types
from medicus.fhir.search.match import (
    TABLES,
    invalid,
    matches,
    parse_date,
    point_condition,
    split_escaped,
)
from medicus.fhir.search.parameters import SearchParameter, parameters_of
from medicus.fhir.search.phonetics import search_codes
from medicus.fhir.search.request import MAX_ALTERNATIVES
from medicus.fhir.search.template import (
    FALSE,
    TRUE,
    Sql,
    Values,
    all_of,
    any_of,
    compare,
    constants,
    negated,
    one_of,
    unindexed,
)


class Check(Enum):
    """How a search checks a parameter's index rows."""

    READ = "read"
    """An IN over the matching index rows: the search starts from them."""
    PROBE = "probe"
    """A correlated EXISTS per candidate row: another, more selective condition drives the
    search (`code=718-7` matches a third of all Observations, which it need not read)."""
    PER_ROW = "per-row"
    """The same, which PostgreSQL may not turn into a join to start from (`OFFSET 0` keeps
    the EXISTS a check): the search walks its driving index in order (ordering.py), and a
    join from the other rows would sort all of them (`family=…&gender=female`: every woman)."""


def _index_row(
    row: Any,
    resource_type: str,
    kind: str,
    names: tuple[str, ...],
    where: Sql | None,
    negate: bool,
    check: Check,
) -> ColumnElement[bool]:
    """Whether the row has (`negate`: has no) index row named one of `names` matching `where`
    (several: a union parameter's members, see `SearchParameter.members`), checked as `check`
    says: both databases start from an uncorrelated IN (SQLite would run a correlated EXISTS
    once per row of the type). Negative: a correlated NOT EXISTS, which PostgreSQL runs as an
    anti-join after the other conditions rather than reading every excluded row first.

    The index table is not aliased: each subquery is a scope of its own with the table once."""
    table = TABLES[kind].c
    named = table.param == names[0] if len(names) == 1 else table.param.in_(constants(names))
    conditions = [table.resource_type == resource_type, named]
    if where is not None:
        conditions.append(where.build(table))
    if negate:
        return ~exists().where(table.rid == row.rid, *conditions)
    if check is not Check.READ:
        # On SQLite the type must not lead an index: without statistics SQLite would
        # otherwise take the lookup index (more equalities) and scan every row of the value
        # per candidate; the `rid` index finds the candidate's few rows directly.
        hidden = [unindexed(table.resource_type) == resource_type, *conditions[1:]]
        found = select(table.rid).where(table.rid == row.rid, *hidden)
        return exists(found.offset(0) if check is Check.PER_ROW else found)
    return row.rid.in_(select(table.rid).where(*conditions))  # type: ignore[no-any-return]


def _has_index_row(
    resource_type: str,
    kind: str,
    names: Sequence[str],
    where: Sql | None = None,
    negate: bool = False,
    check: Check = Check.READ,
) -> Sql:
    return Sql(_index_row, (resource_type, kind, tuple(names), where, negate, check))


def alternatives(value: str, name: str) -> list[str]:
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
        or (kind == "reference" and modifier in target_types(parameter))
    ):
        return kind, code, False
    if kind == "token" and modifier in ("above", "below", "in", "not-in"):
        raise invalid(
            f"{name}: :{modifier} needs a terminology server, which medicus has not.", name
        )
    raise invalid(f"The modifier :{modifier} is not supported on {code} ({kind}).", name)


def target_types(parameter: SearchParameter) -> Sequence[str]:
    return parameter.targets or sorted(resource_types())


def _missing(resource_type: str, parameter: SearchParameter, name: str, value: str) -> Sql:
    if value not in ("true", "false"):
        raise invalid(f"{name} must be true or false.", name)
    if parameter.code in ("_id", "_lastUpdated"):
        return FALSE if value == "true" else TRUE
    if parameter.type == "composite":
        return _composite_missing(resource_type, parameter, value == "true")
    names = parameter.index_names(parameter.code)
    return _has_index_row(resource_type, parameter.type, names, negate=value == "true")


def _composite_missing(resource_type: str, parameter: SearchParameter, missing: bool) -> Sql:
    """A composite has a value if one of its members (or itself) has: an element with every
    component, which its first component's rows mark (`code$0`); for one that shares its
    components' rows (`SearchParameter.shared`), a row of each."""
    found = []
    for member in _members(resource_type, parameter):
        kinds = [component.type for component in member.components]
        names = member.shared or (f"{member.code}$0",)
        rows = [
            _has_index_row(resource_type, kind, [name], negate=missing)
            for kind, name in zip(kinds, names, strict=False)
        ]
        found.append(any_of(*rows) if missing else all_of(*rows))
    return all_of(*found) if missing else any_of(*found)


def _component_names(parameter: SearchParameter) -> tuple[str, ...]:
    """The `param` of each component's rows: `code$k`, or the parameters it shares."""
    count = len(parameter.components)
    return parameter.shared or tuple(f"{parameter.code}${number}" for number in range(count))


def _same_element(
    row: Any,
    resource_type: str,
    names: tuple[str, ...],
    kinds: tuple[str, ...],
    parts: tuple[Sql, ...],
    grouped: bool,
) -> ColumnElement[bool]:
    """A composite's components on rows of the same element (`grp`, if `grouped`; else the
    element is the resource) of one resource."""
    tables = [TABLES[kind].alias().c for kind in kinds]
    conditions: list[ColumnElement[bool]] = []
    for number, (table, part) in enumerate(zip(tables, parts, strict=True)):
        conditions += [
            table.resource_type == resource_type,
            table.param == names[number],
            part.build(table),
        ]
        if number:
            conditions.append(table.rid == tables[0].rid)
        if number and grouped:
            conditions.append(table.grp == tables[0].grp)
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
    names = _component_names(parameter)
    grouped = not parameter.shared
    return Sql(_same_element, (resource_type, names, kinds, matched, grouped))


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


def _sound_codes(value: str, name: str) -> list[str]:
    """The Kölner Phonetik codes a `phonetic` value asks for (search/phonetics.py); 400 for a
    value that is no name."""
    try:
        return search_codes(value)
    except ValueError as reason:
        raise invalid(f"{name} needs {reason}.", name) from None


def _sounding(
    values: Values,
    resource_type: str,
    parameter: SearchParameter,
    name: str,
    modifier: str | None,
    texts: list[str],
    check: Check,
) -> Sql:
    """Patient `phonetic`: a row of every code of one of the alternatives (one IN over the
    rows of any of the codes where each alternative has one)."""
    if modifier is not None:
        raise invalid(f"The modifier :{modifier} is not supported on {parameter.code}.", name)
    wanted = [_sound_codes(text, name) for text in texts]
    if all(len(codes) == 1 for codes in wanted):
        firsts = list(dict.fromkeys(codes[0] for codes in wanted))
        return sound_rows(values, resource_type, parameter.code, [firsts], check)
    return any_of(
        *[
            sound_rows(values, resource_type, parameter.code, [[c] for c in codes], check)
            for codes in wanted
        ]
    )


def sound_rows(
    values: Values, resource_type: str, code: str, groups: list[list[str]], check: Check
) -> Sql:
    """A `phonetic` row of one of the codes of each group (search/phonetics.py)."""
    return all_of(
        *[
            _has_index_row(
                resource_type,
                "string",
                [code],
                any_of(*[compare("value", eq, values.slot(sound)) for sound in group]),
                False,
                check,
            )
            for group in groups
        ]
    )


def parameter_condition(
    values: Values,
    resource_type: str,
    parameter: SearchParameter,
    name: str,
    modifier: str | None,
    value: str,
    check: Check = Check.READ,
) -> Sql:
    if modifier == "missing":
        return _missing(resource_type, parameter, name, value)
    texts = alternatives(value, name)
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
    if parameter.sounds:
        return _sounding(values, resource_type, parameter, name, modifier, texts, check)
    kind, param, negate = _modified(parameter, name, modifier)
    match_modifier = None if negate or kind != parameter.type else modifier
    if (
        parameter.type == "token"
        and modifier == "of-type"
        and any(len(split_escaped(text, "|")) != 3 for text in texts)
    ):
        raise invalid(f"{name} must be system|code|value (the identifier's type and value).", name)
    where = any_of(*[matches(values, kind, text, name, match_modifier) for text in texts])
    return _has_index_row(resource_type, kind, parameter.index_names(param), where, negate, check)
