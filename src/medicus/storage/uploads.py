"""Resumable uploads (tus 1.0) into the encrypted, replicated storage (HTTP: `tus_routes`).

Our own code, not a tus server library (tuspyserver, tussi, resumable-upload keep the bytes
in a plaintext file and the offset in a JSON file or in memory): here the bytes are sealed
as they arrive, no plaintext ever lies on disk, and an upload survives a killed process
byte-exact, because the database says how many bytes are durable only after the staging
file holding them was fsynced.

The staging file `<staging>/<id>.sealed` holds the header and the sealed full chunks
(`encryption.Sealer`); the row holds `received` and the plaintext not yet filling a chunk
(`tail`), sealed with a key derived from the data key, bound to the upload and `received`.
Surplus bytes of a crash between appending and committing are cut off by the next request.
At the last byte the file is checked and written to the backends (`put_sealed`). One
request at a time works on an upload (ids in the process, `flock` across processes); another
gets 423 at once, as from tusd, and retries, rather than wait behind a dead connection.

One module over 500 lines on purpose: the protocol's states, the staging file and the lock
that guards both are one piece. An upload into a collaboration space (`collab.uploads`) is
one of these, of the space's organisation (`create`'s `organisation`).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import fcntl
import hashlib
import os
import re
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from medicus.access.policy import Interaction
from medicus.core.clock import Clock
from medicus.core.db import utc_now
from medicus.core.errors import ApiError
from medicus.iam.tokens import Principal
from medicus.storage import repository, upload_repository
from medicus.storage.encryption import (
    CHUNK_BYTES,
    HEADER_BYTES,
    TAG_BYTES,
    Header,
    SealBroken,
    Sealer,
    locate,
    open_range,
)
from medicus.storage.keyring import WrappedKey
from medicus.storage.models import StorageUploadRow
from medicus.storage.permissions import StoragePermissions
from medicus.storage.service import NewObject, ObjectStore, Sealed, StoredObject
from medicus.storage.sniffing import SNIFF_BYTES, settle

CHECKSUM_ALGORITHMS = ("sha1", "sha256", "md5")
WRITE_BYTES = 4 * CHUNK_BYTES  # sealed bytes written to (or read from) staging at once
_UPLOAD_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_TAIL_INFO = b"medicus storage upload tail"


@dataclass(frozen=True)
class NewUpload:
    length: int
    content_type: str = "application/octet-stream"
    file_name: str | None = None
    metadata: Mapping[str, str | None] | None = None
    """The tus metadata as sent: each key's base64 value (None: a key without one)."""


@dataclass(frozen=True)
class Checksum:
    """An Upload-Checksum: the digest the whole body of one request must have."""

    algorithm: str
    digest: bytes


@dataclass(frozen=True)
class Upload:
    id: str
    length: int
    received: int
    metadata: dict[str, str | None]
    expires_at: dt.datetime
    object_id: str | None

    @staticmethod
    def of(row: StorageUploadRow) -> Upload:
        metadata = orjson.loads(row.metadata_json or "{}")
        return Upload(row.id, row.length, row.received, metadata, row.expires_at, row.object_id)


def _unknown(upload_id: str) -> ApiError:
    return ApiError(404, f"There is no upload {upload_id} here.")


def _locked() -> ApiError:
    busy = "Another request is working on this upload (one may still be ending); retry soon."
    return ApiError(423, busy, headers={"Retry-After": "1"})


def _lost() -> ApiError:
    lost = "This upload's bytes are missing here (do all servers share MEDICUS_DATA_DIR?)."
    return ApiError(500, f"{lost} Start a new upload.")


