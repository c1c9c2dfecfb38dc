"""Background updates: data migrations that the running server performs in batches, as
Synapse's do, instead of `medicus migrate` stopping the platform for hours.

A revision only schedules an update by name (`migrations.scheduling`, a row of
`background_update`); the capability that owns the derived data provides the code that makes
one batch of it (an `UpdateStep`), with today's rules, over the schema at head. Each batch
commits its work together with the update's progress, so a killed process loses at most the
batch it was in and the next run resumes from the recorded progress. Several server processes
may run at once: a lease with an expiry lets only one of them run an update at a time, and
lets another take over once a killed holder's lease has run out. Updates run one after the
other, each after those it depends on; batches are sized to take about `target` each.

This lives in `core` because every capability registers its updates here (arrows point down),
while `migrations` holds only what revisions run.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson
from sqlalchemy import Integer, String, Text, delete, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from medicus.core.db import Base, Database, UTCDateTime, utc_now
from medicus.core.logging import get_logger
from medicus.core.loops import ServerLoop

log = get_logger("medicus.core.background")


class BackgroundUpdateRow(Base):
    """A pending background update (a finished one's row is deleted)."""

    __tablename__ = "background_update"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    depends_on: Mapped[str] = mapped_column(Text)
    """The names of the updates that must finish first, a JSON list."""
    progress: Mapped[str] = mapped_column(Text)
    """Where the update stands, as its step records it (JSON; `{}`: not begun)."""
    batches: Mapped[int] = mapped_column(Integer)
    items: Mapped[int] = mapped_column(Integer)
    scheduled_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    lease_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())


class Batch(NamedTuple):
    """What a step did: its progress to record (None: the update is complete) and how many
    items (records, resources, persons) it handled."""

    progress: dict[str, Any] | None
    items: int


UpdateStep = Callable[[AsyncSession, dict[str, Any], int], Awaitable[Batch]]
"""One batch of an update: (the batch's transaction, the progress so far, how many items to
handle) → what it did. It writes only in the transaction it is given."""


@dataclass(frozen=True)
class UpdateStatus:
    """A pending update as `medicus migrate status` shows it."""

    name: str
    state: str
    batches: int
    items: int
    progress: dict[str, Any]
    depends_on: list[str]
    lease_owner: str | None


class LeaseLost(Exception):
    """Another process took the update over (this one stalled past its lease): the batch is
    rolled back."""


def _runnable(rows: list[BackgroundUpdateRow], known: Mapping[str, Any]) -> list[str]:
    """The updates whose dependencies are done, in the order they were scheduled."""
    pending = {row.name for row in rows}
    ready = [
        row
        for row in rows
        if row.name in known and not pending.intersection(orjson.loads(row.depends_on))
    ]
    return [row.name for row in sorted(ready, key=lambda row: (row.scheduled_at, row.name))]


