"""Key-encryption keys: each organisation's keys wrap the data keys of its objects
(`encryption`), so that an organisation's objects can be re-keyed without re-encrypting them
(`rotate` a new current key, then re-wrap each data key), and a KMS or HSM can hold the keys
instead of medicus. `Keyring` is what the storage needs of one; `LocalKeyring` is the embedded
set-up's: a key file in the data directory, its keys sealed with the platform's secret
(`SecretBox`), written with owner-only permissions.

A wrapped data key names the key that wrapped it (`kek_id`) and is bound to its organisation:
another organisation's key, or the right key with another organisation's name, does not
unwrap it."""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from medicus.core.crypto import SecretBox

_PURPOSE = "storage key-encryption key"
_NONCE_BYTES = 12


class UnwrapFailed(Exception):
    """A wrapped data key that this keyring cannot open for this organisation."""


@dataclass(frozen=True)
class WrappedKey:
    kek_id: str
    blob: bytes
    """Nonce and AES-GCM ciphertext of the data key."""


class Keyring(Protocol):
    def wrap(self, organisation_id: str, data_key: bytes) -> WrappedKey: ...

    def unwrap(self, organisation_id: str, wrapped: WrappedKey) -> bytes: ...

    def rotate(self, organisation_id: str) -> str:
        """Make a new key the organisation's current one (older ones still unwrap); its id."""
        ...

    def current(self, organisation_id: str) -> str | None:
        """The id of the organisation's current key, None before its first."""
        ...


def _bound(organisation_id: str, kek_id: str) -> bytes:
    return f"medicus data key|{organisation_id}|{kek_id}".encode()


class LocalKeyring:
    """Keys in one JSON file: per organisation, its keys by id (each sealed with the
    platform's secret) and the id of the current one."""

    def __init__(self, path: Path, box: SecretBox) -> None:
        self._path = path
        self._box = box
        self._keys: dict[str, dict[str, bytes]] = {}
        self._current: dict[str, str] = {}
        self._seen: tuple[int, int] | None = None
        if path.exists():
            self._load()

    def _load(self) -> None:
        self._seen = _stamp(self._path)
        stored = orjson.loads(self._path.read_bytes())
        for organisation_id, entry in stored.items():
            self._keys[organisation_id] = {
                kek_id: self._box.decrypt(_PURPOSE, sealed)
                for kek_id, sealed in entry["keys"].items()
            }
            self._current[organisation_id] = entry["current"]

    def _save(self) -> None:
        stored = {
            organisation_id: {
                "current": self._current[organisation_id],
                "keys": {kek_id: self._box.encrypt(_PURPOSE, key) for kek_id, key in keys.items()},
            }
            for organisation_id, keys in self._keys.items()
        }
        self._path.parent.mkdir(parents=True, exist_ok=True)
        written = self._path.with_suffix(".tmp")
        descriptor = os.open(written, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            file.write(orjson.dumps(stored, option=orjson.OPT_SORT_KEYS))
            file.flush()
            os.fsync(file.fileno())
        os.replace(written, self._path)
        self._seen = _stamp(self._path)

    def current(self, organisation_id: str) -> str | None:
        if _stamp(self._path) != self._seen:
            self._load()  # `medicus storage rotate-key` or another process changed the file
        return self._current.get(organisation_id)

    @contextlib.contextmanager
    def _changing(self) -> Iterator[None]:
        """Change the file under an exclusive lock, on its newest content: several medicus
        processes on one machine share it, and none may lose a key another one made."""
        self._path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self._path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            if self._path.exists():
                self._load()
            yield
            self._save()
        finally:
            os.close(descriptor)

    def rotate(self, organisation_id: str) -> str:
        kek_id = f"local-{secrets.token_hex(8)}"
        with self._changing():
            self._keys.setdefault(organisation_id, {})[kek_id] = AESGCM.generate_key(256)
            self._current[organisation_id] = kek_id
        return kek_id

    def _first_key(self, organisation_id: str) -> str:
        """The organisation's current key, made if it has none (also by another process)."""
        with self._changing():
            if organisation_id not in self._current:
                kek_id = f"local-{secrets.token_hex(8)}"
                self._keys.setdefault(organisation_id, {})[kek_id] = AESGCM.generate_key(256)
                self._current[organisation_id] = kek_id
        return self._current[organisation_id]

    def wrap(self, organisation_id: str, data_key: bytes) -> WrappedKey:
        kek_id = self.current(organisation_id) or self._first_key(organisation_id)
        nonce = os.urandom(_NONCE_BYTES)
        sealed = AESGCM(self._keys[organisation_id][kek_id]).encrypt(
            nonce, data_key, _bound(organisation_id, kek_id)
        )
        return WrappedKey(kek_id, nonce + sealed)

    def unwrap(self, organisation_id: str, wrapped: WrappedKey) -> bytes:
        key = self._keys.get(organisation_id, {}).get(wrapped.kek_id)
        if key is None and self._path.exists():
            self._load()  # another process may have made or rotated the key since
            key = self._keys.get(organisation_id, {}).get(wrapped.kek_id)
        if key is None:
            raise UnwrapFailed("the key that wrapped this data key is not on this keyring")
        nonce, sealed = wrapped.blob[:_NONCE_BYTES], wrapped.blob[_NONCE_BYTES:]
        try:
            return AESGCM(key).decrypt(nonce, sealed, _bound(organisation_id, wrapped.kek_id))
        except (InvalidTag, ValueError):
            raise UnwrapFailed("a wrapped data key does not open") from None


def _stamp(path: Path) -> tuple[int, int] | None:
    """When the file last changed and its size (None: there is none): a cheap way for a
    process to notice another one's change."""
    try:
        status = path.stat()
    except FileNotFoundError:
        return None
    return status.st_mtime_ns, status.st_size


def rewrap(keyring: Keyring, organisation_id: str, wrapped: WrappedKey) -> WrappedKey:
    """`wrapped` under the organisation's current key (as it is if it is under it already):
    what key rotation does to each data key, without touching the object."""
    if wrapped.kek_id == keyring.current(organisation_id):
        return wrapped
    return keyring.wrap(organisation_id, keyring.unwrap(organisation_id, wrapped))