class UploadService:
    """Resumable uploads of a caller's organisation (tus). A capability whose uploads are
    decided otherwise (collab's: into a space, of the space's organisation) subclasses it and
    changes `create` and `visible_upload`, the two places that decide who may upload what;
    the protocol, the staging and the sealing stay here."""

    def __init__(
        self,
        store: ObjectStore,
        permissions: StoragePermissions,
        staging: Path,
        lifetime: dt.timedelta,
        clock: Clock = utc_now,
    ) -> None:
        self._store = store
        self._permissions = permissions
        self._staging = staging
        self._lifetime = lifetime
        self._clock = clock
        self._busy: set[str] = set()

    @property
    def max_bytes(self) -> int:
        return self._store.max_object_bytes

    async def create(
        self,
        caller: Principal,
        new: NewUpload,
        body: AsyncIterable[bytes] | None = None,
        checksum: Checksum | None = None,
        organisation: str | None = None,
    ) -> Upload:
        """A new upload of the caller's organisation (or of `organisation`, whose own gate
        let the caller in: a space's), counted against its quota (413, 507); with `body`, its
        first bytes too: if they fail (460 for a `checksum` they do not match), nothing is
        left behind."""
        upload_id = str(uuid.uuid4())
        detail = {"upload": upload_id, "size": str(new.length)}
        organisation = organisation or await self._permissions.creator(caller, detail)
        await self._store.reserve(organisation, new.length)
        try:
            await self._begin(caller, organisation, upload_id, new)
        except BaseException:
            await self._store.release(organisation, new.length)
            raise
        if body is None and new.length > 0:
            return Upload.of(await self._current(upload_id))
        try:
            return await self._append(upload_id, 0, body or _nothing(), checksum)
        except ApiError:
            await self.discard(upload_id)  # the caller never learns its address
            raise

    async def describe(self, caller: Principal, upload_id: str) -> Upload:
        """The upload (410 once it expired unfinished). One that holds every byte but did
        not become an object (the backends failed at the end, or the process died) is
        finished now, answering as that does; if a request is finishing it, as it stands."""
        row = await self.visible_upload(caller, upload_id)
        self._refuse_expired(row)
        if row.object_id is None and row.received == row.length:
            try:
                return await self._append(row.id, row.received, _nothing(), None)
            except ApiError as error:
                if error.status != 423:
                    raise
        return Upload.of(row)

    async def append(
        self,
        caller: Principal,
        upload_id: str,
        offset: int,
        body: AsyncIterable[bytes],
        checksum: Checksum | None = None,
    ) -> Upload:
        """Take the bytes of `body` from `offset` on (409 unless the upload holds exactly
        `offset` bytes). What arrives is kept even if the body ends early (the client hung
        up); with a `checksum`, all or nothing (460). The last byte makes it the object."""
        await self.visible_upload(caller, upload_id)
        return await self._append(upload_id, offset, body, checksum)

    async def terminate(self, caller: Principal, upload_id: str) -> None:
        """Give up the upload: its bytes and row are removed, its quota released (a
        finished upload's object stays: only the record of the upload goes)."""
        await self.visible_upload(caller, upload_id)
        await self.discard(upload_id)

    async def expire_due(self, now: dt.datetime) -> int:
        """Remove up to 100 uploads whose time ran out by `now`, their bytes and their quota
        (a finished upload's object stays); how many. One a request is working on waits."""
        removed = 0
        async with self._store.database.snapshot() as session:
            due = await upload_repository.due(session, now, 100)
        for upload_id in due:
            with contextlib.suppress(ApiError):
                removed += await self.discard(upload_id, expired_by=now)
        return removed

    async def _begin(
        self, caller: Principal, organisation: str, upload_id: str, new: NewUpload
    ) -> None:
        seal = await self._store.new_seal(organisation)
        path = self._path(upload_id)
        await asyncio.to_thread(_create_staging, path, seal.header.encode())
        now = self._clock()
        row = StorageUploadRow(
            id=upload_id,
            organisation_id=organisation,
            created_by=caller.actor[:64],
            length=new.length,
            content_type=new.content_type,
            file_name=new.file_name,
            metadata_json=orjson.dumps(dict(new.metadata or {})).decode(),
            header=seal.header.encode(),
            kek_id=seal.wrapped.kek_id,
            wrapped_key=seal.wrapped.blob,
            tail=seal_tail(seal.data_key, upload_id, 0, b""),
            created_at=now,
            expires_at=now + self._lifetime,
        )
        try:
            async with self._store.database.transaction() as session:
                await upload_repository.add(session, row)
        except BaseException:
            await asyncio.to_thread(path.unlink, missing_ok=True)
            raise

    async def _append(
        self,
        upload_id: str,
        offset: int,
        body: AsyncIterable[bytes],
        checksum: Checksum | None,
    ) -> Upload:
        async with self._lock(upload_id) as staging:
            row = await self._current(upload_id)
            self._refuse_expired(row)
            if offset != row.received:
                elsewhere = f"The upload holds {row.received} bytes, not {offset}"
                raise ApiError(409, f"{elsewhere}: send from there on.")
            if row.object_id is not None:
                async for piece in body:
                    if piece:
                        raise ApiError(400, "The upload is complete: it takes no more bytes.")
                return Upload.of(row)
            if staging is None:
                raise _lost()
            try:
                data_key, sealer = await self._state(row)
                await self._receive(row, data_key, sealer, staging, body, checksum)
                if row.received == row.length:
                    await self._finish(row, data_key, sealer, staging)
            except SealBroken:
                await self._remove(row.id)
                damaged = "This upload's bytes were damaged here and were discarded."
                raise ApiError(500, f"{damaged} Start a new upload.") from None
            return Upload.of(row)

    async def _state(self, row: StorageUploadRow) -> tuple[bytes, Sealer]:
        """The upload's data key and Sealer as the database says it stands."""
        wrapped = WrappedKey(row.kek_id, row.wrapped_key)
        keyring = self._store.keyring
        data_key = await asyncio.to_thread(keyring.unwrap, row.organisation_id, wrapped)
        header = Header.decode(row.header)
        tail = open_tail(data_key, row.id, row.received, row.tail)
        chunks = (row.received - len(tail)) // header.chunk_bytes
        return data_key, Sealer(data_key, header, chunks, tail)

    async def _receive(
        self,
        row: StorageUploadRow,
        data_key: bytes,
        sealer: Sealer,
        staging: BinaryIO,
        body: AsyncIterable[bytes],
        checksum: Checksum | None,
    ) -> None:
        """Seal what `body` brings onto the staging file; once it is on disk, record it (and
        the upload's time runs from now again)."""
        await asyncio.to_thread(_rewind, staging, row.header, _sealed_end(sealer))
        digest = hashlib.new(checksum.algorithm, usedforsecurity=False) if checksum else None
        room = row.length - row.received
        batch = bytearray()
        async for piece in body:
            if len(piece) > room:
                raise ApiError(400, f"The body goes beyond the upload's {row.length} bytes.")
            room -= len(piece)
            if digest is not None:
                digest.update(piece)
            for chunk in sealer.push(piece):
                batch += chunk
            if len(batch) >= WRITE_BYTES:
                await asyncio.to_thread(staging.write, bytes(batch))
                batch.clear()
        if checksum is not None and digest is not None and digest.digest() != checksum.digest:
            mismatch = f"The body does not have the {checksum.algorithm} checksum sent"
            raise ApiError(460, f"{mismatch}; none of it was kept.", title="Checksum Mismatch")
        received = row.length - room
        if received == row.received:
            return
        await asyncio.to_thread(_write_durably, staging, bytes(batch))
        tail = seal_tail(data_key, row.id, received, sealer.pending)
        expires_at = self._clock() + self._lifetime
        async with self._store.database.transaction() as session:
            moved = await upload_repository.advance(
                session, row.id, row.received, received, tail, expires_at
            )
        if not moved:
            raise ApiError(409, "The upload changed meanwhile; ask for its offset again.")
        row.received, row.tail, row.expires_at = received, tail, expires_at

    async def _finish(
        self, row: StorageUploadRow, data_key: bytes, sealer: Sealer, staging: BinaryIO
    ) -> None:
        """The complete upload becomes an object: its last chunk sealed onto the staging
        file (which `_receive` left at the end of the full chunks), its type checked against
        its first bytes (415 discards it, as a program or a contradicting type is never
        kept), the file checked and written to the backends, the row pointing to it."""
        await asyncio.to_thread(_write_durably, staging, sealer.finish())
        head = await asyncio.to_thread(_first_bytes, staging, data_key, row)
        try:
            content_type = settle(row.content_type, head)
        except ApiError:
            await self._remove(row.id)
            raise
        fields = (row.organisation_id, row.length, content_type, row.file_name, row.owner)
        new = NewObject(*fields, created_by=row.created_by)
        wrapped = WrappedKey(row.kek_id, row.wrapped_key)
        seal = Sealed(sealer.header, wrapped, data_key)
        stored = await self._store.put_sealed(new, seal, _staged(self._path(row.id)))
        async with self._store.database.transaction() as session:
            await upload_repository.finish(session, row.id, stored.id)
        row.object_id = stored.id
        await asyncio.to_thread(self._path(row.id).unlink, missing_ok=True)

    async def discard(self, upload_id: str, expired_by: dt.datetime | None = None) -> int:
        """Remove the upload (with `expired_by`, only if its time ran out by then): 1 if it
        did, 0 if not. 423 while a request is working on it."""
        async with self._lock(upload_id):
            row = await self.upload_row(upload_id)
            if row is None or (expired_by is not None and row.expires_at > expired_by):
                return 0
            return await self._remove(upload_id)

    async def _remove(self, upload_id: str) -> int:
        """Delete the upload's row (releasing its quota if it never became an object), then
        its staging file. Called with the upload locked."""
        async with self._store.database.transaction() as session:
            row = await upload_repository.remove(session, upload_id)
            if row is not None and row.object_id is None:
                await repository.release(session, row.organisation_id, row.length)
        await asyncio.to_thread(self._path(upload_id).unlink, missing_ok=True)
        return 0 if row is None else 1

    async def visible_upload(self, caller: Principal, upload_id: str) -> StorageUploadRow:
        """The upload, if the caller may go on creating it (Binary create scope, their
        organisation's upload); 404 for any other, audited as for objects. (The hook that
        a subclass changes.)"""
        row = await self.upload_row(upload_id) if _UPLOAD_ID.fullmatch(upload_id) else None
        stand_in = None  # of the object to be, for the decision: only its organisation counts
        if row is not None:
            stand_in = StoredObject(row.id, row.organisation_id, row.length, "", "", None, None)
        try:
            await self._permissions.visible(caller, upload_id[:36], stand_in, Interaction.CREATE)
        except ApiError as error:
            if error.status == 404:
                raise _unknown(upload_id[:36]) from None
            raise
        assert row is not None
        return row

    async def upload_row(self, upload_id: str) -> StorageUploadRow | None:
        async with self._store.database.snapshot() as session:
            return await upload_repository.get(session, upload_id)

    async def _current(self, upload_id: str) -> StorageUploadRow:
        row = await self.upload_row(upload_id)
        if row is None:
            raise _unknown(upload_id)
        return row

    def _refuse_expired(self, row: StorageUploadRow) -> None:
        if row.object_id is None and row.expires_at <= self._clock():
            raise ApiError(410, "The upload expired before it was complete; start a new one.")

    def _path(self, upload_id: str) -> Path:
        return self._staging / f"{upload_id}.sealed"

    @contextlib.asynccontextmanager
    async def _lock(self, upload_id: str) -> AsyncIterator[BinaryIO | None]:
        """Hold the upload for one request: its staging file, open and locked (None if there
        is none: the upload finished or never had one here); 423 if another holds it."""
        if upload_id in self._busy:
            raise _locked()
        self._busy.add(upload_id)
        try:
            staging = await asyncio.to_thread(_open_locked, self._path(upload_id))
            try:
                yield staging
            finally:
                if staging is not None:
                    staging.close()
        finally:
            self._busy.discard(upload_id)


