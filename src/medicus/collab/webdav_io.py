"""The bytes of WebDAV's GET and PUT, between WsgiDAV's worker thread and the storage on the
server's event loop.

GET streams: `StoredReader` pulls the stored object's plaintext piece by piece (a few MiB at a
time, as `ObjectStore.stream` gives them) through the request's bridge; a whole file is never
in memory.

PUT is staged: WsgiDAV writes the body into what `begin_write` returns, and only then does the
file get its new version (`Files.write` needs the size, and a chunked body does not say it).
`SealedSpool` is that staging file: short-lived (the request's duration), in the data
directory's `tmp/`, without a name (an unlinked temporary file, so nothing is left behind when
the request fails or the process dies) and sealed: each piece is encrypted with AES-256-GCM
under a key that exists only in this object's memory, so no plaintext lies on disk, as with
the resumable uploads (`storage.uploads`)."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from wsgidav.dav_error import DAVError

from medicus.collab.webdav_context import DavRequest
from medicus.storage.service import ObjectStore

_LENGTH_BYTES = 4


def too_large(limit: int) -> DAVError:
    return DAVError(413, context_info=f"A file may have at most {limit} bytes.")


class SealedSpool:
    """A PUT's body, sealed piece by piece into an unnamed temporary file (see above)."""

    def __init__(self, folder: Path, limit: int) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self._file = tempfile.TemporaryFile(dir=folder)  # noqa: SIM115 (kept until discard)
        self._seal = AESGCM(AESGCM.generate_key(bit_length=256))
        self._limit = limit
        self._pieces = 0
        self.size = 0

    def write(self, data: bytes) -> int:
        if not data:
            return 0
        self.size += len(data)
        if self.size > self._limit:
            raise too_large(self._limit)
        sealed = self._seal.encrypt(self._nonce(self._pieces), bytes(data), None)
        self._file.write(len(sealed).to_bytes(_LENGTH_BYTES, "big") + sealed)
        self._pieces += 1
        return len(data)

    def writelines(self, pieces: Iterable[bytes]) -> None:
        for piece in pieces:
            self.write(piece)

    def close(self) -> None:
        """WsgiDAV's "the body is written"; the bytes stay until `discard`."""
        self._file.flush()

    def pieces(self) -> Iterator[bytes]:
        """The plaintext again, piece by piece."""
        self._file.seek(0)
        for number in range(self._pieces):
            length = int.from_bytes(self._file.read(_LENGTH_BYTES), "big")
            yield self._seal.decrypt(self._nonce(number), self._file.read(length), None)

    async def body(self) -> AsyncIterator[bytes]:
        """The plaintext for the loop, each piece read and opened in a worker thread."""
        pieces = self.pieces()
        while (piece := await asyncio.to_thread(next, pieces, None)) is not None:
            yield piece

    def discard(self) -> None:
        self._file.close()

    @staticmethod
    def _nonce(number: int) -> bytes:
        return number.to_bytes(12, "big")


class StoredReader:
    """A stored object's plaintext as the file-like WsgiDAV reads a GET's body from; `seek`
    (a Range request's start) before the first read."""

    def __init__(self, request: DavRequest, storage: ObjectStore, object_id: str) -> None:
        self._request = request
        self._storage = storage
        self._object_id = object_id
        self._start = 0
        self._stream: AsyncIterator[bytes] | None = None
        self._piece = b""
        self._offset = 0

    def seek(self, offset: int, whence: int = 0) -> int:
        if self._stream is not None or whence != 0:
            raise ValueError("a stored object is read from one position on")
        self._start = offset
        return offset

    def read(self, size: int = -1) -> bytes:
        """Up to `size` bytes (fewer at the end of a piece); b"" at the end."""
        if self._offset >= len(self._piece):
            self._piece, self._offset = self._next_piece(), 0
        end = len(self._piece) if size < 0 else self._offset + size
        taken = self._piece[self._offset : end]
        self._offset += len(taken)
        return taken

    def close(self) -> None:
        if self._stream is not None:
            stream, self._stream = self._stream, None
            self._request.run(_closed(stream))

    def _next_piece(self) -> bytes:
        if self._stream is None:
            self._stream = self._storage.stream(self._object_id, self._start)
        return self._request.run(_following(self._stream))


async def _following(stream: AsyncIterator[bytes]) -> bytes:
    """The next piece that has bytes; b"" at the end."""
    async for piece in stream:
        if piece:
            return piece
    return b""


async def _closed(stream: AsyncIterator[bytes]) -> None:
    close = getattr(stream, "aclose", None)
    if close is not None:
        await close()
