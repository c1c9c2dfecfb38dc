"""What data migrations read: the current resources of a type as stored, a batch at a time.
Migrations that derive tables from stored resources read them with the rules' own code, so
derived data agrees with later writes; this is their one way to read them."""

from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

_BATCH = 1000
_RESOURCES = sa.table(
    "fhir_resource",
    sa.column("rid", sa.BigInteger()),
    sa.column("resource_type", sa.String()),
    sa.column("fhir_id", sa.String()),
    sa.column("deleted", sa.Boolean()),
    sa.column("organisation_id", sa.String()),
    sa.column("patient_id", sa.String()),
    sa.column("content", sa.Text()),
)


def current_resources(resource_type: str) -> Iterator[Any]:
    """The current (not deleted) resources of a type in a patient's compartment: rows of
    `fhir_id`, `organisation_id`, `patient_id` and `content`, in row-id order, read a batch
    at a time (a large database does not fit in memory at once)."""
    resources = _RESOURCES.c
    for batch in _batches(
        (resources.fhir_id, resources.organisation_id, resources.patient_id, resources.content),
        resources.resource_type == resource_type,
        resources.deleted.is_(False),
        resources.patient_id.is_not(None),
    ):
        yield from batch


def every_current_resource() -> Iterator[Sequence[Any]]:
    """The current (not deleted) resources of every type, a batch at a time in row-id order:
    rows of `rid`, `resource_type` and `content`."""
    resources = _RESOURCES.c
    yield from _batches(
        (resources.resource_type, resources.content),
        resources.deleted.is_(False),
        resources.content.is_not(None),
    )


def _batches(
    columns: Sequence[sa.ColumnElement[Any]], *conditions: sa.ColumnElement[bool]
) -> Iterator[Sequence[Any]]:
    resources = _RESOURCES.c
    after = 0
    while True:
        batch = (
            op.get_bind()
            .execute(
                sa.select(resources.rid, *columns)
                .where(*conditions, resources.rid > after)
                .order_by(resources.rid)
                .limit(_BATCH)
            )
            .all()
        )
        if not batch:
            return
        after = batch[-1].rid
        yield batch
