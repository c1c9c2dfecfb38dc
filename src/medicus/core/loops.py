"""Loops that a server process runs beside its requests (sealing the audit trail, following
revocations, background updates): one lifecycle for all of them."""

from __future__ import annotations

import asyncio
import contextlib


class ServerLoop:
    """`start` runs `_run` as a task; `stop` asks it to end and waits until the round under
    way is done — a round is never cancelled inside its transaction. `_run` loops while not
    `stopping` and rests between rounds with `rest`, which a stop cuts short."""

    name = "server-loop"

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None
        self._stop_asked = asyncio.Event()

    @property
    def stopping(self) -> bool:
        return self._stop_asked.is_set()

    def start(self) -> None:
        self._stop_asked.clear()
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        self._stop_asked.set()
        if self._task is not None:
            await self._task
            self._task = None

    async def rest(self, seconds: float) -> None:
        """Wait `seconds`, or less if a stop is asked meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop_asked.wait(), seconds)

    async def _run(self) -> None:
        raise NotImplementedError
