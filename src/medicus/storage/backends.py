"""The places where sealed objects lie: a local directory, S3-compatible, Azure Blob or Google
Cloud Storage, all through obstore, each named and configured once (`BackendConfig`).

A backend holds only sealed bytes (`encryption`); it never sees a plaintext or a key.

Calls are synchronous and meant to run in a worker thread (`asyncio.to_thread`): obstore's
async API, used from short processes, made some of them abort at interpreter exit (tokio's
threads, 3 in 40 runs measured with obstore 0.12.1); its sync API did not (docs/storage.md).
Retries are few and short, so that a backend that is down fails a request within seconds and
the storage service turns to the next replica instead of waiting minutes (obstore's default).
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import obstore
from obstore.exceptions import NotFoundError
from obstore.store import LocalStore, from_url

from medicus.storage.config import BackendConfig

if TYPE_CHECKING:
    from obstore.store import ClientConfig, ObjectStore, RetryConfig


class BackendError(Exception):
    """A backend could not do what was asked (down, refusing, misconfigured)."""


class ObjectMissing(BackendError):
    """The backend answered, and it does not hold the object."""


def _retry(config: BackendConfig) -> RetryConfig:
    return {
        "max_retries": config.retries,
        "retry_timeout": dt.timedelta(seconds=config.connect_timeout_seconds * 3),
        "backoff": {
            "init_backoff": dt.timedelta(milliseconds=50),
            "max_backoff": dt.timedelta(seconds=1),
        },
    }


def _client(config: BackendConfig) -> ClientConfig:
    return {
        "allow_http": config.allow_http,
        "timeout": dt.timedelta(seconds=config.timeout_seconds),
        "connect_timeout": dt.timedelta(seconds=config.connect_timeout_seconds),
    }


def open_store(config: BackendConfig) -> ObjectStore:
    """The obstore store a configuration names; ValueError with one sentence if it cannot."""
    scheme = config.scheme()
    if scheme == "file":
        path = Path(urlsplit(config.url).path)
        if not path.is_absolute():
            raise ValueError(
                f"storage backend '{config.name}': a file:// url needs an absolute path"
            )
        return LocalStore(path, mkdir=True)
    options: dict[str, Any] = {
        key: value.get_secret_value() for key, value in config.options.items()
    }
    try:
        return from_url(
            config.url, client_options=_client(config), retry_config=_retry(config), **options
        )
    except Exception as error:  # obstore names a wrong key or value in its message
        raise ValueError(f"storage backend '{config.name}': {error}") from None


class Backend:
    """One named backend. Every method blocks; BackendError when the backend fails."""

    def __init__(self, name: str, store: ObjectStore) -> None:
        self.name = name
        self._store = store

    @classmethod
    def from_config(cls, config: BackendConfig) -> Backend:
        return cls(config.name, open_store(config))

    def write(self, key: str, pieces: Iterable[bytes]) -> int:
        """Write the object `key` from `pieces` (multipart above 10 MiB); the bytes written.
        Nothing is visible under `key` unless all of it was written. An error of `pieces`
        itself (the upload broke off) comes through as it is: the backend did not fail."""
        writer = self.writer(key)
        written = 0
        try:
            for piece in pieces:
                written += writer.write(piece)
            writer.close()
        except BaseException:
            writer.abort()
            raise
        return written

    def writer(self, key: str) -> BackendWriter:
        """A writer that takes the object piece by piece (`write`), then `close` or `abort`."""
        try:
            return BackendWriter(self.name, obstore.open_writer(self._store, key))
        except Exception as error:
            raise _failure(self.name, "write", error) from error

    def read_range(self, key: str, start: int, end: int) -> bytes:
        """Bytes [start, end) of the object."""
        if end <= start:
            return b""
        try:
            return bytes(obstore.get_range(self._store, key, start=start, end=end))
        except Exception as error:
            raise _failure(self.name, "read", error) from error

    def read(self, key: str, piece_bytes: int = 8 * 1024 * 1024) -> Iterator[bytes]:
        """The whole object, in pieces of about `piece_bytes`."""
        try:
            for piece in obstore.get(self._store, key).stream(min_chunk_size=piece_bytes):
                yield bytes(piece)
        except Exception as error:
            raise _failure(self.name, "read", error) from error

    def size(self, key: str) -> int | None:
        """The object's size, None if the backend does not hold it."""
        try:
            return int(obstore.head(self._store, key)["size"])
        except (NotFoundError, FileNotFoundError):
            return None
        except Exception as error:
            raise _failure(self.name, "head", error) from error

    def delete(self, key: str) -> None:
        """Remove the object (no error if it is not there)."""
        try:
            obstore.delete(self._store, key)
        except (NotFoundError, FileNotFoundError):
            return
        except Exception as error:
            raise _failure(self.name, "delete", error) from error

    def keys(self, prefix: str = "") -> Iterator[str]:
        """The keys of every object under `prefix`."""
        try:
            for batch in obstore.list(self._store, prefix or None):
                for meta in batch:
                    yield str(meta["path"])
        except Exception as error:
            raise _failure(self.name, "list", error) from error


class BackendWriter:
    """An object being written piece by piece to one backend."""

    def __init__(self, backend: str, file: Any) -> None:
        self._backend = backend
        self._file = file

    def write(self, piece: bytes) -> int:
        """Take the next piece; the bytes taken."""
        try:
            return int(self._file.write(piece))
        except Exception as error:
            raise _failure(self._backend, "write", error) from error

    def close(self) -> None:
        """Finish the object: only now does it appear under its key."""
        try:
            self._file.close()
        except Exception as error:
            raise _failure(self._backend, "write", error) from error

    def abort(self) -> None:
        """Give the object up (best effort: a failed backend may already have dropped it)."""
        with contextlib.suppress(Exception):  # the backend failed already; nothing to undo
            self._file.__exit__(BackendError, BackendError("aborted"), None)


def _failure(backend: str, action: str, error: Exception) -> BackendError:
    """The error to raise for an obstore failure: its type and the backend's name, not the
    whole message (it can hold a signed URL)."""
    kind = ObjectMissing if isinstance(error, NotFoundError | FileNotFoundError) else BackendError
    return kind(f"storage backend '{backend}' failed to {action}: {type(error).__name__}")
