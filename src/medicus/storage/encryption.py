"""Encryption at rest of stored objects: every object has its own random 256-bit data key and
is sealed in fixed-size chunks with AES-256-GCM, so that memory stays bounded for any size and
a byte range is opened without reading the whole object.

Written by hand on `cryptography`'s AES-GCM because no well-kept Python library offers a
seekable streaming AEAD (Tink's streaming AEAD has no maintained Python binding for it); the
construction is the STREAM one that Tink and age use (Hoang, Reyhanitabar, Rogaway, Vizár
2015): the nonce of chunk i is a per-object random prefix, the chunk's number and a flag for
the last chunk, and every chunk authenticates the header. A chunk changed, moved, dropped or
added, or an object cut short or extended, does not open.

Layout of a sealed object: a 16-byte header (`MDC1`, the plaintext chunk size as a 4-byte
big-endian number, the 7-byte nonce prefix, a reserved byte), then each chunk's ciphertext
with its 16-byte tag. An empty object is one empty last chunk. The data key is not in the
object: the owning organisation's key-encryption key wraps it (`keyring`), and the wrapped
key is kept beside the object's other metadata, so destroying it destroys the object on
every backend and in every old version a backend keeps (crypto-shredding).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC = b"MDC1"
HEADER_BYTES = 16
TAG_BYTES = 16
DATA_KEY_BYTES = 32
CHUNK_BYTES = 1024 * 1024
"""Plaintext bytes per chunk: a range read opens at most two chunks more than it returns."""
_PREFIX_BYTES = 7


class SealBroken(Exception):
    """A sealed object (or the part of it read) is not what was sealed: changed, cut short,
    or opened with another key. Never a partial plaintext."""


def new_data_key() -> bytes:
    return os.urandom(DATA_KEY_BYTES)


@dataclass(frozen=True)
class Header:
    chunk_bytes: int
    prefix: bytes

    def encode(self) -> bytes:
        return MAGIC + struct.pack(">I", self.chunk_bytes) + self.prefix + b"\0"

    @staticmethod
    def decode(raw: bytes) -> Header:
        if len(raw) != HEADER_BYTES or raw[:4] != MAGIC or raw[15:] != b"\0":
            raise SealBroken("not a sealed object of this format")
        (chunk_bytes,) = struct.unpack(">I", raw[4:8])
        if not 0 < chunk_bytes <= 64 * CHUNK_BYTES:
            raise SealBroken("a sealed object's chunk size is out of range")
        return Header(chunk_bytes, raw[8:15])

    def nonce(self, index: int, last: bool) -> bytes:
        return self.prefix + struct.pack(">I", index) + (b"\1" if last else b"\0")


def sealed_size(plain_size: int, chunk_bytes: int = CHUNK_BYTES) -> int:
    """The size of an object of `plain_size` bytes once sealed."""
    chunks = max(1, -(-plain_size // chunk_bytes))
    return HEADER_BYTES + plain_size + chunks * TAG_BYTES


def new_header(chunk_bytes: int = CHUNK_BYTES) -> Header:
    """The header of a new object: its chunk size and a fresh random nonce prefix."""
    return Header(chunk_bytes, os.urandom(_PREFIX_BYTES))


class Sealer:
    """Seals an object as its plaintext arrives, piece by piece (`push`, then `finish`).

    It can stop and go on elsewhere: `chunks_sealed` and `pending` (the plaintext that does
    not yet fill a chunk) are all of its state, so a resumable upload keeps them between
    requests and starts a new Sealer with them. A full chunk is sealed only once a byte
    after it arrived, because the last chunk is sealed differently (`finish`)."""

    def __init__(
        self, data_key: bytes, header: Header, chunks_sealed: int = 0, pending: bytes = b""
    ) -> None:
        self.header = header
        self.chunks_sealed = chunks_sealed
        self._aead = AESGCM(data_key)
        self._aad = header.encode()
        self._pending = bytearray(pending)

    @property
    def pending(self) -> bytes:
        return bytes(self._pending)

    def push(self, piece: bytes) -> list[bytes]:
        """Take more plaintext; the chunks it completed, sealed. Chunks are sealed from views
        of the plaintext, not copies: a piece of many chunks costs one pass."""
        size = self.header.chunk_bytes
        if len(self._pending) + len(piece) <= size:
            self._pending += piece
            return []
        data = memoryview(bytes(self._pending) + piece if self._pending else piece)
        sealed = []
        start = 0
        while len(data) - start > size:
            nonce = self.header.nonce(self.chunks_sealed, False)
            sealed.append(self._aead.encrypt(nonce, data[start : start + size], self._aad))
            self.chunks_sealed += 1
            start += size
        self._pending = bytearray(data[start:])
        return sealed

    def finish(self) -> bytes:
        """The last chunk, sealed: what is pending (possibly nothing)."""
        nonce = self.header.nonce(self.chunks_sealed, True)
        last = self._aead.encrypt(nonce, bytes(self._pending), self._aad)
        self._pending.clear()
        self.chunks_sealed += 1
        return last


def seal(
    data_key: bytes, chunks: Iterable[bytes], chunk_bytes: int = CHUNK_BYTES
) -> Iterator[bytes]:
    """The sealed object, piece by piece, of the bytes `chunks` yields (pieces of any size):
    the header, then one sealed chunk per `chunk_bytes` of plaintext."""
    sealer = Sealer(data_key, new_header(chunk_bytes))
    yield sealer.header.encode()
    for piece in chunks:
        yield from sealer.push(piece)
    yield sealer.finish()


@dataclass(frozen=True)
class SealedRange:
    """Which part of a sealed object holds plaintext bytes [start, end): read `offset` to
    `offset + length` of it (after its header) and `open_range` it."""

    header: Header
    first_chunk: int
    offset: int
    length: int
    skip: int
    take: int
    last_chunk: int


def locate(header: Header, plain_size: int, start: int, end: int) -> SealedRange:
    """Where plaintext bytes [start, end) of an object of `plain_size` bytes lie once sealed
    (0 ≤ start ≤ end ≤ plain_size)."""
    if not 0 <= start <= end <= plain_size:
        raise ValueError("a range within the object")
    size = header.chunk_bytes
    last_chunk = max(0, -(-plain_size // size) - 1)
    first = min(start // size, last_chunk)
    final = min(max(end - 1, start) // size, last_chunk)
    offset = HEADER_BYTES + first * (size + TAG_BYTES)
    length = sum(min(size, plain_size - i * size) + TAG_BYTES for i in range(first, final + 1))
    return SealedRange(header, first, offset, length, start - first * size, end - start, last_chunk)


def open_range(data_key: bytes, part: SealedRange, sealed: bytes) -> bytes:
    """The plaintext of `part` from the `sealed` bytes `locate` named."""
    header, size = part.header, part.header.chunk_bytes
    aead = AESGCM(data_key)
    plain = bytearray()
    position = 0
    index = part.first_chunk
    while position < len(sealed):
        chunk = sealed[position : position + size + TAG_BYTES]
        position += len(chunk)
        try:
            nonce = header.nonce(index, index == part.last_chunk)
            plain += aead.decrypt(nonce, chunk, header.encode())
        except InvalidTag:
            raise SealBroken(f"chunk {index} of a sealed object does not open") from None
        index += 1
    if len(plain) < part.skip + part.take:
        raise SealBroken("a sealed object is shorter than its size says")
    return bytes(plain[part.skip : part.skip + part.take])


class Opener:
    """Opens a whole sealed object as its bytes arrive, piece by piece (`push`, then
    `finish`): the counterpart of `Sealer` for a stream read from start to end."""

    def __init__(self, data_key: bytes) -> None:
        self._aead = AESGCM(data_key)
        self._buffer = bytearray()
        self._header: Header | None = None
        self._index = 0

    def push(self, piece: bytes) -> list[bytes]:
        """Take more sealed bytes; the plaintext of the chunks they completed (all but the
        last chunk, which `finish` opens)."""
        self._buffer += piece
        if self._header is None:
            if len(self._buffer) < HEADER_BYTES:
                return []
            self._header = Header.decode(bytes(self._buffer[:HEADER_BYTES]))
            del self._buffer[:HEADER_BYTES]
        sealed_chunk = self._header.chunk_bytes + TAG_BYTES
        plain = []
        while len(self._buffer) > sealed_chunk:
            chunk = bytes(self._buffer[:sealed_chunk])
            del self._buffer[:sealed_chunk]
            plain.append(_open_chunk(self._aead, self._header, self._index, chunk, False))
            self._index += 1
        return plain

    def finish(self) -> bytes:
        """The last chunk's plaintext; SealBroken if the object ended early or too late."""
        if self._header is None:
            raise SealBroken("a sealed object without its header")
        return _open_chunk(self._aead, self._header, self._index, bytes(self._buffer), True)


def unseal(data_key: bytes, sealed: Iterable[bytes]) -> Iterator[bytes]:
    """The plaintext of a whole sealed object, chunk by chunk, as it streams in; SealBroken
    for a changed, reordered, cut short or extended object (after the last good chunk)."""
    opener = Opener(data_key)
    for piece in sealed:
        yield from opener.push(piece)
    yield opener.finish()


def _open_chunk(aead: AESGCM, header: Header, index: int, chunk: bytes, last: bool) -> bytes:
    try:
        return aead.decrypt(header.nonce(index, last), chunk, header.encode())
    except InvalidTag:
        raise SealBroken(f"chunk {index} of a sealed object does not open") from None
