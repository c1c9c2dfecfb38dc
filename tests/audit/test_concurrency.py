"""Writers in several OS processes (as several `medicus serve` processes would be) record to one
audit trail at the same time while each process also runs its sealer: the result is one
unforked chain that holds every entry exactly once."""

from __future__ import annotations

import asyncio
import multiprocessing
from typing import TYPE_CHECKING

from medicus.audit.sealer import AuditSealer
from medicus.audit.service import AuditRecord, AuditTrail
from medicus.core.db import Database
from tests.support.database import rows

if TYPE_CHECKING:
    # Each writer process imports this module: not the whole platform, which it does not use.
    from medicus.platform import Platform

WRITERS = 8
ENTRIES_PER_WRITER = 500


async def _write(database_url: str, writer: int) -> None:
    database = Database(database_url, pool_size=2)
    trail = AuditTrail(database)
    sealer = AuditSealer(trail, interval_seconds=0.01)
    sealer.start()
    try:
        for number in range(ENTRIES_PER_WRITER):
            await trail.record(
                AuditRecord("test.write", f"user:writer-{writer}", target=f"Patient/{number}")
            )
    finally:
        await sealer.stop()
        await database.dispose()


def _writer_process(database_url: str, writer: int) -> None:
    asyncio.run(_write(database_url, writer))


async def test_concurrent_writer_processes_produce_one_chain(
    fresh_database_url: str, fresh_platform: Platform
) -> None:
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=_writer_process, args=(fresh_database_url, writer))
        for writer in range(WRITERS)
    ]
    for process in processes:
        process.start()
    for process in processes:
        await asyncio.to_thread(process.join, 300)
    assert [process.exitcode for process in processes] == [0] * WRITERS

    report = await fresh_platform.audit.verify()
    assert report.intact, report.problem
    assert (report.entries, report.pending) == (WRITERS * ENTRIES_PER_WRITER, 0)
    recorded = dict(
        await rows(
            fresh_platform, "SELECT actor, COUNT(DISTINCT target) FROM audit_entry GROUP BY actor"
        )
    )
    assert recorded == {f"user:writer-{w}": ENTRIES_PER_WRITER for w in range(WRITERS)}
