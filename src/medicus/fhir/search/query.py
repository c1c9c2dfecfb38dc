"""FHIR search parameters into one SQL query: each parameter an IN over the matching rows of
its index table (repeated parameters AND, comma-separated values OR), chains, `_has` and
`_list` an IN over the referenced or referring resources, `_sort` correlated subqueries, and
what the caller may see (its organisation's data and data shared with it, see `access`) a
condition of the query and of every resource a chain or a list looks into, so that nothing
the caller may not see is ever read, counted or used to select.

The query is a template (template.py): parsing a search yields its shape, a tree of `Sql`
pieces, and its values; the shape is compiled once and run with each search's values.

The pieces: the search as asked (request.py), what the caller may see (visibility.py), one
parameter's condition (conditions.py), chains, `_has` and `_list` (chains.py), where the
search starts (planning.py), and its order and pages (sorting.py). This module puts them
together into the statements the repository runs: the matches, a count, `$lastn`."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.sql import Select

from medicus.access.policy import Viewpoint
from medicus.fhir.models import RESOURCES
from medicus.fhir.search.chains import search_condition
from medicus.fhir.search.conditions import Check
from medicus.fhir.search.match import TABLES, invalid
from medicus.fhir.search.ordering import driven, ordering
from medicus.fhir.search.pairs import paired
from medicus.fhir.search.planning import Start, driving_parameter
from medicus.fhir.search.request import (
    MAX_VALUES,
    SearchRequest,
    UnknownParameter,
    is_result_parameter,
)
from medicus.fhir.search.template import Slot, Sql, Values, unindexed
from medicus.fhir.search.visibility import Scope, Viewer, viewer, visible_of_type


def _matching(
    row: Any,
    resource_type: str,
    viewer: Viewer,
    conditions: tuple[Sql, ...],
    start: Start,
) -> Select[Any]:
    return select(*RESOURCES.c).where(
        *visible_of_type(row, resource_type, viewer, start),
        row.deleted.is_(False),
        *[condition.build(row) for condition in conditions],
    )


def _check(driving: bool, ordered: bool, start: Start) -> Check:
    """How a searched parameter is checked: read if it drives the search, else per row, and
    never a join to start from where the search walks its driving index in order or where a
    reference, an identifier or ids drive it: a plan made once for any value (as PostgreSQL
    plans these) estimates `code=…` by the average token, which the unique identifiers make
    rare, and would start from every Observation of the code instead of the patient's few."""
    if driving:
        return Check.READ
    if ordered or start in (Start.ROWS, Start.IDS):
        return Check.PER_ROW
    return Check.PROBE


def build(
    values: Values,
    request: SearchRequest,
    viewpoint: Viewpoint,
    pairs: bool = False,
    ordered: bool = False,
) -> Sql:
    """The SELECT of matching current resources the viewpoint sees, unpaged. `pairs`: whether
    pair rows may answer a token and a date (pairs.py), which only a caller that knows every
    resource has them may say (`search_repository.PairRows`). `ordered`: the search will be
    ordered by `sorting.sort_keys`, which may order by the driving index (ordering.py): its
    rows are then joined (without, the SELECT is a plain set of resources)."""
    for name, value in request.parameters:
        if "\x00" in name or "\x00" in value:
            # Nothing stored contains it, and PostgreSQL refuses it in a text parameter.
            raise invalid("A search parameter must not contain a NUL character (%00).", name)
    scope = Scope(viewer(values, viewpoint), request.readable)
    searched = [(n, v) for n, v in request.parameters if not is_result_parameter(n)]
    driving = driving_parameter(request)
    conditions, start = [], Start.TYPE
    order = ordering(request) if ordered else None
    answered = None if order is None else driven(values, request, order, pairs)
    if answered is None and pairs:
        answered = paired(values, request.resource_type, searched, driving.place)
    if answered is not None:
        conditions.append(answered.condition)
        start = driving.start
    for place, (name, value) in enumerate(searched):
        if answered is not None and place in answered.places:
            continue
        try:
            check = _check(
                place == driving.place and answered is None, order is not None, driving.start
            )
            conditions.append(
                search_condition(
                    values, scope, request.resource_type, name, value, name, check=check
                )
            )
            start = start if check is not Check.READ else driving.start
        except UnknownParameter:
            if not request.lenient:
                raise
    if len(values.items) > MAX_VALUES:
        message = f"This search has more than {MAX_VALUES} values in all; search in parts."
        raise invalid(message, searched[-1][0])
    return Sql(_matching, (request.resource_type, scope.viewer, tuple(conditions), start))


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
    The type must not lead an index on SQLite (`unindexed`): the row's own few date rows
    are found by `rid`."""
    table = TABLES["date"].alias("effective").c
    return (
        select(func.max(table.high))
        .where(
            table.rid == row.rid,
            unindexed(table.resource_type) == "Observation",
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
                unindexed(codes.resource_type) == "Observation",
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
    values: Values,
    request: SearchRequest,
    viewpoint: Viewpoint,
    newest: int,
    limit: int,
    pairs: bool = False,
) -> Sql:
    """`Observation/$lastn`: of the Observations the search `request` finds (what the
    viewpoint sees), the `newest` of each patient and code, newest first, at most `limit`."""
    matches = build(values, request, viewpoint, pairs)
    return Sql(_lastn, (matches, values.slot(newest), values.slot(limit)))
