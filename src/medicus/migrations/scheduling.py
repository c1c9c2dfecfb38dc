"""What a revision calls to have the running server rebuild derived data: it schedules a
background update by name (`core.background` runs it, with the code of the capability that
owns the data). This module imports nothing of medicus that changes with the rules, so a
revision that calls it stays as it is when they change.

A revision that derives data from every stored row changes the schema and calls
`schedule(name, depends_on)`; the step of `name` lives with the capability that owns the data
(`<capability>/background.py`, registered in `updates.update_steps`) and is kept working
under that name as the rules change. Where the new rules show less than the old, the revision
also removes what the old ones derived (as 0020 does with the shares), so that access fails
closed until the update is done.

Revisions before 0023 (which owns the table) schedule too: the table is made on first use."""

from collections.abc import Sequence

import orjson
import sqlalchemy as sa
from alembic import op

from medicus.core.db import UTCDateTime, utc_now

UPDATES = sa.Table(
    "background_update",
    sa.MetaData(),
    sa.Column("name", sa.String(length=100), nullable=False),
    sa.Column("depends_on", sa.Text(), nullable=False),
    sa.Column("progress", sa.Text(), nullable=False),
    sa.Column("batches", sa.Integer(), nullable=False),
    sa.Column("items", sa.Integer(), nullable=False),
    sa.Column("scheduled_at", UTCDateTime(), nullable=False),
    sa.Column("lease_owner", sa.String(length=200), nullable=True),
    sa.Column("lease_until", UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint("name", name="pk_background_update"),
)


def ensure_table() -> None:
    UPDATES.create(op.get_bind(), checkfirst=True)


def schedule(name: str, depends_on: Sequence[str] = ()) -> None:
    """Schedule the update `name` to run after `depends_on`. Idempotent: an update scheduled
    already (by an earlier revision of the same upgrade, or pending from an earlier one)
    starts over, since the data it reads or the rules it applies changed again."""
    ensure_table()
    connection = op.get_bind()
    connection.execute(sa.delete(UPDATES).where(UPDATES.c.name == name))
    connection.execute(
        sa.insert(UPDATES).values(
            name=name,
            depends_on=orjson.dumps(sorted(depends_on)).decode(),
            progress="{}",
            batches=0,
            items=0,
            scheduled_at=utc_now(),
        )
    )
