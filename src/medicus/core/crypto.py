"""Encryption of small secrets at rest (signing keys, TOTP secrets, upstream client secrets).

Keys are derived from the platform secret (`MEDICUS_SECRET_KEY`) with HKDF, one per purpose, and
used with AES-256-GCM; the purpose is bound as associated data, so that a value encrypted for one
purpose cannot be replayed for another. Tokens compared by the database are stored as hashes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_NONCE_BYTES = 12
_FORMAT = b"v1"


class DecryptionError(Exception):
    """A stored secret could not be decrypted (wrong platform secret or altered data)."""


class SecretBox:
    def __init__(self, platform_secret: bytes) -> None:
        self._platform_secret = platform_secret

    def _key(self, purpose: str) -> AESGCM:
        derive = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode())
        return AESGCM(derive.derive(self._platform_secret))

    def encrypt(self, purpose: str, plaintext: bytes) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._key(purpose).encrypt(nonce, plaintext, _FORMAT + purpose.encode())
        return (_FORMAT + b"." + base64.urlsafe_b64encode(nonce + sealed)).decode("ascii")

    def decrypt(self, purpose: str, token: str) -> bytes:
        """The plaintext of `token`; DecryptionError for anything `encrypt` did not make with
        this secret and purpose (also non-ASCII, bad or trailing base64, a cut-off token)."""
        try:
            version, _, body = token.encode("ascii").partition(b".")
            raw = base64.b64decode(body, altchars=b"-_", validate=True)
        except ValueError:
            raise DecryptionError(f"an encrypted {purpose} is malformed") from None
        if version != _FORMAT:
            raise DecryptionError(f"unknown format of an encrypted {purpose}")
        try:
            return self._key(purpose).decrypt(
                raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], _FORMAT + purpose.encode()
            )
        except (InvalidTag, ValueError):
            raise DecryptionError(f"an encrypted {purpose} does not open") from None

    def sign(self, purpose: str, message: bytes) -> str:
        """An HMAC-SHA256 of `message` under a key for `purpose` (e.g. CSRF tokens)."""
        key = hashlib.sha256(b"hmac:" + purpose.encode() + b":" + self._platform_secret).digest()
        return hmac.new(key, message, hashlib.sha256).hexdigest()


def new_token(entropy_bytes: int = 32) -> str:
    """A random, URL-safe bearer value (session ids, codes, refresh tokens)."""
    return secrets.token_urlsafe(entropy_bytes)


def token_hash(token: str) -> str:
    """How a bearer value is stored: its SHA-256. The values are random with ≥ 256 bits, so a
    fast hash suffices; a database leak does not reveal usable tokens."""
    return hashlib.sha256(token.encode()).hexdigest()


def constant_time_equal(left: str, right: str) -> bool:
    return hmac.compare_digest(left.encode(), right.encode())
