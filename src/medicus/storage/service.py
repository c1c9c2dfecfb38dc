"""Use-cases of the object storage: keep an object (sealed, on N backends, within the
organisation's quota), read it whole or a range of it (falling back, chunk by chunk, to
another replica when one fails or does not open), delete it (crypto-shredding).

Who may do this is not decided here: the routes (and the FHIR hub for attachments) ask
`access` first and audit; this service only keeps bytes for an organisation."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from medicus.core.db import Database, utc_now
from medicus.core.errors import ApiError
from medicus.storage import repository
from medicus.storage.backends import Backend, BackendError, ObjectMissing
from medicus.storage.encryption import (
    CHUNK_BYTES,
    Header,
    Opener,
    SealBroken,
    SealedRange,
    Sealer,
    locate,
    new_data_key,
    new_header,
    open_range,
    sealed_size,
)
from medicus.storage.keyring import Keyring, WrappedKey
from medicus.storage.models import StoredObjectRow
from medicus.storage.replicas import ReplicaWriters, ahead, placement

READ_CHUNKS = 8
"""Chunks read from a backend at once when streaming a whole object (8 MiB)."""
BATCH_BYTES = 4 * CHUNK_BYTES
"""Plaintext sealed at once, and sealed bytes handed to the backends' writers at once."""


@dataclass(frozen=True)
class StoredObject:
    id: str
    organisation_id: str
    size: int
    sha256: str
    content_type: str
    file_name: str | None
    owner: str | None

    @property
    def etag(self) -> str:
        return f'"{self.sha256}"'

    @staticmethod
    def of(row: StoredObjectRow) -> StoredObject:
        return StoredObject(
            row.id,
            row.organisation_id,
            row.size,
            row.sha256,
            row.content_type,
            row.file_name,
            row.owner,
        )


@dataclass(frozen=True)
class NewObject:
    """What is known of an object before its bytes arrive."""

    organisation_id: str
    size: int
    content_type: str = "application/octet-stream"
    file_name: str | None = None
    owner: str | None = None
    created_by: str | None = None


@dataclass(frozen=True)
class Sealed:
    """An object's key material: its header and its data key, wrapped and plain."""

    header: Header
    wrapped: WrappedKey
    data_key: bytes


def object_key(object_id: str) -> str:
    """Where an object's sealed bytes lie on every backend."""
    return f"objects/{object_id[:2]}/{object_id}"


def quota_exceeded(used: int, quota: int, size: int) -> ApiError:
    return ApiError(
        507,
        f"The organisation's storage quota of {quota} bytes would be exceeded: {used} bytes "
        f"are in use and this object has {size}. Delete objects or ask the platform operator "
        "for a larger quota.",
        title="Storage quota exceeded",
    )


def storage_unavailable() -> ApiError:
    return ApiError(
        503,
        "No storage backend could take or give the object at the moment; nothing was kept. "
        "Retry shortly.",
        headers={"Retry-After": "5"},
    )