class BackgroundUpdates(ServerLoop):
    """Runs the pending background updates of one database, a batch at a time; as a loop of
    a server process (`start`), until none is left."""

    name = "background-updates"

    def __init__(
        self,
        database: Database,
        steps: Mapping[str, UpdateStep],
        *,
        lease: dt.timedelta = dt.timedelta(seconds=60),
        target: dt.timedelta = dt.timedelta(seconds=1),
        batch_size: int | None = None,
        pause_seconds: float = 0.1,
        clock: Callable[[], dt.datetime] = utc_now,
    ) -> None:
        """`batch_size`: a fixed size instead of one tuned to `target`; `pause_seconds`:
        the rest between batches that leaves the database to requests."""
        super().__init__()
        self._database = database
        self.steps = steps
        self._lease = lease
        self._target = target.total_seconds()
        self._fixed_size = batch_size
        self._sizes: dict[str, int] = {}
        self._pause = pause_seconds
        self._clock = clock
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    async def run_batch(self) -> bool:
        """Run one batch of the first update this process may run now; False when there is
        none (all done, waiting for others' dependencies, or leased by another process)."""
        async with self._database.snapshot() as session:
            rows = list((await session.scalars(select(BackgroundUpdateRow))).all())
        for name in _runnable(rows, self.steps):
            if await self._claim(name):
                await self._batch(name)
                return True
        return False

    async def run_until_done(self, seconds: float | None = None) -> bool:
        """Run batches until nothing is left that this process may run (or `seconds` have
        passed); True when no update is pending any more."""
        deadline = None if seconds is None else time.monotonic() + seconds
        while deadline is None or time.monotonic() < deadline:
            if not await self.run_batch():
                break
        return not await pending(self._database)

    async def _run(self) -> None:
        """Until no update this version knows is pending; another process's lease is
        waited out (its holder may have died). A failed batch is rolled back and tried again
        after a while (a database outage passes; a batch that fails on its data stays where
        it is, visible in `medicus migrate status`, and never stops the server)."""
        while not self.stopping:
            try:
                ran = await self.run_batch()
                if not ran and not set(await pending(self._database)) & set(self.steps):
                    return
            except (DBAPIError, OSError, LeaseLost) as error:
                log.warning("background update failed; retrying", error_type=type(error).__name__)
                ran = False
            except Exception:
                log.exception("background update failed on its data; retrying")
                ran = False
            await self.rest(self._pause if ran else self._lease.total_seconds() / 2)

    async def _claim(self, name: str) -> bool:
        """Take (or renew) the lease of `name` unless another process holds it unexpired."""
        now = self._clock()
        table = BackgroundUpdateRow
        async with self._database.transaction() as session:
            claimed = await session.execute(
                update(table)
                .where(
                    table.name == name,
                    (table.lease_owner.is_(None))
                    | (table.lease_owner == self.owner)
                    | (table.lease_until < now),
                )
                .values(lease_owner=self.owner, lease_until=now + self._lease)
            )
        return bool(claimed.rowcount)  # type: ignore[attr-defined]

    async def _batch(self, name: str) -> None:
        """One batch of `name` and its progress, in one transaction, while the lease holds."""
        size = self._fixed_size or self._sizes.get(name, 10)
        started = time.monotonic()
        table = BackgroundUpdateRow
        async with self._database.transaction() as session:
            row = await session.get(table, name)
            if row is None or row.lease_owner != self.owner:
                raise LeaseLost(name)
            done = await self.steps[name](session, orjson.loads(row.progress), size)
            mine = (table.name == name) & (table.lease_owner == self.owner)
            if done.progress is None:
                result = await session.execute(delete(table).where(mine))
            else:
                result = await session.execute(
                    update(table)
                    .where(mine)
                    .values(
                        progress=orjson.dumps(done.progress).decode(),
                        batches=table.batches + 1,
                        items=table.items + done.items,
                        lease_until=self._clock() + self._lease,
                    )
                )
            if not result.rowcount:  # type: ignore[attr-defined]
                raise LeaseLost(name)
        self._sizes[name] = next_batch_size(
            size, done.items, time.monotonic() - started, self._target
        )
        if done.progress is None:
            quiet = not (row.items or done.items)  # nothing to do: a new database
            (log.debug if quiet else log.info)("background update finished", update=name)
        else:
            log.debug("background update batch", update=name, items=done.items, size=size)


MAX_BATCH = 5000
"""The most items of a batch, whatever its pace: their ids go into statements as lists of
parameters (PostgreSQL's protocol takes at most 32,767 of them)."""


def next_batch_size(size: int, items: int, elapsed: float, target: float) -> int:
    """A batch size that takes about `target` seconds at the pace of the last batch (at most
    doubling, so one quick batch of cheap items does not make the next one huge)."""
    if items < size or elapsed <= 0:
        return size
    return max(1, min(size * 2, MAX_BATCH, int(items * target / elapsed)))


async def pending(database: Database) -> list[str]:
    """The names of the pending background updates (none before the table exists)."""
    with contextlib.suppress(DBAPIError):
        async with database.snapshot() as session:
            return list((await session.scalars(select(BackgroundUpdateRow.name))).all())
    return []


async def is_pending(database: Database, name: str) -> bool:
    """Whether the update `name` is pending. Unlike `pending`, a database error is raised: a
    caller that trusts "not pending" for good must not take an outage for it."""
    async with database.snapshot() as session:
        row = BackgroundUpdateRow
        found = await session.scalar(select(row.name).where(row.name == name))
    return found is not None


async def status(database: Database, known: Mapping[str, Any]) -> list[UpdateStatus]:
    """The pending updates in the order they run, and where each stands (`known`: the
    updates this version of medicus can run; another one waits for a newer server)."""
    async with database.snapshot() as session:
        rows = list((await session.scalars(select(BackgroundUpdateRow))).all())
    runnable = _runnable(rows, known)
    pending_names = {row.name for row in rows}
    now = utc_now()
    order = {name: number for number, name in enumerate(runnable)}
    listed = []
    for row in sorted(rows, key=lambda row: (order.get(row.name, len(order)), row.scheduled_at)):
        waiting = [name for name in orjson.loads(row.depends_on) if name in pending_names]
        if row.lease_owner is not None and row.lease_until and row.lease_until > now:
            state = "running"
        elif row.name not in known:
            state = "unknown to this version"
        elif row.name not in order:
            state = "waiting for " + ", ".join(waiting)
        else:
            state = "in progress" if row.batches else "pending"
        listed.append(
            UpdateStatus(
                row.name,
                state,
                row.batches,
                row.items,
                orjson.loads(row.progress),
                orjson.loads(row.depends_on),
                row.lease_owner,
            )
        )
    return listed
