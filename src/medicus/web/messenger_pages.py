"""The portal's use cases of the messenger (docs/portal.md, messages): a Matrix session for
the logged-in user (a login token of `messenger.Messenger`, which decides and audits exactly
as for `POST /messenger/login-token`), whom the user may reach (a search among the staff of
their own organisations and those listed by other organisations on the federation list, as
the invite rules see it), the decryption key of the user's own Matrix key backup that
medicus keeps for their portal devices, and what a page says about the homeserver to people
who prefer another Matrix client. The messages themselves never pass here: the browser talks
Matrix to the Messenger-Proxy (`/_matrix`), which applies the invite rules."""

from __future__ import annotations

from dataclasses import dataclass

from medicus.core.db import Database
from medicus.core.errors import ApiError
from medicus.messenger.hub import MessengerHub
from medicus.messenger.service import IssuedLogin, Messenger
from medicus.web import messenger_repository
from medicus.web.users import PortalUser

MAX_FOUND = 20
MAX_WORDS = 200


@dataclass(frozen=True)
class Contact:
    """Someone the user may start a chat with."""

    matrix_id: str
    name: str
    organisation: str


class PortalMessenger:
    def __init__(self, database: Database, messenger: Messenger) -> None:
        self._database = database
        self._messenger = messenger

    @classmethod
    def of(cls, database: Database, hub: MessengerHub | None) -> PortalMessenger | None:
        """The portal's messenger over the platform's `MessengerHub` (None while the
        messenger is off)."""
        return None if hub is None else cls(database, hub.service)

    @property
    def homeserver_url(self) -> str:
        """Where Matrix clients find the homeserver: medicus's public URL."""
        return self._messenger.homeserver.public_url

    def matrix_id(self, user: PortalUser) -> str:
        return self._messenger.homeserver.matrix_id(user.principal.subject)

    async def session(self, user: PortalUser) -> IssuedLogin:
        """A login token for the user's Matrix account (staff only, good once, a minute), for
        a device of its own that is logged out when this browser session ends."""
        staff(user)
        return await self._messenger.issue_login(user.principal, user.login.id_hash)

    async def backup_key(self, user: PortalUser) -> tuple[str, bytes] | None:
        """(version, key) of the user's own room-key backup, kept by medicus (staff only)."""
        staff(user)
        return await self._messenger.backup_key(user.principal)

    async def keep_backup_key(self, user: PortalUser, version: str, key: bytes) -> None:
        staff(user)
        await self._messenger.keep_backup_key(user.principal, version, key)

    async def contacts(self, user: PortalUser, words: str) -> list[Contact]:
        """Whom the user may invite, by name or e-mail address (empty words: the first ones
        by name)."""
        staff(user)
        async with self._database.snapshot() as session:
            found = await messenger_repository.reachable(
                session, user.principal.subject, words[:MAX_WORDS], MAX_FOUND
            )
        homeserver = self._messenger.homeserver
        return [Contact(homeserver.matrix_id(uid), name, org) for uid, name, org in found]


def staff(user: PortalUser) -> None:
    """The messenger is for staff: a patient gets 403."""
    if user.is_patient:
        raise ApiError(403, "The messenger is for the staff of organisations.")
