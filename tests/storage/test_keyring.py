"""The local keyring: data keys wrapped per organisation, kept across restarts in a file that
holds no key in the clear and only its owner reads; rotation makes a new current key while
older wrapped keys still open, and re-wrapping moves them to it."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from medicus.core.crypto import SecretBox
from medicus.storage.encryption import new_data_key
from medicus.storage.keyring import LocalKeyring, UnwrapFailed, WrappedKey, rewrap

SECRET = b"platform secret for the keyring tests, 32+ bytes"


def _keyring(tmp_path: Path, secret: bytes = SECRET) -> LocalKeyring:
    return LocalKeyring(tmp_path / "keys" / "storage.json", SecretBox(secret))


def test_a_data_key_unwraps_for_its_organisation_only(tmp_path: Path) -> None:
    keyring, data_key = _keyring(tmp_path), new_data_key()
    wrapped = keyring.wrap("hospital-a", data_key)
    assert data_key not in wrapped.blob
    assert keyring.unwrap("hospital-a", wrapped) == data_key
    keyring.wrap("hospital-b", new_data_key())
    with pytest.raises(UnwrapFailed):
        keyring.unwrap("hospital-b", wrapped)
    moved = WrappedKey(keyring.current("hospital-b") or "", wrapped.blob)
    with pytest.raises(UnwrapFailed):
        keyring.unwrap("hospital-b", moved)


def test_the_keys_survive_a_restart_and_are_never_stored_in_the_clear(tmp_path: Path) -> None:
    keyring, data_key = _keyring(tmp_path), new_data_key()
    wrapped = keyring.wrap("hospital-a", data_key)
    path = tmp_path / "keys" / "storage.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    stored = path.read_bytes()
    kek = keyring._keys["hospital-a"][wrapped.kek_id]
    assert kek not in stored
    assert _keyring(tmp_path).unwrap("hospital-a", wrapped) == data_key
    with pytest.raises(Exception, match="does not open"):
        _keyring(tmp_path, b"another platform secret, also long enough")


def test_rotation_keeps_old_keys_and_rewrapping_moves_to_the_new_one(tmp_path: Path) -> None:
    keyring, data_key = _keyring(tmp_path), new_data_key()
    old = keyring.wrap("hospital-a", data_key)
    new_kek = keyring.rotate("hospital-a")
    assert new_kek != old.kek_id
    assert keyring.current("hospital-a") == new_kek
    assert keyring.unwrap("hospital-a", old) == data_key
    moved = rewrap(keyring, "hospital-a", old)
    assert moved.kek_id == new_kek
    assert keyring.unwrap("hospital-a", moved) == data_key
    assert rewrap(keyring, "hospital-a", moved) is moved


def test_a_damaged_wrapped_key_does_not_open(tmp_path: Path) -> None:
    keyring = _keyring(tmp_path)
    wrapped = keyring.wrap("hospital-a", new_data_key())
    damaged = WrappedKey(wrapped.kek_id, wrapped.blob[:-1] + bytes([wrapped.blob[-1] ^ 1]))
    for bad in (damaged, WrappedKey(wrapped.kek_id, b"short"), WrappedKey("unknown", b"x" * 60)):
        with pytest.raises(UnwrapFailed):
            keyring.unwrap("hospital-a", bad)


def test_a_rotation_by_another_process_becomes_current_here_too(tmp_path: Path) -> None:
    server, command = _keyring(tmp_path), _keyring(tmp_path)
    first = server.wrap("hospital-a", new_data_key()).kek_id
    assert command.current("hospital-a") == first
    rotated = command.rotate("hospital-a")
    assert rotated != first
    assert server.current("hospital-a") == rotated
    assert server.wrap("hospital-a", new_data_key()).kek_id == rotated
