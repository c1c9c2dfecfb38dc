"""The audit trail's hash chain: appended entries verify, and every kind of tampering behind
the app's back (altering, removing, reordering, cutting the tail) is named by `verify`."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from medicus.audit.service import AuditRecord, Outcome, canonical_content
from medicus.core.bulk import BULK_FROM_ROWS
from medicus.core.db import Database
from medicus.platform import Platform
from tests.support.database import rows


def _event(number: int) -> AuditRecord:
    """Even entries concern Patient records, odd ones none (as entries sealed before records
    were named)."""
    event = AuditRecord(
        action="fhir.read",
        actor=f"user:{number % 3}",
        organisation="org-1",
        target=f"Patient/{number}",
        outcome=Outcome.DENIED if number % 4 == 0 else Outcome.SUCCESS,
        client_address="127.0.0.1",
        detail={"purpose": "TREAT", "n": number},
    )
    return event.about(f"p{number}", f"p{number % 3}") if number % 2 == 0 else event


async def _write_entries(platform: Platform, count: int) -> None:
    """Record `count` entries and seal them into the chain, in batches of unequal size."""
    await platform.audit.record(*(_event(number) for number in range(1, count // 2 + 1)))
    assert await platform.audit.seal() == count // 2
    await platform.audit.record(*(_event(number) for number in range(count // 2 + 1, count + 1)))
    assert await platform.audit.seal_all() == count - count // 2


async def _tamper(database: Database, *statements: str) -> None:
    """Change audit rows as someone with the database owner's rights could: first switch off
    the append-only triggers, then run `statements`."""
    async with database.transaction() as session:
        if database.dialect_name == "sqlite":
            await session.execute(text("DROP TRIGGER IF EXISTS audit_entry_no_update"))
            await session.execute(text("DROP TRIGGER IF EXISTS audit_entry_no_delete"))
        else:
            await session.execute(
                text("ALTER TABLE audit_entry DISABLE TRIGGER audit_entry_append_only")
            )
        for statement in statements:
            await session.execute(text(statement))


@pytest.mark.parametrize("count", [10, 2 * BULK_FROM_ROWS + 2])  # INSERTed, COPied (PostgreSQL)
async def test_an_untouched_chain_verifies(fresh_platform: Platform, count: int) -> None:
    await _write_entries(fresh_platform, count)
    await fresh_platform.audit.record(_event(count + 1))
    report = await fresh_platform.audit.verify()
    assert report.intact, report.problem
    assert (report.entries, report.pending) == (count, 1)
    await fresh_platform.audit.seal_all()
    report = await fresh_platform.audit.verify()
    assert (report.entries, report.head_seq, report.pending) == (count + 1, count + 1, 0)


async def test_an_empty_trail_verifies(fresh_platform: Platform) -> None:
    report = await fresh_platform.audit.verify()
    assert report.intact
    assert report.entries == 0


TAMPERING = {
    "modified": (
        ["UPDATE audit_entry SET actor = 'user:x' WHERE seq = 4"],
        4,
        "entry 4 was altered",
    ),
    "modified-with-recomputed-hash": (
        ["UPDATE audit_entry SET hash = prev_hash WHERE seq = 6"],
        6,
        "entry 6 was altered",
    ),
    "patients-changed": (
        ["UPDATE audit_entry SET patients = 'p0 p9' WHERE seq = 2"],
        2,
        "entry 2 was altered",
    ),
    "patients-removed": (
        ["UPDATE audit_entry SET patients = NULL WHERE seq = 4"],
        4,
        "entry 4 was altered",
    ),
    "patients-added": (
        ["UPDATE audit_entry SET patients = 'p1' WHERE seq = 3"],
        3,
        "entry 3 was altered",
    ),
    "deleted": (["DELETE FROM audit_entry WHERE seq = 7"], 7, "entry 7 is missing"),
    "deleted-and-renumbered": (
        [
            "DELETE FROM audit_entry WHERE seq = 5",
            "UPDATE audit_entry SET seq = seq - 1 WHERE seq > 5",
            "UPDATE audit_head SET seq = seq - 1",
        ],
        5,
        "entry 5 is out of place",
    ),
    "reordered": (
        [
            "UPDATE audit_entry SET seq = 1000 WHERE seq = 3",
            "UPDATE audit_entry SET seq = 3 WHERE seq = 8",
            "UPDATE audit_entry SET seq = 8 WHERE seq = 1000",
        ],
        3,
        "entry 3 is out of place",
    ),
    "tail-cut-off": (["DELETE FROM audit_entry WHERE seq > 8"], 9, "entries 9 to 10 are missing"),
}


@pytest.mark.parametrize("kind", TAMPERING)
async def test_tampering_is_named(fresh_platform: Platform, kind: str) -> None:
    statements, first_bad_seq, phrase = TAMPERING[kind]
    await _write_entries(fresh_platform, 10)
    assert (await fresh_platform.audit.verify()).intact
    await _tamper(fresh_platform.database, *statements)
    report = await fresh_platform.audit.verify()
    assert not report.intact
    assert report.first_bad_seq == first_bad_seq
    assert phrase in str(report.problem)


@pytest.mark.parametrize(
    "statement",
    ["UPDATE audit_entry SET actor = 'user:x' WHERE seq = 1", "DELETE FROM audit_entry"],
)
async def test_the_database_refuses_changes_to_entries(
    fresh_platform: Platform, statement: str
) -> None:
    await _write_entries(fresh_platform, 3)
    with pytest.raises(DBAPIError, match="append-only"):
        async with fresh_platform.database.transaction() as session:
            await session.execute(text(statement))
    assert (await fresh_platform.audit.verify()).intact


async def test_a_failed_transaction_leaves_no_entry(fresh_platform: Platform) -> None:
    await _write_entries(fresh_platform, 2)

    async def audited_work_that_fails() -> None:
        async with fresh_platform.database.transaction() as session:
            await fresh_platform.audit.append(session, _event(3))
            raise RuntimeError("the audited work failed")

    with pytest.raises(RuntimeError):
        await audited_work_that_fails()
    assert await fresh_platform.audit.seal_all() == 0
    report = await fresh_platform.audit.verify()
    assert report.intact
    assert (report.entries, report.pending) == (2, 0)


async def test_concurrent_records_share_commits_and_lose_nothing(
    fresh_platform: Platform,
) -> None:
    """Group commit: 200 concurrent `record` calls all return after their entry is durable,
    with far fewer transactions than calls, and the chain holds every entry once."""
    transactions = 0
    database = fresh_platform.database
    original = database.transaction

    def counting_transaction():  # type: ignore[no-untyped-def]
        nonlocal transactions
        transactions += 1
        return original()

    database.transaction = counting_transaction  # type: ignore[method-assign]
    try:
        await asyncio.gather(*(fresh_platform.audit.record(_event(n)) for n in range(1, 201)))
    finally:
        database.transaction = original  # type: ignore[method-assign]
    assert transactions < 100
    await fresh_platform.audit.seal_all()
    report = await fresh_platform.audit.verify()
    assert report.intact
    assert report.entries == 200


async def test_sealing_indexes_entries_by_the_patient_records_they_concern(
    fresh_platform: Platform,
) -> None:
    await _write_entries(fresh_platform, 2 * BULK_FROM_ROWS + 2)
    indexed = await rows(fresh_platform, "SELECT patient_id, seq FROM audit_patient")
    expected = {
        (patient, number)
        for number in range(2, 2 * BULK_FROM_ROWS + 3, 2)
        for patient in (f"p{number}", f"p{number % 3}")
    }
    assert set(indexed) == expected


def test_entries_without_patient_records_hash_as_they_did_before_records_were_named() -> None:
    entry = {
        "action": "fhir.read",
        "actor": "user:1",
        "client_address": None,
        "detail": "{}",
        "occurred_at": dt.datetime(2026, 11, 1, tzinfo=dt.UTC),
        "organisation": "org-1",
        "outcome": "success",
        "request_id": None,
        "target": "Patient/1",
    }
    before = (
        b'{"action":"fhir.read","actor":"user:1","client_address":null,"detail":"{}",'
        b'"occurred_at":"2026-11-01T00:00:00.000000+00:00","organisation":"org-1",'
        b'"outcome":"success","request_id":null,"target":"Patient/1"}'
    )
    assert canonical_content({**entry, "patients": None}) == before
    assert b'"patients":"p1"' in canonical_content({**entry, "patients": "p1"})
