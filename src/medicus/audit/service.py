"""The audit trail's use-cases: record entries, seal them into the hash chain, verify the chain.

Each sealed entry carries the SHA-256 of its predecessor (`prev_hash`) and its own `hash` over
`prev_hash` and its canonical content (who, organisation, action, target, outcome, client
address, time, request id, detail, and the Patient records it concerns). Changing, removing or
reordering an entry breaks a link.

Recording is cheap and lock-free (one INSERT in the caller's transaction); sealing takes the
chain's lock once per batch. So audited requests never queue behind each other's commits.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from medicus.audit import repository
from medicus.audit.repository import GENESIS_HASH
from medicus.core.db import Database, utc_now
from medicus.core.http import current_client_address, current_request_id
from medicus.core.ids import is_fhir_id

if TYPE_CHECKING:
    from medicus.audit.search import AuditQuery

VERIFY_BATCH = 5_000
SEAL_BATCH = 1_000


class Outcome(StrEnum):
    SUCCESS = "success"
    DENIED = "denied"
    FAILED = "failed"


@dataclass(frozen=True)
class AuditRecord:
    """What happened, as a capability reports it to the trail (sealed, it becomes an entry of
    the chain; the FHIR `AuditEvent` resource is a view of that entry, see events.py). `actor`
    names the subject (`user:ID`, `service:ID`, `system:NAME`); `target` names what was
    touched; `patients` the ids of the Patient records whose data it concerned (for their
    access log)."""

    action: str
    actor: str
    outcome: Outcome = Outcome.SUCCESS
    organisation: str | None = None
    target: str | None = None
    client_address: str | None = None
    request_id: str | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)
    patients: frozenset[str] = frozenset()

    def about(self, *patient_ids: str | None) -> AuditRecord:
        """This event, concerning the Patient records `patient_ids` too (None: no record).
        What cannot be a record's id (a refused request's path) is left out: the sealer
        indexes these, and one bad value would stop it."""
        found = frozenset(
            patient for patient in patient_ids if patient is not None and is_fhir_id(patient)
        )
        return replace(self, patients=self.patients | found) if found else self

    def noting(self, **detail: Any) -> AuditRecord:
        """This event with more `detail`."""
        return replace(self, detail={**self.detail, **detail})

    def refused(self, reason: str) -> AuditRecord:
        """This event as a refusal, for `reason`."""
        return replace(self, outcome=Outcome.DENIED).noting(reason=reason)


@dataclass(frozen=True)
class ChainReport:
    """The result of walking the chain; `problem` names the first broken entry."""

    entries: int
    head_seq: int
    head_hash: str
    pending: int = 0
    first_bad_seq: int | None = None
    problem: str | None = None

    @property
    def intact(self) -> bool:
        return self.problem is None


_CONTENT_FIELDS = (
    "action",
    "actor",
    "client_address",
    "detail",
    "occurred_at",
    "organisation",
    "outcome",
    "patients",
    "request_id",
    "target",
)


def canonical_content(entry: Mapping[str, Any] | RowMapping) -> bytes:
    """The bytes an entry's hash covers: its content fields as sorted-key JSON, the time as
    ISO 8601 UTC with microseconds. `patients` is left out where an entry has none, so the
    hashes of entries sealed before it existed stay what they were."""
    content = {name: entry[name] for name in _CONTENT_FIELDS}
    content["occurred_at"] = entry["occurred_at"].astimezone(dt.UTC).isoformat("T", "microseconds")
    if content["patients"] is None:
        del content["patients"]
    return orjson.dumps(content, option=orjson.OPT_SORT_KEYS)


def patients_of(entry: Mapping[str, Any] | RowMapping) -> list[str]:
    """The Patient record ids an entry concerns."""
    return entry["patients"].split() if entry["patients"] else []


def chain_hash(prev_hash: str, content: bytes) -> str:
    return hashlib.sha256(prev_hash.encode("ascii") + b"\n" + content).hexdigest()


class AuditTrail:
    """Records, seals and verifies the audit trail. Capabilities record through `append`,
    inside the transaction that does the audited work, so that work and entry commit together."""

    def __init__(self, database: Database, clock: Callable[[], dt.datetime] = utc_now) -> None:
        self._database = database
        self._clock = clock
        self._waiting: list[tuple[list[dict[str, Any]], asyncio.Future[None]]] = []
        self._committing = asyncio.Lock()

    async def append(self, session: AsyncSession, *events: AuditRecord) -> None:
        """Record `events` in the caller's writing transaction."""
        if events:
            occurred_at = self._clock()
            await repository.add_pending(session, [self._row(e, occurred_at) for e in events])

    async def record(self, *events: AuditRecord) -> None:
        """Record `events` in a transaction of their own, and return once it is committed.
        Concurrent callers share transactions (group commit): whoever finds no commit in
        progress writes everything recorded until then, so many audited reads cost one
        commit instead of one each, and none returns before its entry is durable."""
        if not events:
            return
        occurred_at = self._clock()
        rows = [self._row(event, occurred_at) for event in events]
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((rows, done))
        async with self._committing:
            if not done.done():
                await self._commit_waiting()
        await done

    async def _commit_waiting(self) -> None:
        """Commit everything waiting; each waiter learns the outcome through its future."""
        batch, self._waiting = self._waiting, []
        try:
            await self._database.insert_many(
                repository.PENDING, [row for rows, _ in batch for row in rows]
            )
        except Exception as error:
            for _, waiter in batch:
                waiter.set_exception(error)
        else:
            for _, waiter in batch:
                waiter.set_result(None)
        finally:
            for _, waiter in batch:
                if not waiter.done():
                    waiter.set_exception(RuntimeError("the audit commit was interrupted"))

    @staticmethod
    def _row(event: AuditRecord, occurred_at: dt.datetime) -> dict[str, Any]:
        return {
            "occurred_at": occurred_at,
            "actor": event.actor,
            "organisation": event.organisation,
            "action": event.action,
            "target": event.target,
            "outcome": str(event.outcome),
            "client_address": event.client_address or current_client_address(),
            "request_id": event.request_id or current_request_id(),
            "detail": orjson.dumps(dict(event.detail), option=orjson.OPT_SORT_KEYS).decode(),
            "patients": " ".join(sorted(event.patients)) or None,
        }

    async def seal(self, limit: int = SEAL_BATCH) -> int:
        """Append up to `limit` pending entries, oldest first, to the chain; returns how many."""
        if await self._database.fetch_one(repository.ANY_PENDING) is None:
            return 0
        async with self._database.transaction() as session:
            head_seq, head_hash = await repository.lock_head(session)
            pending = await repository.oldest_pending(session, limit)
            if not pending:
                return 0
            entries = []
            for offset, row in enumerate(pending, start=1):
                entry = {name: row[name] for name in _CONTENT_FIELDS}
                entry["seq"] = head_seq + offset
                entry["prev_hash"] = head_hash
                entry["hash"] = head_hash = chain_hash(head_hash, canonical_content(entry))
                entries.append(entry)
            concerned = [
                {"patient_id": patient, "seq": entry["seq"]}
                for entry in entries
                for patient in patients_of(entry)
            ]
            await repository.seal(session, entries, concerned, [row["id"] for row in pending])
            return len(entries)

    async def seal_all(self) -> int:
        """Seal until nothing recorded so far is pending."""
        total = 0
        while sealed := await self.seal():
            total += sealed
        return total

    async def search(self, query: AuditQuery) -> tuple[list[RowMapping], int | None]:
        """One page of sealed entries that meet `query`, newest first, and the cursor of the
        page after it (None: the last page)."""
        async with self._database.snapshot() as session:
            found = list(await repository.matching(session, query))
        page = found[: query.limit]
        return page, page[-1]["seq"] if len(found) > query.limit else None

    async def entry(self, seq: int) -> RowMapping | None:
        """The sealed entry with sequence number `seq`."""
        async with self._database.snapshot() as session:
            return await repository.entry(session, seq)

    async def verify(self) -> ChainReport:
        """Walk the sealed chain up to its head and report the first entry that was altered,
        removed or reordered. Entries sealed while it runs are left for the next run."""
        async with self._database.snapshot() as session:
            head = await repository.head(session)
            pending = await repository.count_pending(session)
        head_seq, head_hash = head or (0, GENESIS_HASH)
        last_seq, last_hash = 0, GENESIS_HASH

        def broken(seq: int, problem: str) -> ChainReport:
            return ChainReport(last_seq, head_seq, head_hash, pending, seq, problem)

        while True:
            async with self._database.snapshot() as session:
                batch = await repository.entries_after(session, last_seq, head_seq, VERIFY_BATCH)
            if not batch:
                break
            for row in batch:
                seq = row["seq"]
                if seq != last_seq + 1:
                    return broken(
                        last_seq + 1,
                        f"entry {last_seq + 1} is missing: the chain jumps from entry "
                        f"{last_seq} to entry {seq}",
                    )
                if chain_hash(row["prev_hash"], canonical_content(row)) != row["hash"]:
                    return broken(seq, f"entry {seq} was altered: its content does not match")
                if row["prev_hash"] != last_hash:
                    return broken(
                        seq,
                        f"entry {seq} is out of place: it does not follow entry {last_seq} "
                        "(entries were reordered, or one before it was altered or removed)",
                    )
                last_seq, last_hash = seq, row["hash"]
        if last_seq != head_seq:
            return broken(
                last_seq + 1,
                f"entries {last_seq + 1} to {head_seq} are missing: the chain ends at entry "
                f"{last_seq} but its head records {head_seq} entries",
            )
        if last_hash != head_hash:
            return broken(last_seq, f"entry {last_seq} does not match the hash kept in the head")
        return ChainReport(last_seq, head_seq, head_hash, pending)
