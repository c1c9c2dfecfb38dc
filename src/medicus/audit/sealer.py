"""Background sealing of recorded audit entries into the hash chain, in every serve process.

Several processes may seal at once; the chain's lock makes them take turns, so running one per
replica needs no leader election. Pending entries live in the database, never only in memory.
"""

from __future__ import annotations

import contextlib

from sqlalchemy.exc import DBAPIError

from medicus.audit.service import SEAL_BATCH, AuditTrail
from medicus.core.logging import get_logger
from medicus.core.loops import ServerLoop

log = get_logger("medicus.audit.sealer")


class AuditSealer(ServerLoop):
    name = "audit-sealer"

    def __init__(self, trail: AuditTrail, interval_seconds: float) -> None:
        super().__init__()
        self._trail = trail
        self._interval = interval_seconds

    async def stop(self) -> None:
        """Let the loop finish its batch, then seal what is pending, so that a clean
        shutdown leaves nothing unsealed."""
        await super().stop()
        with contextlib.suppress(DBAPIError, OSError):
            await self._trail.seal_all()

    async def _run(self) -> None:
        while not self.stopping:
            try:
                sealed = await self._trail.seal()
            except (DBAPIError, OSError) as error:
                log.warning("audit sealing failed; retrying", error_type=type(error).__name__)
                sealed = 0
            if sealed < SEAL_BATCH:
                await self.rest(self._interval)
