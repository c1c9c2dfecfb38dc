"""Medicus as a client of Synapse's own APIs (never through the proxy): who holds an access
token, and the admin API for locking and unlocking accounts and ending their sessions.

Medicus acts as its own Synapse admin account, `medicus-system`, registered once with the
shared registration secret and logged in with a login token medicus signs itself."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
import uuid
from urllib.parse import quote

import httpx
from joserfc import jwt
from joserfc.jwk import ECKey

from medicus.messenger.homeserver import (
    LOGIN_ISSUER,
    LOGIN_TOKEN_TYPE,
    SYSTEM_LOCALPART,
    Homeserver,
    derived_secret,
    login_signing_key,
)

_CLIENT = "/_matrix/client/v3"
_ADMIN = "/_synapse/admin"


class SynapseUnavailable(RuntimeError):
    """Synapse did not answer, or answered with an error medicus cannot act on."""


class SynapseAdmin:
    def __init__(self, homeserver: Homeserver, platform_secret: bytes, http: httpx.AsyncClient):
        self._homeserver = homeserver
        self._secret = platform_secret
        self._key = ECKey.import_key(login_signing_key(platform_secret))
        self._http = http
        self._token: str | None = None
        self._token_lock = asyncio.Lock()

    def signed_login_token(self, localpart: str, display_name: str, jti: str, ttl: int) -> str:
        """An ES256 login token for `localpart`, as Synapse's `jwt_config` checks it."""
        now = int(time.time())
        claims = {
            "iss": LOGIN_ISSUER,
            "aud": self._homeserver.server_name,
            "sub": localpart,
            "name": display_name,
            "iat": now,
            "exp": now + ttl,
            "jti": jti,
        }
        return jwt.encode({"alg": "ES256", "typ": "JWT"}, claims, self._key)

    async def whoami(self, access_token: str) -> str | None:
        """The Matrix ID holding `access_token`, or None if Synapse does not know it."""
        answer = await self._call("GET", f"{_CLIENT}/account/whoami", headers=_bearer(access_token))
        if answer.status_code != 200:
            return None
        return str(answer.json().get("user_id") or "") or None

    async def set_locked(self, matrix_id: str, locked: bool) -> None:
        """Lock (every request of theirs fails with M_USER_LOCKED) or unlock an account; on
        locking, also log out all its devices, so that its sessions end."""
        path = f"{_ADMIN}/v2/users/{quote(matrix_id, safe='')}"
        await self._admin("PUT", path, {"locked": locked})
        if locked:
            found = await self._admin("GET", f"{path}/devices")
            devices: list[dict[str, str]] = found.get("devices", [])  # type: ignore[assignment]
            ids = [device["device_id"] for device in devices]
            if ids:
                await self._admin("POST", f"{path}/delete_devices", {"devices": ids})

    async def log_out_device(self, matrix_id: str, device_id: str) -> None:
        """Delete one device of an account: its access tokens stop working (a device that is
        gone already is fine)."""
        user, device = quote(matrix_id, safe=""), quote(device_id, safe="")
        await self._admin_answer("DELETE", f"{_ADMIN}/v2/users/{user}/devices/{device}")

    async def deactivate(self, matrix_id: str) -> None:
        """Deactivate an account for good and erase what it sent (Synapse's GDPR erasure):
        its sessions end, it cannot log in again, its messages are hidden from later joiners."""
        await self._admin(
            "POST", f"{_ADMIN}/v1/deactivate/{quote(matrix_id, safe='')}", {"erase": True}
        )

    async def room_members(self, room_id: str) -> frozenset[str]:
        """The Matrix IDs that have joined the room (none if Synapse knows no such room)."""
        answer = await self._admin_answer(
            "GET", f"{_ADMIN}/v1/rooms/{quote(room_id, safe='')}/members"
        )
        if answer is None:
            return frozenset()
        members: list[str] = answer.get("members", [])  # type: ignore[assignment]
        return frozenset(members)

    async def _admin(self, method: str, path: str, body: object = None) -> dict[str, object]:
        answer = await self._admin_answer(method, path, body)
        if answer is None:
            raise SynapseUnavailable(f"Synapse's admin API knows no {path}")
        return answer

    async def _admin_answer(
        self, method: str, path: str, body: object = None
    ) -> dict[str, object] | None:
        """Synapse's answer to an admin request (logging medicus in again once if its token
        expired); None for 404."""
        for attempt in (1, 2):
            token = await self._admin_token()
            answer = await self._call(method, path, json=body, headers=_bearer(token))
            if answer.status_code == 401 and attempt == 1:
                self._token = None
                continue
            if answer.status_code == 404:
                return None
            if answer.status_code >= 400:
                raise SynapseUnavailable(f"Synapse's admin API answered {answer.status_code}")
            result: dict[str, object] = answer.json()
            return result
        raise SynapseUnavailable("Synapse refused medicus's admin login")

    async def _admin_token(self) -> str:
        async with self._token_lock:
            if self._token is None:
                self._token = await self._log_in_system_account()
            return self._token

    async def _log_in_system_account(self) -> str:
        """Register the system account as an admin once (Synapse says M_USER_IN_USE after),
        then log in as it with a login token medicus signs."""
        await self._register_system_account()
        token = self.signed_login_token(SYSTEM_LOCALPART, "medicus", uuid.uuid4().hex, 60)
        answer = await self._call(
            "POST", f"{_CLIENT}/login", json={"type": LOGIN_TOKEN_TYPE, "token": token}
        )
        if answer.status_code != 200:
            raise SynapseUnavailable(f"the system account's login answered {answer.status_code}")
        return str(answer.json()["access_token"])

    async def _register_system_account(self) -> None:
        nonce_answer = await self._call("GET", f"{_ADMIN}/v1/register")
        if nonce_answer.status_code != 200:
            raise SynapseUnavailable("Synapse's shared-secret registration is not available")
        nonce = str(nonce_answer.json()["nonce"])
        password = secrets.token_urlsafe(32)  # never used: password login is off
        shared = derived_secret(self._secret, "messenger-registration").hex().encode()
        message = b"\x00".join([nonce.encode(), SYSTEM_LOCALPART.encode(), password.encode()])
        mac = hmac.new(shared, message + b"\x00admin", hashlib.sha1).hexdigest()
        body = {
            "nonce": nonce,
            "username": SYSTEM_LOCALPART,
            "password": password,
            "admin": True,
            "mac": mac,
        }
        answer = await self._call("POST", f"{_ADMIN}/v1/register", json=body)
        if answer.status_code != 200 and answer.json().get("errcode") != "M_USER_IN_USE":
            raise SynapseUnavailable(f"registering medicus's account answered {answer.status_code}")

    async def _call(
        self,
        method: str,
        path: str,
        json: object = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        try:
            return await self._http.request(
                method, f"{self._homeserver.synapse_url}{path}", json=json, headers=headers
            )
        except httpx.TransportError as error:
            raise SynapseUnavailable(f"Synapse is not answering: {type(error).__name__}") from None


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
