"""Attachments through `storage`: the Messenger-Proxy keeps what clients upload as objects of
medicus's object store — encrypted with a data key of their own, replicated to every backend
like all medicus data, counted against the uploader's organisation's quota — instead of in
Synapse's media store on one disk, which Synapse neither encrypts nor replicates. Synapse
never sees the bytes; the `mxc://` URI names this homeserver, so every client downloads them
through the proxy."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass

from medicus.audit.service import AuditRecord, AuditTrail
from medicus.core.clock import Clock
from medicus.core.db import Database, utc_now
from medicus.messenger import repository
from medicus.messenger.homeserver import Homeserver
from medicus.messenger.models import MediaRow
from medicus.storage.service import NewObject, ObjectStore


class MediaRefused(Exception):
    """An upload the messenger does not take (the user works nowhere)."""


@dataclass(frozen=True)
class Medium:
    media_id: str
    content_type: str
    file_name: str | None
    size: int
    object_id: str


class MessengerMedia:
    def __init__(
        self,
        database: Database,
        storage: ObjectStore,
        audit: AuditTrail,
        homeserver: Homeserver,
        clock: Clock = utc_now,
    ) -> None:
        self._database = database
        self._storage = storage
        self._audit = audit
        self._homeserver = homeserver
        self._clock = clock

    async def upload(
        self,
        user_id: str,
        size: int,
        content_type: str,
        file_name: str | None,
        body: AsyncIterable[bytes],
    ) -> str:
        """Keep an attachment; its `mxc://` URI. Counted against the first (by id) of the
        organisations the uploader works for."""
        async with self._database.snapshot() as session:
            organisations = sorted(await repository.staff_organisations(session, user_id))
        if not organisations:
            raise MediaRefused("You do not work for an organisation of this platform now.")
        organisation_id = organisations[0]
        new = NewObject(organisation_id, size, content_type, file_name, owner=f"user:{user_id}")
        stored = await self._storage.put(new, body)
        media_id = secrets.token_urlsafe(18)
        uri = f"mxc://{self._homeserver.server_name}/{media_id}"
        async with self._database.transaction() as session:
            await repository.add_medium(
                session,
                MediaRow(
                    media_id=media_id,
                    object_id=stored.id,
                    content_type=content_type,
                    file_name=file_name,
                    size=size,
                    uploaded_by=user_id,
                    organisation_id=organisation_id,
                    uploaded_at=self._clock(),
                ),
            )
            await self._audit.append(session, _event("messenger.media.upload", user_id, uri))
        return uri

    async def find(self, server_name: str, media_id: str) -> Medium | None:
        """An attachment kept here (None: not one of ours, perhaps Synapse's own)."""
        if server_name != self._homeserver.server_name or len(media_id) > 64:
            return None
        async with self._database.snapshot() as session:
            row = await repository.medium(session, media_id)
        if row is None:
            return None
        return Medium(row.media_id, row.content_type, row.file_name, row.size, row.object_id)

    async def download(self, user_id: str, medium: Medium) -> AsyncIterator[bytes]:
        """The attachment's bytes for a user of the messenger (as Synapse's authenticated
        media: any signed-in user who knows its URI); audited."""
        uri = f"mxc://{self._homeserver.server_name}/{medium.media_id}"
        await self._audit.record(_event("messenger.media.download", user_id, uri))
        return self._storage.stream(medium.object_id)


def _event(action: str, user_id: str, uri: str) -> AuditRecord:
    return AuditRecord(action, f"user:{user_id}", target=uri)
