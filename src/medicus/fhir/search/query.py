"""FHIR search parameters into one SQL query: each parameter an EXISTS over its index table
(repeated parameters AND, comma-separated values OR), the caller's organisation a condition of
the same query, so that nothing the caller may not see is ever read or counted."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, exists, func, not_, or_, select
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql import Select

from medicus.core.errors import ApiError, ErrorDetail
from medicus.fhir.models import (
    DateIndexRow,
    FhirResourceRow,
    ReferenceIndexRow,
    StringIndexRow,
    TokenIndexRow,
)
from medicus.fhir.search.extract import date_range, normalise
from medicus.fhir.search.parameters import INDEXED_TYPES, parameters_of

RESULT_PARAMETERS = frozenset({"_count", "_total", "_format", "_offset"})
_PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb")


@dataclass(frozen=True)
class SearchRequest:
    resource_type: str
    parameters: Sequence[tuple[str, str]]
    lenient: bool = False


def _invalid(message: str, name: str) -> ApiError:
    return ApiError(
        400, message, errors=[ErrorDetail(message, expression=name)], issue_type="invalid"
    )


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _token(resource_type: str, code: str, value: str) -> ColumnElement[bool]:
    table = TokenIndexRow
    conditions = [
        table.rid == FhirResourceRow.rid,
        table.resource_type == resource_type,
        table.param == code,
    ]
    if "|" in value:
        system, token = value.split("|", 1)
        if token:
            conditions.append(table.code == token)
        conditions.append(table.system.is_(None) if system == "" else table.system == system)
    else:
        conditions.append(table.code == value)
    return exists().where(*conditions)


def _string(resource_type: str, code: str, value: str, modifier: str | None) -> ColumnElement[bool]:
    table = StringIndexRow
    wanted = normalise(value)
    if modifier == "exact":
        match = table.value == wanted
    elif modifier == "contains":
        match = table.value.like(f"%{_escape_like(wanted)}%", escape="\\")
    else:
        match = table.value.like(f"{_escape_like(wanted)}%", escape="\\")
    return exists().where(
        table.rid == FhirResourceRow.rid,
        table.resource_type == resource_type,
        table.param == code,
        match,
    )


def _reference(
    resource_type: str, code: str, value: str, modifier: str | None
) -> ColumnElement[bool]:
    table = ReferenceIndexRow
    parts = value.split("/_history/")[0].rstrip("/").split("/")
    conditions = [
        table.rid == FhirResourceRow.rid,
        table.resource_type == resource_type,
        table.param == code,
        table.target_id == parts[-1],
    ]
    target_type = parts[-2] if len(parts) >= 2 else modifier
    if target_type:
        conditions.append(table.target_type == target_type)
    return exists().where(*conditions)


def _date_condition(
    low: InstrumentedAttribute[dt.datetime],
    high: InstrumentedAttribute[dt.datetime],
    prefix: str,
    wanted: tuple[dt.datetime, dt.datetime],
) -> ColumnElement[bool]:
    """FHIR's prefix semantics on ranges ([low, high) of the value and of the target)."""
    start, end = wanted
    equal = and_(low >= start, high <= end)
    return {
        "eq": equal,
        "ne": not_(equal),
        "gt": high > end,
        "lt": low < start,
        "ge": high > start,
        "le": low < end,
        "sa": low >= end,
        "eb": high <= start,
    }[prefix]


def _point_condition(
    moment: InstrumentedAttribute[dt.datetime], prefix: str, wanted: tuple[dt.datetime, dt.datetime]
) -> ColumnElement[bool]:
    """The same semantics for a point in time (such as `_lastUpdated`)."""
    start, end = wanted
    equal = and_(moment >= start, moment < end)
    return {
        "eq": equal,
        "ne": not_(equal),
        "gt": moment >= end,
        "lt": moment < start,
        "ge": moment >= start,
        "le": moment < end,
        "sa": moment >= end,
        "eb": moment < start,
    }[prefix]


def _split_prefix(value: str) -> tuple[str, str]:
    if value[:2] in _PREFIXES and not value[:2].isdigit():
        return value[:2], value[2:]
    return "eq", value


def _date(resource_type: str, code: str, name: str, value: str) -> ColumnElement[bool]:
    prefix, text = _split_prefix(value)
    wanted = date_range(text)
    if wanted is None:
        raise _invalid(f"'{value}' is not a date for {name}.", name)
    if code == "_lastUpdated":
        return _point_condition(FhirResourceRow.last_updated, prefix, wanted)
    table = DateIndexRow
    return exists().where(
        table.rid == FhirResourceRow.rid,
        table.resource_type == resource_type,
        table.param == code,
        _date_condition(table.low, table.high, prefix, wanted),
    )


def _value_condition(
    resource_type: str, name: str, code: str, kind: str, modifier: str | None, value: str
) -> ColumnElement[bool]:
    if code == "_id":
        return FhirResourceRow.fhir_id == value
    if kind == "token":
        return _token(resource_type, code, value)
    if kind == "string":
        return _string(resource_type, code, value, modifier)
    if kind == "reference":
        return _reference(resource_type, code, value, modifier)
    return _date(resource_type, code, name, value)


def _condition(resource_type: str, name: str, value: str) -> ColumnElement[bool] | None:
    code, _, modifier = name.partition(":")
    parameter = parameters_of(resource_type).get(code)
    if parameter is None or parameter.type not in INDEXED_TYPES:
        return None
    if modifier and modifier not in ("exact", "contains") and parameter.type != "reference":
        raise _invalid(f"The modifier :{modifier} is not supported on {code}.", name)
    values = [v for v in value.split(",") if v]
    if not values:
        raise _invalid(f"{name} needs a value.", name)
    alternatives = [
        _value_condition(resource_type, name, code, parameter.type, modifier or None, v)
        for v in values
    ]
    return or_(*alternatives) if len(alternatives) > 1 else alternatives[0]


def build(request: SearchRequest, organisation_id: str) -> Select[FhirResourceRow]:
    """The SELECT of matching current resources of `organisation_id`, unordered, unpaged."""
    conditions: list[ColumnElement[bool]] = [
        FhirResourceRow.resource_type == request.resource_type,
        FhirResourceRow.organisation_id == organisation_id,
        FhirResourceRow.deleted.is_(False),
    ]
    for name, value in request.parameters:
        if name in RESULT_PARAMETERS:
            continue
        condition = _condition(request.resource_type, name, value)
        if condition is None:
            if request.lenient:
                continue
            raise _invalid(
                f"{name} is not a search parameter of {request.resource_type} "
                "that medicus supports.",
                name,
            )
        conditions.append(condition)
    return select(FhirResourceRow).where(*conditions)


def count_of(statement: Select[FhirResourceRow]) -> Select[int]:
    return select(func.count()).select_from(statement.order_by(None).subquery())
