"""Writing one object to several backends at once: where it goes (`placement`) and the
writers that take its sealed bytes side by side (`ReplicaWriters`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Collection, Mapping, Sequence

from medicus.storage.backends import Backend, BackendError, BackendWriter
from medicus.storage.repository import PENDING, PRESENT


def placement(
    backends: Mapping[str, Backend], draining: Collection[str], replicas: int
) -> list[str]:
    """The backends a new object goes to: the first `replicas` in configured order, passing
    over those being drained (a migration off them is under way) while others remain."""
    names = [name for name in backends if name not in draining] or list(backends)
    return names[:replicas]


async def ahead(source: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The batches of `source`, each next one already being made while the caller works on
    this one (received and sealed while this one is written; read and opened while this one
    is sent): the stages overlap, one batch ahead, so memory stays at two batches."""
    following = asyncio.ensure_future(anext(source))
    try:
        while True:
            try:
                batch = await following
            except StopAsyncIteration:
                return
            following = asyncio.ensure_future(anext(source))
            yield batch
    finally:
        following.cancel()  # the caller stopped early: the batch being made is not wanted
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await following


class ReplicaWriters:
    """The sealed bytes of one object, written to several backends side by side, each in its
    own thread. A backend that fails is dropped and its replica left `pending` for the
    background work to catch up; the others go on."""

    def __init__(self, key: str, backends: Sequence[Backend]) -> None:
        self._key = key
        self._backends = list(backends)

    async def write_all(self, sealed: AsyncIterator[bytes]) -> dict[str, str]:
        """Write all of `sealed` to every backend; each backend's replica state. If
        `sealed` itself fails, every writer is aborted and the error raised."""
        states = {backend.name: PENDING for backend in self._backends}
        writers: dict[str, BackendWriter] = {}
        for backend in self._backends:
            try:
                writers[backend.name] = await asyncio.to_thread(backend.writer, self._key)
            except BackendError:
                continue
        try:
            async for batch in ahead(sealed):
                await self._each(writers, lambda writer, b=batch: writer.write(b))
        except BaseException:
            await asyncio.gather(*(asyncio.to_thread(w.abort) for w in writers.values()))
            raise
        await self._each(writers, BackendWriter.close)
        states.update({name: PRESENT for name in writers})
        return states

    @staticmethod
    async def _each(writers: dict[str, BackendWriter], action: object) -> None:
        """Do `action` with every writer at once; drop (and abort) those that fail."""
        names = list(writers)
        results = await asyncio.gather(
            *(asyncio.to_thread(action, writers[name]) for name in names),  # type: ignore[arg-type]
            return_exceptions=True,
        )
        for name, result in zip(names, results, strict=True):
            if isinstance(result, BackendError):
                failed = writers.pop(name)
                await asyncio.to_thread(failed.abort)
            elif isinstance(result, BaseException):
                raise result