def _tail_cipher(data_key: bytes) -> AESGCM:
    """The tail's own key, derived from the data key (kept apart from the chunks' nonces)."""
    return AESGCM(HKDF(SHA256(), 32, salt=None, info=_TAIL_INFO).derive(data_key))


def seal_tail(data_key: bytes, upload_id: str, received: int, plain: bytes) -> bytes:
    """An upload's pending plaintext as kept in its row: nonce, then AES-GCM ciphertext."""
    nonce = os.urandom(12)
    aad = f"{upload_id}|{received}".encode()
    return nonce + _tail_cipher(data_key).encrypt(nonce, plain, aad)


def open_tail(data_key: bytes, upload_id: str, received: int, sealed: bytes) -> bytes:
    try:
        aad = f"{upload_id}|{received}".encode()
        return _tail_cipher(data_key).decrypt(sealed[:12], sealed[12:], aad)
    except (InvalidTag, ValueError):
        raise SealBroken("an upload's pending bytes do not open") from None


def _sealed_end(sealer: Sealer) -> int:
    """Where the staging file ends once the sealer's full chunks are on it."""
    return HEADER_BYTES + sealer.chunks_sealed * (sealer.header.chunk_bytes + TAG_BYTES)


async def _nothing() -> AsyncIterator[bytes]:
    return
    yield


