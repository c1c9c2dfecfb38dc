"""Early ends of access tokens, followed into memory.

Revoking a token (RFC 7009), revoking a grant (a refresh-token family: a replayed code, a
reused refresh token), logging a user out everywhere, disabling an account, or suspending or
changing a membership appends a row to the `revocation` feed. Every process keeps the live part
of the feed in memory and polls for new rows every `poll_interval` (one indexed query), so token
validation needs no database round trip. The process that revokes applies the change at once;
other replicas within one poll interval. Only rows younger than the longest token lifetime are
kept.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from medicus.core.db import Database, utc_now
from medicus.core.logging import get_logger
from medicus.core.loops import ServerLoop
from medicus.iam import token_repository
from medicus.iam.models import RevocationRow

log = get_logger("medicus.iam.revocations")

TOKEN = "token"  # noqa: S105 (a kind of revocation, not a secret)
FAMILY = "family"
USER = "user"


@dataclass(frozen=True)
class TokenFacts:
    """What the feed needs to know of an access token to tell whether it was revoked."""

    jti: str
    issued_at: float
    user_id: str | None = None
    organisation_id: str | None = None
    family_id: str | None = None


class Revocations(ServerLoop):
    name = "revocation-feed"

    def __init__(
        self, database: Database, token_lifetime: dt.timedelta, poll_interval: float
    ) -> None:
        super().__init__()
        self._database = database
        self._token_lifetime = token_lifetime
        self._poll_interval = poll_interval
        self._revoked_tokens: dict[str, dt.datetime] = {}
        self._revoked_families: dict[str, dt.datetime] = {}
        # (user, organisation) -> tokens issued until then are void; organisation None: all.
        self._users_void_before: dict[tuple[str, str | None], dt.datetime] = {}
        self._last_id = 0
        self._last_poll = float("-inf")

    def is_revoked(self, token: TokenFacts) -> bool:
        if token.jti in self._revoked_tokens or token.family_id in self._revoked_families:
            return True
        if token.user_id is None:
            return False
        return any(
            void_before is not None and token.issued_at <= void_before.timestamp()
            for void_before in (
                self._users_void_before.get((token.user_id, None)),
                self._users_void_before.get((token.user_id, token.organisation_id)),
            )
        )

    async def current(self) -> None:
        """Poll now unless the background loop has polled recently (e.g. in a CLI process)."""
        if time.monotonic() - self._last_poll > 2 * self._poll_interval:
            await self.poll()

    async def revoke_token(self, session: AsyncSession, jti: str, expires_at: dt.datetime) -> None:
        await self._append(session, TOKEN, jti, utc_now(), expires_at)

    async def revoke_family(self, session: AsyncSession, family_id: str) -> None:
        """Every access token issued for the grant (one authorization code and the refresh
        tokens that followed it) becomes void."""
        now = utc_now()
        await self._append(session, FAMILY, family_id, now, now + self._token_lifetime)

    async def void_user_tokens(
        self, session: AsyncSession, user_id: str, organisation_id: str | None = None
    ) -> None:
        """Every token of the user issued until now becomes void: those for `organisation_id`
        only, or, without one, those for every organisation."""
        now = utc_now()
        await self._append(session, USER, user_id, now, now + self._token_lifetime, organisation_id)

    async def _append(
        self,
        session: AsyncSession,
        kind: str,
        subject: str,
        not_before: dt.datetime,
        expires_at: dt.datetime,
        organisation_id: str | None = None,
    ) -> None:
        expires_at = expires_at + dt.timedelta(minutes=1)
        row = RevocationRow(
            kind=kind,
            subject=subject,
            organisation_id=organisation_id,
            not_before=not_before,
            expires_at=expires_at,
        )
        await token_repository.add(session, row)
        # Applied at once here; if the transaction rolls back, the only effect is that some
        # tokens are refused until they expire: failing safe.
        self._apply(row)

    def _apply(self, row: RevocationRow) -> None:
        if row.kind == TOKEN:
            self._revoked_tokens[row.subject] = row.expires_at
        elif row.kind == FAMILY:
            self._revoked_families[row.subject] = row.expires_at
        else:
            key = (row.subject, row.organisation_id)
            known = self._users_void_before.get(key)
            self._users_void_before[key] = max(known or row.not_before, row.not_before)

    async def poll(self) -> None:
        """Apply rows appended since the last poll and forget those that no longer matter."""
        async with self._database.snapshot() as session:
            rows = await token_repository.revocations_after(session, self._last_id, utc_now())
        for row in rows:
            self._apply(row)
            self._last_id = max(self._last_id, row.id)
        self._forget_expired()
        self._last_poll = time.monotonic()

    def _forget_expired(self) -> None:
        now = utc_now()
        horizon = now - self._token_lifetime - dt.timedelta(minutes=1)
        self._revoked_tokens = {j: e for j, e in self._revoked_tokens.items() if e > now}
        self._revoked_families = {f: e for f, e in self._revoked_families.items() if e > now}
        self._users_void_before = {u: t for u, t in self._users_void_before.items() if t > horizon}

    async def _run(self) -> None:
        while not self.stopping:
            try:
                await self.poll()
            except (DBAPIError, OSError) as error:
                log.warning("revocation poll failed; retrying", error_type=type(error).__name__)
            await self.rest(self._poll_interval)
