"""What the caller may see as conditions of a search's SQL: its organisation's data and data
shared with it (see `access`), on the searched resources and on every resource a chain or a
list looks into, so that nothing the caller may not see is ever read, counted or used to
select."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, or_

from medicus.access.policy import Viewpoint, readable_patients, readable_record
from medicus.fhir.search.match import invalid
from medicus.fhir.search.planning import Start
from medicus.fhir.search.template import Slot, Values, unindexed


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
class Scope:
    """The viewer of a search and the types its access token may read (None: all), which
    chains, `_has` and `_list` may look into."""

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
    Not `leading`: the conditions must not drive the query through an index on SQLite (a
    few rows found by key do; see `template.unindexed`)."""
    organisation = row.organisation_id if leading else unindexed(row.organisation_id)
    own = organisation == viewer.organisation
    if not viewer.sharing:
        return [own, row.deleted.is_(False)]
    return [or_(own, readable(row, viewer)), row.deleted.is_(False)]


def readable(row: Any, viewer: Viewer) -> ColumnElement[bool]:
    readable: ColumnElement[bool] = readable_record(
        row.patient_id, viewer.organisation, viewer.actor, viewer.at
    )
    return readable


def visible_of_type(
    row: Any, resource_type: str, viewer: Viewer, start: Start
) -> list[ColumnElement[bool]]:
    """The resources of the type that the viewer sees, written for the way the search starts
    (`Start`), so that SQLite (which plans without statistics) takes the index it should
    rather than every resource of the type."""
    own = row.organisation_id == viewer.organisation
    kind = row.resource_type == resource_type
    if not viewer.sharing:
        return [kind, own]
    # On SQLite the type must not lead an index (see `template.unindexed`).
    unindexed_kind = unindexed(row.resource_type) == resource_type
    listed = readable_patients(viewer.organisation, viewer.actor, viewer.at)
    if start is Start.TYPE:
        # Both index ranges: the organisation's resources of the type, and those of the
        # records it may read (listed first, as a per-row condition could use no index).
        return [or_(and_(own, kind), and_(row.patient_id.in_(listed), unindexed_kind))]
    if start is Start.BROAD:
        # The records it may read listed once: PostgreSQL may then walk the type's newest
        # rows and stop at a page (a common code), or start from the index rows (a rare one).
        return [unindexed_kind, or_(own, row.patient_id.in_(listed))]
    return [unindexed_kind if start is Start.ROWS else kind, or_(own, readable(row, viewer))]