async def _staged(path: Path) -> AsyncIterator[bytes]:
    """The staging file's bytes, a few MiB at a time."""
    with await asyncio.to_thread(path.open, "rb") as source:
        while piece := await asyncio.to_thread(source.read, WRITE_BYTES):
            yield piece


# --- the staging file (called in threads) ----------------------------------------------------


def _create_staging(path: Path, header: bytes) -> None:
    """A new staging file holding the header, durably (the folder's entry too)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with path.open("xb") as staging:
        staging.write(header)
        staging.flush()
        os.fsync(staging.fileno())
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def _open_locked(path: Path) -> BinaryIO | None:
    try:
        staging = path.open("r+b")
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(staging.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        staging.close()
        raise _locked() from None
    return staging


def _rewind(staging: BinaryIO, header: bytes, end: int) -> None:
    """Cut the staging file back to `end` (what the database says is durable), checking that
    it is this upload's and holds that much; appends go after it."""
    staging.seek(0)
    size = os.fstat(staging.fileno()).st_size
    if size < end or staging.read(HEADER_BYTES) != header:
        raise _lost()
    staging.truncate(end)
    staging.seek(end)


def _first_bytes(staging: BinaryIO, data_key: bytes, row: StorageUploadRow) -> bytes:
    """The plaintext the object starts with (enough to tell its type), from the staging file."""
    part = locate(Header.decode(row.header), row.length, 0, min(SNIFF_BYTES, row.length))
    staging.seek(part.offset)
    return open_range(data_key, part, staging.read(part.length))


def _write_durably(staging: BinaryIO, data: bytes) -> None:
    staging.write(data)
    staging.flush()
    os.fsync(staging.fileno())
