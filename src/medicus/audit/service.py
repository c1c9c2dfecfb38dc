"""The audit trail's use-cases: append entries to the hash chain and verify the chain.

Each entry carries the SHA-256 of its predecessor (`prev_hash`) and its own `hash` over
`prev_hash` and its canonical content (who, organisation, action, target, outcome, client
address, time, request id, detail). Changing, removing or reordering an entry breaks a link.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from medicus.audit import repository
from medicus.audit.repository import GENESIS_HASH
from medicus.core.db import Database, utc_now
from medicus.core.http import current_request_id

VERIFY_BATCH = 5_000


class Outcome(StrEnum):
    SUCCESS = "success"
    DENIED = "denied"
    FAILED = "failed"


@dataclass(frozen=True)
class AuditEvent:
    """What happened, as a capability reports it. `actor` names the subject
    (`user:ID`, `service:ID`, `system:NAME`); `target` names what was touched."""

    action: str
    actor: str
    outcome: Outcome = Outcome.SUCCESS
    organisation: str | None = None
    target: str | None = None
    client_address: str | None = None
    request_id: str | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ChainReport:
    """The result of walking the chain; `problem` names the first broken entry."""

    entries: int
    head_seq: int
    head_hash: str
    first_bad_seq: int | None = None
    problem: str | None = None

    @property
    def intact(self) -> bool:
        return self.problem is None


def _canonical_time(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="microseconds")


def canonical_content(entry: Mapping[str, Any]) -> bytes:
    """The bytes an entry's hash covers: its content fields as sorted-key JSON."""
    content = {
        "action": entry["action"],
        "actor": entry["actor"],
        "client_address": entry["client_address"],
        "detail": entry["detail"],
        "occurred_at": _canonical_time(entry["occurred_at"]),
        "organisation": entry["organisation"],
        "outcome": entry["outcome"],
        "request_id": entry["request_id"],
        "target": entry["target"],
    }
    return orjson.dumps(content, option=orjson.OPT_SORT_KEYS)


def chain_hash(prev_hash: str, content: bytes) -> str:
    return hashlib.sha256(prev_hash.encode("ascii") + b"\n" + content).hexdigest()


class AuditTrail:
    """Writes and verifies the audit trail. Later capabilities append through `append`, inside
    the transaction that does the audited work, so that the work and its entry commit together."""

    def __init__(self, database: Database, clock: Callable[[], dt.datetime] = utc_now) -> None:
        self._database = database
        self._clock = clock

    async def append(self, session: AsyncSession, *events: AuditEvent) -> list[int]:
        """Append `events` in the caller's writing transaction; returns their sequence numbers.
        Call it as late as possible in the transaction: it holds the chain's lock until commit."""
        if not events:
            return []
        occurred_at = self._clock()
        rows = [self._row(event, occurred_at) for event in events]
        previous_seq, previous_hash = await repository.reserve(session, len(rows))
        for offset, row in enumerate(rows, start=1):
            row["seq"] = previous_seq + offset
            row["prev_hash"] = previous_hash
            row["hash"] = previous_hash = chain_hash(previous_hash, canonical_content(row))
        await repository.append(session, rows, previous_hash)
        return [row["seq"] for row in rows]

    async def record(self, *events: AuditEvent) -> list[int]:
        """Append `events` in a transaction of their own."""
        async with self._database.transaction() as session:
            return await self.append(session, *events)

    @staticmethod
    def _row(event: AuditEvent, occurred_at: dt.datetime) -> dict[str, Any]:
        return {
            "occurred_at": occurred_at,
            "actor": event.actor,
            "organisation": event.organisation,
            "action": event.action,
            "target": event.target,
            "outcome": str(event.outcome),
            "client_address": event.client_address,
            "request_id": event.request_id or current_request_id(),
            "detail": orjson.dumps(dict(event.detail), option=orjson.OPT_SORT_KEYS).decode(),
        }

    async def verify(self) -> ChainReport:
        """Walk the chain up to its head and report the first entry that was altered, removed
        or reordered. Entries appended while it runs are left for the next verification."""
        async with self._database.snapshot() as session:
            head = await repository.head(session)
        if head is None:
            return ChainReport(entries=0, head_seq=0, head_hash=GENESIS_HASH)
        head_seq, head_hash = head
        last_seq, last_hash = 0, GENESIS_HASH

        def broken(seq: int, problem: str) -> ChainReport:
            return ChainReport(last_seq, head_seq, head_hash, first_bad_seq=seq, problem=problem)

        while True:
            async with self._database.snapshot() as session:
                batch = await repository.entries_after(session, last_seq, head_seq, VERIFY_BATCH)
            if not batch:
                break
            for row in batch:
                expected = last_seq + 1
                if row['seq'] != expected:
                    return broken(
                        expected,
                        f"entry {expected} is missing: the chain jumps from entry "
                        f"{last_seq} to entry {row['seq']}",
                    )
                if chain_hash(row['prev_hash'], canonical_content(row)) != row['hash']:
                    return broken(
                        row['seq'], f"entry {row['seq']} was altered: its content does not match its hash"
                    )
                if row['prev_hash'] != last_hash:
                    return broken(
                        row['seq'],
                        f"entry {row['seq']} is out of place: it does not follow entry {last_seq} "
                        "(entries were reordered, or one before it was altered or removed)",
                    )
                last_seq, last_hash = row['seq'], row['hash']
        if last_seq != head_seq:
            return broken(
                last_seq + 1,
                f"entries {last_seq + 1} to {head_seq} are missing: the chain ends at entry "
                f"{last_seq} but its head records {head_seq} entries",
            )
        if last_hash != head_hash:
            return broken(last_seq, f"entry {last_seq} does not match the hash kept in the head")
        return ChainReport(entries=last_seq, head_seq=head_seq, head_hash=head_hash)