class ObjectStore:
    def __init__(
        self,
        database: Database,
        backends: Sequence[Backend],
        keyring: Keyring,
        replicas: int,
        default_quota: int | None,
        max_object_bytes: int,
    ) -> None:
        self.database = database
        self.backends = {backend.name: backend for backend in backends}
        self.keyring = keyring
        self.replicas = replicas
        self.default_quota = default_quota
        self.max_object_bytes = max_object_bytes

    # --- keys -----------------------------------------------------------------------------

    async def new_seal(self, organisation_id: str) -> Sealed:
        """Key material for a new object of the organisation (its first key made if needed)."""
        data_key = new_data_key()
        wrapped = await asyncio.to_thread(self._wrap, organisation_id, data_key)
        return Sealed(new_header(), wrapped, data_key)

    def _wrap(self, organisation_id: str, data_key: bytes) -> WrappedKey:
        if self.keyring.current(organisation_id) is None:
            self.keyring.rotate(organisation_id)
        return self.keyring.wrap(organisation_id, data_key)

    def data_key(self, row: StoredObjectRow) -> bytes:
        if row.wrapped_key is None or row.kek_id is None:
            raise ApiError(410, "The object was deleted.")
        return self.keyring.unwrap(row.organisation_id, WrappedKey(row.kek_id, row.wrapped_key))

    # --- quota ----------------------------------------------------------------------------

    async def reserve(self, organisation_id: str, size: int) -> None:
        """Count an object's size against the organisation's quota before its bytes arrive;
        413 above the largest object, 507 beyond the quota."""
        if size > self.max_object_bytes:
            raise ApiError(
                413,
                f"An object may have at most {self.max_object_bytes} bytes; this one has {size}.",
            )
        async with self.database.transaction() as session:
            kept, used, quota = await repository.reserve(
                session, organisation_id, size, self.default_quota
            )
        if not kept:
            raise quota_exceeded(used, quota or 0, size)

    async def release(self, organisation_id: str, size: int) -> None:
        async with self.database.transaction() as session:
            await repository.release(session, organisation_id, size)

    # --- writing --------------------------------------------------------------------------

    async def put(self, new: NewObject, body: AsyncIterable[bytes]) -> StoredObject:
        """Keep an object whose plaintext `body` brings (exactly `new.size` bytes, else 400
        and nothing kept). Acknowledged once on every placement backend that stayed up
        (at least one); those that failed are caught up later."""
        await self.reserve(new.organisation_id, new.size)
        try:
            seal = await self.new_seal(new.organisation_id)
            digest = hashlib.sha256()
            sealed = _sealing(body, Sealer(seal.data_key, seal.header), digest, new.size)
            return await self._keep(new, seal, sealed, digest)
        except BaseException:
            await self.release(new.organisation_id, new.size)
            raise

    async def put_sealed(
        self, new: NewObject, seal: Sealed, sealed: AsyncIterable[bytes]
    ) -> StoredObject:
        """Keep an object already sealed with `seal` (a finished resumable upload), checking
        while it streams that every chunk opens and the plaintext has `new.size` bytes. The
        quota was counted when the upload began."""
        digest = hashlib.sha256()
        checked = _checking(sealed, Opener(seal.data_key), digest, new.size)
        return await self._keep(new, seal, checked, digest)

    async def _keep(
        self,
        new: NewObject,
        seal: Sealed,
        sealed: AsyncIterator[bytes],
        digest: hashlib._Hash,
    ) -> StoredObject:
        object_id = str(uuid.uuid4())
        async with self.database.snapshot() as session:
            draining = await repository.draining_backends(session)
        targets = [
            self.backends[name] for name in placement(self.backends, draining, self.replicas)
        ]
        writers = ReplicaWriters(object_key(object_id), targets)
        states = await writers.write_all(sealed)
        if not any(state == repository.PRESENT for state in states.values()):
            raise storage_unavailable()
        row = StoredObjectRow(
            id=object_id,
            organisation_id=new.organisation_id,
            size=new.size,
            sha256=digest.hexdigest(),
            content_type=new.content_type,
            file_name=new.file_name,
            owner=new.owner,
            header=seal.header.encode(),
            kek_id=seal.wrapped.kek_id,
            wrapped_key=seal.wrapped.blob,
            created_by=new.created_by,
            created_at=utc_now(),
        )
        async with self.database.transaction() as session:
            await repository.add_object(session, row, states.items(), row.created_at)
        return StoredObject.of(row)

    # --- reading --------------------------------------------------------------------------

    async def describe(self, object_id: str) -> StoredObject | None:
        """The object, None if there is none (or it was deleted)."""
        async with self.database.snapshot() as session:
            row = await repository.live_object(session, object_id)
        return None if row is None else StoredObject.of(row)

    async def adopt(
        self,
        session: AsyncSession,
        object_id: str,
        organisation_id: str,
        created_by: str,
        owner: str,
    ) -> StoredObject | None:
        """In the caller's transaction: make an object without an owner, which `created_by`
        of `organisation_id` put (a finished resumable upload), the bytes of `owner`
        (`Binary/{id}`); None if it is no such object."""
        row = await repository.adopt(session, object_id, organisation_id, created_by, owner)
        return None if row is None else StoredObject.of(row)

    async def stream(
        self, object_id: str, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        """Plaintext bytes [start, end) of the object (all of it by default), a few MiB at a
        time. Each part comes from the first replica whose bytes open; a replica that is
        missing or damaged is marked for repair and the next one is asked."""
        reader = await self._reader(object_id)
        stop = reader.row.size if end is None else end
        async for part in ahead(reader.parts(start, stop)):
            yield part

    async def read_range(self, object_id: str, start: int, end: int) -> bytes:
        """Plaintext bytes [start, end) of the object at once (a Range request's part)."""
        reader = await self._reader(object_id)
        return await reader.read(start, end)

    async def _reader(self, object_id: str) -> _Reader:
        async with self.database.snapshot() as session:
            row = await repository.live_object(session, object_id)
            if row is None:
                raise ApiError(404, "There is no such object.")
            replicas = await repository.replicas_of(session, object_id)
        order = [
            self.backends[replica.backend]
            for replica in sorted(replicas, key=lambda r: r.state != repository.PRESENT)
            if replica.backend in self.backends and replica.state != repository.DELETING
        ]
        data_key = await asyncio.to_thread(self.data_key, row)
        return _Reader(self, row, data_key, order)

    async def mark_damaged(self, object_id: str, backend: str, reason: str) -> None:
        async with self.database.transaction() as session:
            await repository.set_replica(
                session, object_id, backend, repository.CORRUPT, utc_now(), reason
            )

    # --- deleting -------------------------------------------------------------------------

    async def delete(self, object_id: str) -> bool:
        """Delete the object: its data key is destroyed at once (every copy, on every backend
        and in every old version a backend keeps, is unreadable from now on), its bytes are
        removed from the backends now or by the background work. False if there was none."""
        now = utc_now()
        async with self.database.transaction() as session:
            row = await repository.live_object(session, object_id)
            if row is None:
                return False
            row.wrapped_key = None
            row.kek_id = None
            row.deleted_at = now
            replicas = await repository.replicas_of(session, object_id)
            for replica in replicas:
                replica.state = repository.DELETING
                replica.next_attempt_at = now
            await repository.release(session, row.organisation_id, row.size)
        for replica in replicas:
            backend = self.backends.get(replica.backend)
            if backend is None:
                continue
            try:
                await asyncio.to_thread(backend.delete, object_key(object_id))
            except BackendError:
                continue
            async with self.database.transaction() as session:
                await repository.drop_replica(session, object_id, replica.backend)
        return True


class _Reader:
    """One object opened for reading: its row, data key and replicas in the order to ask."""

    def __init__(
        self, store: ObjectStore, row: StoredObjectRow, data_key: bytes, order: list[Backend]
    ) -> None:
        self.row = row
        self.header = Header.decode(row.header)
        self._store = store
        self._data_key = data_key
        self._order = order

    async def parts(self, start: int, stop: int) -> AsyncIterator[bytes]:
        """Bytes [start, stop) in parts of up to READ_CHUNKS chunks, on chunk boundaries."""
        step = READ_CHUNKS * self.header.chunk_bytes
        position = start
        while True:
            upto = min(stop, (position // step + 1) * step)
            yield await self.read(position, upto)
            position = upto
            if position >= stop:
                return

    async def read(self, start: int, end: int) -> bytes:
        if not 0 <= start <= end <= self.row.size:
            raise ApiError(416, f"The object has {self.row.size} bytes.")
        part = locate(self.header, self.row.size, start, end)
        key = object_key(self.row.id)
        for backend in list(self._order):
            try:
                return await asyncio.to_thread(self._open, backend, key, part)
            except (ObjectMissing, SealBroken) as error:
                await self._pass_over(backend, type(error).__name__)
            except BackendError:
                await self._pass_over(backend, await asyncio.to_thread(self._diagnose, backend))
        raise storage_unavailable()

    async def _pass_over(self, backend: Backend, damage: str | None) -> None:
        """Ask `backend` last from now on; mark its replica for repair if it is damaged."""
        self._order.remove(backend)
        self._order.append(backend)
        if damage is not None:
            await self._store.mark_damaged(self.row.id, backend.name, damage)

    def _diagnose(self, backend: Backend) -> str | None:
        """Why a read failed that was not plainly a missing object: a replica of the wrong
        size (a range beyond its end fails as a generic error) is damaged; None when the
        backend is merely unreachable."""
        try:
            size = backend.size(object_key(self.row.id))
        except BackendError:
            return None
        expected = sealed_size(self.row.size, self.header.chunk_bytes)
        if size is None:
            return "ObjectMissing"
        return None if size == expected else f"size {size}, not {expected}"

    def _open(self, backend: Backend, key: str, part: SealedRange) -> bytes:
        sealed = backend.read_range(key, part.offset, part.offset + part.length)
        if len(sealed) != part.length:
            raise SealBroken("a replica is shorter than its object")
        return open_range(self._data_key, part, sealed)


async def _sealing(
    body: AsyncIterable[bytes], sealer: Sealer, digest: hashlib._Hash, size: int
) -> AsyncIterator[bytes]:
    """The sealed object of `body`, in batches of a few MiB, hashed and sealed in a worker
    thread (the event loop goes on receiving meanwhile); 400 if `body` brings another number
    of bytes than `size`."""

    def sealed(plain: bytes, last: bool) -> bytes:
        digest.update(plain)
        chunks = sealer.push(plain)
        if last:
            chunks.append(sealer.finish())
        return b"".join(chunks)

    yield sealer.header.encode()
    pieces: list[bytes] = []
    gathered = received = 0
    async for piece in body:
        received += len(piece)
        if received > size:
            raise ApiError(400, f"The body has more than the {size} bytes announced.")
        pieces.append(piece)
        gathered += len(piece)
        if gathered >= BATCH_BYTES:
            yield await asyncio.to_thread(sealed, b"".join(pieces), False)
            pieces.clear()
            gathered = 0
    if received != size:
        raise ApiError(400, f"The body ended after {received} of the {size} bytes announced.")
    yield await asyncio.to_thread(sealed, b"".join(pieces), True)


async def _checking(
    sealed: AsyncIterable[bytes], opener: Opener, digest: hashlib._Hash, size: int
) -> AsyncIterator[bytes]:
    """The sealed bytes unchanged, after checking that each chunk opens and hashing the
    plaintext; SealBroken if they do not open or hold another number of bytes than `size`."""
    received = 0
    async for piece in sealed:
        for plain in opener.push(piece):
            digest.update(plain)
            received += len(plain)
        yield piece
    last = opener.finish()
    digest.update(last)
    received += len(last)
    if received != size:
        raise SealBroken(f"a sealed upload holds {received} bytes, not {size}")


# --- usage (the HTTP API's GET /storage/usage) ---------------------------------------------


@dataclass(frozen=True)
class Usage:
    """What an organisation keeps (objects and uploads under way) and may keep (None: no
    limit)."""

    organisation_id: str
    used_bytes: int
    quota_bytes: int | None


async def usage(store: ObjectStore, organisation_id: str) -> Usage:
    """The organisation's usage and the quota in force (its own, else the default)."""
    async with store.database.snapshot() as session:
        rows = await repository.usage_of(session, [organisation_id])
    if not rows:
        return Usage(organisation_id, 0, store.default_quota)
    quota = rows[0].quota_bytes
    in_force = quota if quota is not None else store.default_quota
    return Usage(organisation_id, rows[0].used_bytes, in_force)
