"""Background sealing of recorded audit entries into the hash chain, in every serve process.

Several processes may seal at once; the chain's lock makes them take turns, so running one per
replica needs no leader election. Pending entries live in the database, never only in memory.
"""

from __future__ import annotations

import asyncio
import contextlib

from sqlalchemy.exc import DBAPIError

from medicus.audit.service import SEAL_BATCH, AuditTrail
from medicus.core.logging import get_logger

log = get_logger("medicus.audit.sealer")


class AuditSealer:
    def __init__(self, trail: AuditTrail, interval_seconds: float) -> None:
        self._trail = trail
        self._interval = interval_seconds
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    def start(self) -> None:
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name="audit-sealer")

    async def stop(self) -> None:
        """Let the loop finish its batch (it is never cancelled inside a transaction), then
        seal what is pending, so that a clean shutdown leaves nothing unsealed."""
        self._stopping.set()
        if self._task is not None:
            await self._task
            self._task = None
        with contextlib.suppress(DBAPIError, OSError):
            await self._trail.seal_all()

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                sealed = await self._trail.seal()
            except (DBAPIError, OSError) as error:
                log.warning("audit sealing failed; retrying", error_type=type(error).__name__)
                sealed = 0
            if sealed < SEAL_BATCH:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self._interval)
