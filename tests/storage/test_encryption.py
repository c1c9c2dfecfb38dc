"""Objects sealed in chunks: whole and by range they open to exactly what was sealed, in
bounded pieces; anything changed, moved, cut short, extended or opened with another key does
not open at all."""

from __future__ import annotations

import os

import pytest

from medicus.storage.encryption import (
    HEADER_BYTES,
    TAG_BYTES,
    Header,
    SealBroken,
    locate,
    new_data_key,
    open_range,
    seal,
    sealed_size,
    unseal,
)

CHUNK = 64


def _sealed(key: bytes, plain: bytes, piece: int = 17) -> bytes:
    pieces = (plain[i : i + piece] for i in range(0, len(plain), piece))
    return b"".join(seal(key, pieces, CHUNK))


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 3 * CHUNK + 5])
def test_an_object_opens_to_what_was_sealed(size: int) -> None:
    key, plain = new_data_key(), os.urandom(size)
    sealed = _sealed(key, plain)
    assert len(sealed) == sealed_size(size, CHUNK)
    if size >= 16:  # a shorter random plaintext may turn up in the ciphertext by chance
        assert plain not in sealed
    pieces = [sealed[i : i + 50] for i in range(0, len(sealed), 50)]
    assert b"".join(unseal(key, pieces)) == plain


def test_the_same_bytes_sealed_twice_differ() -> None:
    key, plain = new_data_key(), b"x" * 200
    assert _sealed(key, plain) != _sealed(key, plain)


def test_unsealing_yields_one_chunk_at_a_time() -> None:
    key, plain = new_data_key(), os.urandom(10 * CHUNK)
    opened = list(unseal(key, [_sealed(key, plain)]))
    assert max(len(piece) for piece in opened) == CHUNK
    assert len(opened) == 10


@pytest.mark.parametrize(
    ("start", "end"),
    [(0, 0), (0, 1), (5, 70), (63, 65), (64, 128), (100, 200), (0, 200), (199, 200), (200, 200)],
)
def test_a_range_opens_from_its_chunks_alone(start: int, end: int) -> None:
    key, plain = new_data_key(), os.urandom(200)
    sealed = _sealed(key, plain)
    header = Header.decode(sealed[:HEADER_BYTES])
    part = locate(header, len(plain), start, end)
    assert part.length <= 2 * (CHUNK + TAG_BYTES) + (end - start) + TAG_BYTES
    piece = sealed[part.offset : part.offset + part.length]
    assert open_range(key, part, piece) == plain[start:end]


def test_a_range_outside_the_object_is_refused() -> None:
    header = Header(CHUNK, b"1234567")
    with pytest.raises(ValueError, match="within the object"):
        locate(header, 100, 90, 101)


def _changed(sealed: bytes, position: int) -> bytes:
    return sealed[:position] + bytes([sealed[position] ^ 1]) + sealed[position + 1 :]


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda s: _changed(s, 2), id="header"),
        pytest.param(lambda s: _changed(s, HEADER_BYTES + 3), id="first chunk"),
        pytest.param(lambda s: _changed(s, len(s) - 1), id="last tag"),
        pytest.param(lambda s: s[: HEADER_BYTES + CHUNK + TAG_BYTES], id="cut after a chunk"),
        pytest.param(lambda s: s[:-5], id="cut short"),
        pytest.param(lambda s: s + b"more", id="extended"),
        pytest.param(
            lambda s: (
                s[:HEADER_BYTES]
                + s[HEADER_BYTES + CHUNK + TAG_BYTES : HEADER_BYTES + 2 * (CHUNK + TAG_BYTES)]
                + s[HEADER_BYTES : HEADER_BYTES + CHUNK + TAG_BYTES]
                + s[HEADER_BYTES + 2 * (CHUNK + TAG_BYTES) :]
            ),
            id="chunks swapped",
        ),
        pytest.param(lambda s: s[:10], id="no header"),
    ],
)
def test_a_changed_object_does_not_open(tamper: object) -> None:
    key, plain = new_data_key(), os.urandom(3 * CHUNK + 10)
    sealed = tamper(_sealed(key, plain))  # type: ignore[operator]
    with pytest.raises(SealBroken):
        b"".join(unseal(key, [sealed]))


def test_another_key_does_not_open_it() -> None:
    plain = os.urandom(100)
    sealed = _sealed(new_data_key(), plain)
    with pytest.raises(SealBroken):
        b"".join(unseal(new_data_key(), [sealed]))
    header = Header.decode(sealed[:HEADER_BYTES])
    part = locate(header, 100, 0, 10)
    with pytest.raises(SealBroken):
        open_range(new_data_key(), part, sealed[part.offset : part.offset + part.length])


def test_a_range_of_a_shortened_object_does_not_open() -> None:
    key, plain = new_data_key(), os.urandom(200)
    sealed = _sealed(key, plain)
    header = Header.decode(sealed[:HEADER_BYTES])
    part = locate(header, 200, 150, 200)
    piece = sealed[part.offset : part.offset + part.length - 30]
    with pytest.raises(SealBroken):
        open_range(key, part, piece)
