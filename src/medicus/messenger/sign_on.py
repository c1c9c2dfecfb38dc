"""Single sign-on for Matrix clients: Synapse is an OpenID Connect client of medicus. Its
OAuth client is the platform's own (no owner organisation, any organisation's staff may sign
in), registered at every server start so that its redirect URI follows the public URL."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError

from medicus.core.db import Database
from medicus.iam.service import IdentityService
from medicus.messenger.homeserver import SIGN_ON_CLIENT_ID, SIGN_ON_SCOPE, Homeserver


class SignOnClient:
    def __init__(self, database: Database, identity: IdentityService, homeserver: Homeserver):
        self._database = database
        self._identity = identity
        self._homeserver = homeserver

    async def register(self) -> bool:
        """Register Synapse's client, or bring it up to date; True when something changed.
        Two replicas starting together: the one whose insert loses tries again and finds
        the other's row."""
        try:
            return await self._register()
        except IntegrityError:
            return await self._register()

    async def _register(self) -> bool:
        async with self._database.transaction() as session:
            return await self._identity.register_platform_client(
                session,
                SIGN_ON_CLIENT_ID,
                "medicus Messenger",
                self._homeserver.sign_on_redirect_uri,
                SIGN_ON_SCOPE,
            )
