"""Background updates: a rebuild runs in batches that each commit their progress, resumes
where a killed process stopped, runs after the updates it depends on, and shows in
`medicus migrate status`."""

from __future__ import annotations

import asyncio
import datetime as dt
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from typer.testing import CliRunner

from medicus import migrations
from medicus.access import background as access_updates
from medicus.access import sharing
from medicus.access.models import CONSENTS, DISCLOSURES, MERGES, RECORDS, SHARES, TREATMENTS
from medicus.cli import app
from medicus.core.background import (
    MAX_BATCH,
    BackgroundUpdateRow,
    BackgroundUpdates,
    Batch,
    UpdateStep,
    next_batch_size,
)
from medicus.core.db import Database, utc_now
from medicus.fhir.models import RESOURCES
from medicus.iam.models import OrganisationRow
from medicus.platform import Platform
from medicus.updates import offline_update_steps
from tests.conftest import DatabaseFactory

PERSONS = 60
BATCH = 5
LEASE = dt.timedelta(seconds=2)

_KILLED_RUNNER = """
import asyncio, datetime as dt, sys
from medicus.core.background import BackgroundUpdates
from medicus.core.db import Database
from medicus.updates import offline_update_steps

async def run(url: str) -> None:
    database = Database(url)
    steps = offline_update_steps(database)
    runner = BackgroundUpdates(
        database, steps, batch_size=int(sys.argv[2]), lease=dt.timedelta(seconds=2)
    )
    while await runner.run_batch():
        await asyncio.sleep(0.2)

asyncio.run(run(sys.argv[1]))
"""


def _steps(database: Database) -> dict[str, UpdateStep]:
    return offline_update_steps(database)


def _counting(steps: dict[str, UpdateStep], done: list[tuple[str, int]]) -> dict[str, UpdateStep]:
    """The steps, each recording (name, items) of every batch it makes."""

    def counted(name: str, step: UpdateStep) -> UpdateStep:
        async def run(session: AsyncSession, progress: dict[str, Any], size: int) -> Batch:
            batch = await step(session, progress, size)
            done.append((name, batch.items))
            return batch

        return run

    return {name: counted(name, step) for name, step in steps.items()}


async def _schedule(database: Database, name: str, *depends_on: str) -> None:
    async with database.transaction() as session:
        session.add(
            BackgroundUpdateRow(
                name=name,
                depends_on=orjson.dumps(list(depends_on)).decode(),
                progress="{}",
                batches=0,
                items=0,
                scheduled_at=utc_now(),
            )
        )


async def _row(database: Database, name: str) -> BackgroundUpdateRow | None:
    async with database.snapshot() as session:
        return await session.get(BackgroundUpdateRow, name)


async def _persons_with_facts(database: Database, count: int) -> None:
    """`count` persons, each with a record at hospitals A and B, both treating, and A's
    sourced permit: once recomputed, each person is shared with both."""
    now = utc_now()
    async with database.transaction() as session:
        for hospital in ("hospital-a", "hospital-b"):
            session.add(
                OrganisationRow(id=hospital, name=hospital, type="hospital", created_at=now)
            )
        for number in range(count):
            person = f"a{number:04d}"
            records = [(person, "hospital-a"), (f"b{number:04d}", "hospital-b")]
            await session.execute(
                RECORDS.insert(),
                [
                    {"patient_id": patient, "organisation_id": holder, "person_id": person}
                    for patient, holder in records
                ],
            )
            await session.execute(
                TREATMENTS.insert(),
                [
                    {
                        "resource_type": "Encounter",
                        "resource_id": f"stay-{patient}",
                        "organisation_id": holder,
                        "treating_organisation_id": holder,
                        "patient_id": patient,
                    }
                    for patient, holder in records
                ],
            )
            await session.execute(
                CONSENTS.insert().values(
                    consent_id=f"permit-{person}",
                    organisation_id="hospital-a",
                    patient_id=person,
                    decision="permit",
                    organisations=None,
                    excluded="[]",
                )
            )


