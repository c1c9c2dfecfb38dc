"""`medicus collab index-text`: the text of files that have none yet, for search. Text is
read when a version is written (`Nodes.index_text`); files written before text search
existed, and those whose reading ran out of its few seconds, get it here, with more time
per file since nobody waits for an upload. Files without a format that has text (images)
are passed over quickly; a file that has no text after this (a scan, an encrypted PDF) is
looked at again by the next run. It can be stopped at any moment and run again."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from medicus.audit.actors import OPERATOR
from medicus.audit.service import AuditRecord, AuditTrail
from medicus.collab import repository
from medicus.collab.text import DocumentText, reader_for
from medicus.core.db import Database
from medicus.storage.service import ObjectStore

BATCH = 200
SECONDS = 30.0
"""Per file: an operator's run waits longer than an upload (`text.SECONDS`)."""

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class TextReport:
    files: int
    """Files without text looked at."""
    readable: int
    """Of them, those of a format that has text (PDF, Word, Excel, plain text)."""
    read: int
    """Of those, the ones that have text now."""


def _no_progress(done: int, total: int) -> None:
    """What a caller without a progress bar is told."""


class TextBackfill:
    def __init__(
        self,
        database: Database,
        storage: ObjectStore,
        audit: AuditTrail,
        seconds: float = SECONDS,
        actor: str = OPERATOR,
    ) -> None:
        self.database = database
        self.storage = storage
        self.audit = audit
        self.texts = DocumentText(storage, seconds)
        self.actor = actor

    async def run(self, progress: Progress = _no_progress) -> TextReport:
        """Read the text of every live file that has none; the numbers, also in the audit
        trail (never a file's name or text)."""
        async with self.database.snapshot() as session:
            total = await repository.count_files_without_text(session)
        files = readable = read = 0
        after = ""
        while batch := await self._batch(after):
            for file in batch:
                after = file.node_id
                files += 1
                if reader_for(file.content_type, file.name) is not None:
                    readable += 1
                    read += await self._index(file)
                progress(files, max(total, files))
        report = TextReport(files, readable, read)
        await self.audit.record(
            AuditRecord(
                "collab.index-text",
                self.actor,
                target="collab",
                detail={"files": files, "readable": readable, "read": read},
            )
        )
        return report

    async def _batch(self, after: str) -> list[repository.FileWithoutText]:
        async with self.database.snapshot() as session:
            return await repository.files_without_text(session, after, BATCH)

    async def _index(self, file: repository.FileWithoutText) -> int:
        stored = await self.storage.describe(file.object_id)
        text = None if stored is None else await self.texts.of(stored, file.name)
        if text is None:
            return 0
        async with self.database.transaction() as session:
            await repository.set_text(session, file.node_id, file.version, text)
        return 1
