"""SQL of FHIR searches as they run: a page of matches with its total, the resources they
include, `$lastn` and a patient's compartment (`$everything`). fhir/search builds the
statements; this module runs them through the reading connection."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    and_,
    exists,
    or_,
    select,
)

from medicus.access.policy import (
    Viewpoint,
    same_person,
)
from medicus.core.background import is_pending
from medicus.core.db import Database, Reading
from medicus.core.driver import AnySelect, DriverRow
from medicus.fhir.background import SEARCH_INDEX
from medicus.fhir.models import (
    RESOURCES,
    StoredResource,
)
from medicus.fhir.search import paging, query, sorting
from medicus.fhir.search.include import (
    MAX_INCLUDED,
    MAX_ITERATIONS,
    Found,
    Include,
    included,
    includes_of,
)
from medicus.fhir.search.match import TABLES
from medicus.fhir.search.request import SearchRequest
from medicus.fhir.search.template import Slot, Sql, Values, constants
from medicus.fhir.search.visibility import Viewer, viewer, visible

ESTIMATE_LIMIT = 10_000


class PairRows:
    """Whether every current resource has its pair rows (search/pairs.py), so that searches
    may be answered from them: not while the background update `fhir.search_index` that
    writes them for resources stored before migration 0024 is pending (a search answered
    from pair rows would miss those resources). One per process: once it has seen the update
    finished it never asks again (a later upgrade that rebuilds the index restarts the
    server); while the update is pending it asks at most every `recheck_seconds`. A failure
    to ask fails the search (as the database's unavailability fails it anyway), never takes
    the update for finished."""

    def __init__(
        self,
        database: Database,
        recheck_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._database = database
        self._recheck = recheck_seconds
        self._clock = clock
        self._complete = False
        self._next_check = float("-inf")

    async def complete(self) -> bool:
        if self._complete:
            return True
        now = self._clock()
        if now < self._next_check:
            return False
        self._next_check = now + self._recheck  # concurrent searches do not ask again
        self._complete = not await is_pending(self._database, SEARCH_INDEX)
        return self._complete


async def _fetch(reading: Reading, statement: Sql, values: Values) -> list[DriverRow]:
    return await reading.fetch_all(
        statement, lambda: statement.build(RESOURCES.c), values.parameters()
    )


async def _resources(reading: Reading, statement: Sql, values: Values) -> list[StoredResource]:
    return [StoredResource(*row) for row in await _fetch(reading, statement, values)]


async def _count(reading: Reading, values: Values, statement: Sql, limit: int | None = None) -> int:
    (found,) = await _fetch(reading, query.count_of(values, statement, limit), values)
    return int(found[0] or 0)


@dataclass(frozen=True)
class SearchPage:
    rows: Sequence[StoredResource]
    next_values: tuple[Any, ...] | None  # the last row's sort values if a page follows
    previous_values: tuple[Any, ...] | None  # the first row's if a page comes before
    total: int | None
    included: list[StoredResource]


async def search_page(
    reading: Reading,
    request: SearchRequest,
    viewpoint: Viewpoint,
    size: int,
    offset: int,
    accurate: bool,
    keys: Sequence[sorting.SortKey],
    position: paging.Position | None,
    pairs: bool,
) -> SearchPage:
    """One page of a search (ONE query, what the viewpoint sees inside it) in the order of `keys`,
    after or before `position` (a cursor's), its total as `_total` asks, what it includes
    (`_summary=count`: only the total), and the sort values its paging links start from. The
    page before a resource is read in the reverse order and turned round. A position only
    bounds the page query: totals count the whole search. `pairs`: whether pair rows may
    answer it (`PairRows`)."""
    values = Values()
    statement = query.build(values, request, viewpoint, pairs, ordered=True)
    includes = includes_of(request)
    mode = query.total_mode(request, accurate)
    if request.values("_summary") == ["count"]:
        return SearchPage([], None, None, await _count(reading, values, statement), [])
    backward = position is not None and position.backward
    order = [key.reversed() for key in keys] if backward else list(keys)
    bounded = (
        statement
        if position is None
        else sorting.narrowed(statement, paging.after(values, order, position.values))
    )
    found = await _fetch(reading, sorting.page(values, bounded, order, size + 1, offset), values)
    more = len(found) > size
    found = found[:size][::-1] if backward else found[:size]
    width = len(RESOURCES.c)
    matched = [StoredResource(*row[:width]) for row in found]
    known = offset if position is None else None
    total = await _total(reading, values, statement, mode, len(matched), more, known)
    extra = await _included(reading, includes, matched, viewpoint, request.readable)
    # Forwards a page came from the one before (if any is left); backwards from the one after.
    following = found and (more or backward)
    preceding = found and (more if backward else position is not None)
    return SearchPage(
        matched,
        tuple(found[-1][width:]) if following else None,
        tuple(found[0][width:]) if preceding else None,
        total,
        extra,
    )


async def _total(
    reading: Reading,
    values: Values,
    statement: Sql,
    mode: str,
    matched: int,
    has_more: bool,
    offset: int | None,
) -> int | None:
    """Known without counting on the last page of offset paging (`offset` None: a cursor
    page, whose position is not known); otherwise counted if `_total` asks for it
    (`estimate` counts at most ESTIMATE_LIMIT matches, so its cost is bounded)."""
    if offset is not None and mode != "none" and not has_more and (matched or offset == 0):
        return offset + matched
    if mode not in ("accurate", "estimate"):
        return None
    limit = ESTIMATE_LIMIT if mode == "estimate" else None
    return await _count(reading, values, statement, limit)


async def _included(
    reading: Reading,
    includes: Sequence[Include],
    matched: Sequence[StoredResource],
    viewpoint: Viewpoint,
    readable: frozenset[str] | None,
) -> list[StoredResource]:
    """`_include`/`_revinclude` of a page, repeated for `:iterate` directives on what each
    pass added (bounded: MAX_ITERATIONS passes, MAX_INCLUDED resources)."""
    added: list[StoredResource] = []
    found, seen, active = matched, {row.rid for row in matched}, list(includes)
    for _ in range(MAX_ITERATIONS):
        keys = [Found(row.rid, row.resource_type, row.fhir_id) for row in found]
        values = Values()
        statement = included(values, active, keys, seen, viewpoint, readable)
        if statement is None or len(added) >= MAX_INCLUDED:
            break
        found = await _resources(reading, statement, values)
        added += found
        seen |= {row.rid for row in found}
        active = [include for include in includes if include.iterate]
    return added[:MAX_INCLUDED]


async def referenced(
    reading: Reading,
    found: Sequence[StoredResource],
    viewpoint: Viewpoint,
    readable: frozenset[str] | None,
) -> list[StoredResource]:
    """The visible resources that `found` refer to (as `_include=*`), not among `found`."""
    every_reference = Include(None, None, None, reverse=False, iterate=False)
    return await _included(reading, [every_reference], found, viewpoint, readable)


async def lastn(
    reading: Reading,
    request: SearchRequest,
    viewpoint: Viewpoint,
    newest: int,
    limit: int,
    pairs: bool,
) -> list[StoredResource]:
    """`Observation/$lastn`: the `newest` Observations of each patient and code that the
    search `request` finds, newest first, at most `limit` (ONE query, see `query.lastn`;
    `pairs` as in `search_page`)."""
    values = Values()
    statement = query.lastn(values, request, viewpoint, newest, limit, pairs)
    return await _resources(reading, statement, values)


def _in_compartment(
    row: Any,
    viewer: Viewer,
    patient: Slot,
    members: tuple[tuple[str, tuple[str, ...]], ...],
    since: Slot | None,
    limit: Slot,
    offset: Slot,
) -> AnySelect:
    reference = TABLES["reference"].c
    refers = exists().where(
        reference.rid == row.rid,
        reference.target_type == "Patient",
        or_(reference.target_id == patient, reference.target_id.in_(same_person(patient))),
        or_(
            *(
                and_(reference.resource_type == kind, reference.param.in_(constants(params)))
                for kind, params in members
            )
        ),
    )
    is_patient = and_(
        row.resource_type == "Patient",
        or_(row.fhir_id == patient, row.fhir_id.in_(same_person(patient))),
    )
    kinds = [kind for kind, _ in members]
    statement = select(*RESOURCES.c).where(
        *visible(row, viewer),
        row.resource_type.in_(constants(kinds)),
        or_(is_patient, refers) if "Patient" in kinds else refers,
    )
    if since is not None:
        statement = statement.where(row.last_updated >= since)
    return statement.order_by(row.rid).limit(limit).offset(offset)


async def compartment(
    reading: Reading,
    viewpoint: Viewpoint,
    patient_id: str,
    members: dict[str, tuple[str, ...]],
    since: dt.datetime | None,
    limit: int,
    offset: int,
) -> list[StoredResource]:
    """The person's Patient records (if `members` has Patient) and the current resources
    the viewpoint sees in their compartments: those that refer to one of the person's
    records (`patient_id` and the records the master patient index joins with it) through
    one of their type's compartment parameters (`members`: resource type → parameters)."""
    if not members:
        return []
    values = Values()
    statement = Sql(
        _in_compartment,
        (
            viewer(values, viewpoint),
            values.slot(patient_id),
            tuple(sorted(members.items())),
            None if since is None else values.slot(since),
            values.slot(limit),
            values.slot(offset),
        ),
    )
    return await _resources(reading, statement, values)