async def _derived(database: Database) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The shares and the open disclosures, as sorted tuples (ids and moments left out)."""
    async with database.snapshot() as session:
        shares = await session.execute(select(SHARES.c.organisation_id, SHARES.c.person_id))
        disclosures = await session.execute(
            select(
                DISCLOSURES.c.holder_organisation_id,
                DISCLOSURES.c.patient_id,
                DISCLOSURES.c.organisation_id,
                DISCLOSURES.c.reasons,
            ).where(DISCLOSURES.c.ended_at.is_(None))
        )
        return sorted(map(tuple, shares)), sorted(map(tuple, disclosures))


async def _wait_for(condition: Callable[[], Any], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not await condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_a_new_database_has_no_update_pending(fresh_database_url: str) -> None:
    database = Database(fresh_database_url)
    try:
        assert await migrations.update_status(database) == []
    finally:
        await database.dispose()


async def test_a_killed_rebuild_resumes_where_it_stopped(fresh_database_url: str) -> None:
    """The shares rebuild, killed with SIGKILL after some batches, keeps its recorded
    progress; no other process takes it over while the dead one's lease runs; then one does,
    runs only the batches that were left, and the shares end as a recomputation of everyone
    at once makes them."""
    database = Database(fresh_database_url)
    try:
        await _persons_with_facts(database, PERSONS)
        await _schedule(database, access_updates.SHARES)
        killed = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _KILLED_RUNNER, fresh_database_url, str(BATCH)
        )
        try:

            async def three_batches_done() -> bool:
                row = await _row(database, access_updates.SHARES)
                assert row is not None, "finished before it was killed"
                return row.batches >= 3

            await _wait_for(three_batches_done)
        finally:
            killed.send_signal(signal.SIGKILL)
            await killed.wait()
        stopped = await _row(database, access_updates.SHARES)
        assert stopped is not None
        assert 3 <= stopped.batches < PERSONS // BATCH
        assert stopped.items == stopped.batches * BATCH
        assert orjson.loads(stopped.progress) == {"after_person": f"a{stopped.items - 1:04d}"}
        async with database.snapshot() as session:
            shared = await session.scalar(select(func.count()).select_from(SHARES))
        assert shared == 2 * stopped.items

        done: list[tuple[str, int]] = []
        steps = _counting(_steps(database), done)
        meanwhile = BackgroundUpdates(database, steps, batch_size=BATCH, lease=LEASE)
        assert not await meanwhile.run_batch()
        assert done == []

        later = BackgroundUpdates(
            database,
            steps,
            batch_size=BATCH,
            lease=LEASE,
            clock=lambda: utc_now() + LEASE + dt.timedelta(seconds=1),
        )
        assert await later.run_until_done()
        left = PERSONS - stopped.items
        assert done == [(access_updates.SHARES, BATCH)] * (left // BATCH) + [
            (access_updates.SHARES, 0)
        ]
        assert await _row(database, access_updates.SHARES) is None

        rebuilt = await _derived(database)
        async with database.transaction() as session:
            everyone = (await session.scalars(select(RECORDS.c.person_id).distinct())).all()
            await sharing.recompute(session, everyone, utc_now())
        assert rebuilt == await _derived(database)
        assert len(rebuilt[0]) == 2 * PERSONS
    finally:
        await database.dispose()


async def test_an_update_waits_for_those_it_depends_on(fresh_database_url: str) -> None:
    """The shares wait for the index and for an update only a newer medicus knows (this
    one leaves it alone); the index runs."""
    database = Database(fresh_database_url)
    newer = "fhir.newer_update"
    try:
        await _schedule(database, access_updates.SHARES, access_updates.MPI_RECORDS, newer)
        await _schedule(database, access_updates.MPI_RECORDS)
        await _schedule(database, newer)
        report = await migrations.status_report(database)
        assert report[1:] == [
            "background updates pending: 3",
            f"  {access_updates.MPI_RECORDS}: pending; 0 batches, 0 items done; progress {{}}",
            f"  {access_updates.SHARES}: waiting for {access_updates.MPI_RECORDS}, {newer};"
            " 0 batches, 0 items done; progress {}",
            f"  {newer}: unknown to this version; 0 batches, 0 items done; progress {{}}",
        ]
        done: list[tuple[str, int]] = []
        runner = BackgroundUpdates(database, _counting(_steps(database), done))
        assert not await runner.run_until_done()
        assert done == [(access_updates.MPI_RECORDS, 0)]
        assert await _row(database, access_updates.SHARES) is not None
    finally:
        await database.dispose()


async def test_migrate_status_shows_progress(fresh_database_url: str, tmp_path: Path) -> None:
    database = Database(fresh_database_url)
    try:
        await _persons_with_facts(database, 4)
        await _schedule(database, access_updates.SHARES)
        runner = BackgroundUpdates(database, _steps(database), batch_size=3)
        assert await runner.run_batch()
    finally:
        await database.dispose()
    environment = {"MEDICUS_DATABASE_URL": fresh_database_url, "MEDICUS_DATA_DIR": str(tmp_path)}
    result = await asyncio.to_thread(
        CliRunner().invoke, app, ["migrate", "status"], env=environment
    )
    assert result.exit_code == 0, result.output
    head = migrations.head_revision()
    assert result.output.splitlines() == [
        f"database at revision {head} (head)",
        "background updates pending: 1",
        f"  {access_updates.SHARES}: running, by {runner.owner}; 1 batches, 3 items done;"
        ' progress {"after_person":"a0002"}',
    ]


async def test_migrate_finish_runs_what_is_pending(fresh_database_url: str, tmp_path: Path) -> None:
    database = Database(fresh_database_url)
    try:
        await _persons_with_facts(database, 4)
        await _schedule(database, access_updates.SHARES)
        environment = {
            "MEDICUS_DATABASE_URL": fresh_database_url,
            "MEDICUS_DATA_DIR": str(tmp_path),
        }
        result = await asyncio.to_thread(
            CliRunner().invoke, app, ["migrate", "--finish"], env=environment
        )
        assert result.exit_code == 0, result.output
        assert await _row(database, access_updates.SHARES) is None
        assert len((await _derived(database))[0]) == 2 * 4
    finally:
        await database.dispose()


async def test_a_server_runs_pending_updates_in_the_background(fresh_platform: Platform) -> None:
    database = fresh_platform.database
    await _persons_with_facts(database, 4)
    await _schedule(database, access_updates.SHARES)
    await fresh_platform.start_background_work()
    try:

        async def finished() -> bool:
            return await _row(database, access_updates.SHARES) is None

        await _wait_for(finished, seconds=30)
    finally:
        await fresh_platform.stop_background_work()
    assert len((await _derived(database))[0]) == 2 * 4


async def test_shares_derived_under_wider_rules_are_gone_until_rebuilt(
    database_factory: DatabaseFactory,
) -> None:
    """Migration 0020 narrows who may vouch: the shares derived before are removed with the
    schema change, so while the rebuild is pending a person is shared with nobody."""
    url = await asyncio.to_thread(database_factory.new_url, False)
    await asyncio.to_thread(migrations.upgrade, url, "0019")
    database = Database(url)
    try:
        async with database.transaction() as session:
            await session.execute(
                SHARES.insert().values(organisation_id="hospital-b", person_id="a0000")
            )
        assert await asyncio.to_thread(migrations.upgrade, url, "head", 0) == 6, (
            "every update the migrations after 0019 scheduled waits"
        )
        async with database.snapshot() as session:
            assert (await session.scalars(select(SHARES.c.person_id))).all() == []
        report = await migrations.status_report(database)
        assert any(line.startswith(f"  {access_updates.SHARES}: waiting for") for line in report)
    finally:
        await database.dispose()


@pytest.mark.parametrize(
    ("size", "items", "elapsed", "sized"),
    [
        (10, 10, 0.1, 20),  # quick: at most doubles
        (100, 100, 4.0, 25),  # slow: a quarter takes the target second
        (10, 3, 0.01, 10),  # the last, short batch says nothing about the pace
        (1, 1, 60.0, 1),
        (4000, 4000, 0.1, MAX_BATCH),  # ids go into statements: never more than that
    ],
)
def test_batches_are_sized_to_take_the_target_time(
    size: int, items: int, elapsed: float, sized: int
) -> None:
    assert next_batch_size(size, items, elapsed, target=1.0) == sized


async def test_processes_running_at_once_run_each_batch_once(fresh_database_url: str) -> None:
    database = Database(fresh_database_url)
    try:
        await _persons_with_facts(database, 20)
        await _schedule(database, access_updates.SHARES)
        done: list[tuple[str, int]] = []
        steps = _counting(_steps(database), done)
        runners = [BackgroundUpdates(database, steps, batch_size=BATCH) for _ in range(3)]
        await asyncio.gather(*(runner.run_until_done() for runner in runners))
        assert sum(items for _, items in done) == 20
        assert len(done) == 20 // BATCH + 1
        assert await _row(database, access_updates.SHARES) is None
    finally:
        await database.dispose()


async def _patients(database: Database, count: int) -> None:
    """`count` pairs of Patients with one KVNR at hospitals A and B; every fifth of A's
    records merged into the one before it."""
    at = utc_now()
    rows = []
    for number in range(count):
        kvnr = {"system": "http://fhir.de/sid/gkv/kvid-10", "value": f"A{number:09d}"}
        for holder in ("a", "b"):
            content: dict[str, Any] = {"resourceType": "Patient", "identifier": [kvnr]}
            if holder == "a" and number % 5 == 4:
                previous = {"reference": f"Patient/a{number - 1:04d}"}
                content["link"] = [{"other": previous, "type": "replaced-by"}]
            patient = f"{holder}{number:04d}"
            rows.append(
                {
                    "resource_type": "Patient",
                    "fhir_id": patient,
                    "version": 1,
                    "last_updated": at,
                    "deleted": False,
                    "organisation_id": f"hospital-{holder}",
                    "content": orjson.dumps(content).decode(),
                    "patient_id": patient,
                }
            )
    async with database.transaction() as session:
        await session.execute(RESOURCES.insert(), rows)


async def _index(database: Database) -> list[tuple[Any, ...]]:
    async with database.snapshot() as session:
        records = await session.execute(
            select(RECORDS.c.patient_id, RECORDS.c.person_id, RECORDS.c.kvnr).order_by(
                RECORDS.c.patient_id
            )
        )
        merges = await session.execute(select(MERGES.c.patient_id, MERGES.c.other_patient_id))
        return [*map(tuple, records), *sorted(map(tuple, merges))]


async def test_a_stopped_index_rebuild_resumes_and_agrees_with_one_from_scratch(
    fresh_database_url: str,
) -> None:
    """The index rebuild stopped after two batches resumes with the rest; running it again
    from the start (as a later revision that schedules it does) changes nothing."""
    database = Database(fresh_database_url)
    try:
        await _patients(database, 15)
        await _schedule(database, access_updates.MPI_RECORDS)
        done: list[tuple[str, int]] = []
        steps = _counting(_steps(database), done)
        first = BackgroundUpdates(database, steps, batch_size=BATCH)
        assert await first.run_batch()
        assert await first.run_batch()
        resumed = BackgroundUpdates(
            database,
            steps,
            batch_size=BATCH,
            clock=lambda: utc_now() + dt.timedelta(minutes=2),
        )
        assert await resumed.run_until_done()
        assert [items for _, items in done] == [BATCH] * 6 + [0]
        indexed = await _index(database)
        assert indexed[:3] == [
            ("a0000", "a0000", "A000000000"),
            ("a0001", "a0001", "A000000001"),
            ("a0002", "a0002", "A000000002"),
        ]
        assert ("a0004", "a0003", "A000000004") in indexed
        assert ("b0004", "a0003", "A000000004") in indexed
        assert ("a0004", "a0003") in indexed

        await _schedule(database, access_updates.MPI_RECORDS)
        assert await BackgroundUpdates(database, steps).run_until_done()
        assert await _index(database) == indexed
    finally:
        await database.dispose()
