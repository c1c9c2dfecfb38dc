"""Second factor: TOTP (RFC 6238; 30 s, 6 digits, SHA-1, as authenticator apps expect) with
replay protection, and single-use recovery codes."""

from __future__ import annotations

import hashlib
import re
import secrets
import time

import pyotp

_STEP_SECONDS = 30
_DIGITS = 6
_CODE = re.compile(r"[0-9]{6}")  # not \d, which also matches other scripts' digits
# No 0/o, 1/l/i: the codes are read off paper.
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
_RECOVERY_GROUPS = 4
_RECOVERY_GROUP_LENGTH = 4


def _totp(secret: str) -> pyotp.TOTP:
    return pyotp.TOTP(secret, digits=_DIGITS, digest=hashlib.sha1, interval=_STEP_SECONDS)


def new_totp_secret() -> str:
    """A random 160-bit secret, base32-encoded (32 characters)."""
    return pyotp.random_base32(32)


def provisioning_uri(secret: str, account: str, issuer: str) -> str:
    """The `otpauth://` URI for an authenticator app (shown as a QR code)."""
    return _totp(secret).provisioning_uri(name=account, issuer_name=issuer)


def verify_totp(
    secret: str, code: str, last_used_step: int | None, now: float | None = None
) -> int | None:
    """The time step `code` belongs to (current ±1 for clock drift), or None if it matches
    none of them after `last_used_step` (an earlier step would be a replay)."""
    code = code.replace(" ", "")
    if not _CODE.fullmatch(code):
        return None
    current = int((time.time() if now is None else now) // _STEP_SECONDS)
    totp = _totp(secret)
    for step in (current - 1, current, current + 1):
        fresh = last_used_step is None or step > last_used_step
        if fresh and secrets.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def new_recovery_codes(count: int = 10) -> list[str]:
    """Codes like `abcd-efgh-jk23-mn45`: 16 characters of a 31-letter alphabet (79 bits)."""
    return [
        "-".join(
            "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(_RECOVERY_GROUP_LENGTH))
            for _ in range(_RECOVERY_GROUPS)
        )
        for _ in range(count)
    ]


def normalise_recovery_code(code: str) -> str:
    """The code as stored: lower-case, without dashes and white space."""
    return re.sub(r"[\s-]", "", code).lower()


def hash_recovery_code(code: str) -> str:
    """SHA-256 (hex) of the normalised code."""
    # A fast, unsalted hash suffices: the codes are random with 79 bits of entropy and single-use,
    # so there is nothing to guess from a dictionary and brute force is out of reach.
    return hashlib.sha256(normalise_recovery_code(code).encode()).hexdigest()
