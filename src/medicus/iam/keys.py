"""Token-signing keys: ES256, stored encrypted, rotated without breaking tokens in flight.

The newest unretired key signs. Rotation retires it and creates a new one; a retired key stays
in the JWKS until every token it signed has expired. Each process caches the keys and reloads
them when it meets an unknown `kid`, so a rotation done by one replica reaches the others.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import orjson
from joserfc.jwk import ECKey, KeySet
from sqlalchemy.ext.asyncio import AsyncSession

from medicus.core.crypto import SecretBox
from medicus.core.db import Database, utc_now
from medicus.core.ids import new_id
from medicus.iam import token_repository
from medicus.iam.models import SigningKeyRow

ALGORITHM = "ES256"
_PURPOSE = "signing-key"


@dataclass(frozen=True)
class KeyRing:
    signing: ECKey
    verifying: KeySet
    public_jwks: dict[str, object]


class SigningKeys:
    def __init__(
        self,
        database: Database,
        box: SecretBox,
        token_lifetime: dt.timedelta,
        rotation_age: dt.timedelta,
    ) -> None:
        self._database = database
        self._box = box
        self._token_lifetime = token_lifetime
        self._rotation_age = rotation_age
        self._ring: KeyRing | None = None

    async def ring(self) -> KeyRing:
        """The current keys, loaded once and kept; creates the first key if there is none,
        and rotates when the signing key is older than the rotation age."""
        if self._ring is None:
            self._ring = await self._load()
        return self._ring

    async def reload(self) -> KeyRing:
        self._ring = await self._load()
        return self._ring

    async def rotate(self) -> str:
        """Retire the signing key and create a new one; returns the new key's id."""
        async with self._database.transaction() as session:
            now = utc_now()
            await token_repository.retire_keys(session, now, now + 2 * self._token_lifetime)
            kid = await self._create(session, now)
        await self.reload()
        return kid

    async def _create(self, session: AsyncSession, now: dt.datetime) -> str:
        kid = new_id()
        key = ECKey.generate_key("P-256", parameters={"kid": kid, "alg": ALGORITHM, "use": "sig"})
        row = SigningKeyRow(
            kid=kid,
            alg=ALGORITHM,
            private_key=self._box.encrypt(_PURPOSE, key.as_pem(private=True)),
            public_jwk=orjson.dumps(key.as_dict(private=False)).decode(),
            created_at=now,
        )
        await token_repository.add(session, row)
        return kid

    async def _load(self) -> KeyRing:
        async with self._database.snapshot() as session:
            rows = await token_repository.published_keys(session, utc_now())
        if self._needs_new_key(rows):
            async with self._database.transaction() as session:
                now = utc_now()
                rows = await token_repository.published_keys(session, now)
                if self._needs_new_key(rows):
                    await token_repository.retire_keys(session, now, now + 2 * self._token_lifetime)
                    await self._create(session, now)
                    rows = await token_repository.published_keys(session, now)
        active = next(row for row in rows if row.retired_at is None)
        private_pem = self._box.decrypt(_PURPOSE, active.private_key)
        signing = ECKey.import_key(
            private_pem, parameters={"kid": active.kid, "alg": ALGORITHM, "use": "sig"}
        )
        public = [orjson.loads(row.public_jwk) for row in rows]
        verifying = KeySet([ECKey.import_key(jwk) for jwk in public])
        return KeyRing(signing=signing, verifying=verifying, public_jwks={"keys": public})

    def _needs_new_key(self, rows: Sequence[SigningKeyRow]) -> bool:
        active = next((row for row in rows if row.retired_at is None), None)
        return active is None or utc_now() - active.created_at > self._rotation_age
