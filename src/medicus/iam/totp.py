"""Second factor: TOTP (RFC 6238; 30 s, 6 digits, SHA-1, as authenticator apps expect) with
replay protection, and single-use recovery codes."""

from __future__ import annotations

import hashlib
import re
import secrets
import time

import pyotp

_STEP_SECONDS = 30
_CODE = re.compile(r"^\d{6}$")
# No 0/o, 1/l/i: the codes are read off paper.
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
_RECOVERY_GROUPS = 4
_RECOVERY_GROUP_LENGTH = 4


def new_totp_secret() -> str:
    return pyotp.random_base32(32)


def provisioning_uri(secret: str, account: str, issuer: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=account, issuer_name=issuer)


def verify_totp(
    secret: str, code: str, last_used_step: int | None, now: float | None = None
) -> int | None:
    """The time step `code` belongs to (current ±1 for clock drift), or None if it matches
    none of them or belongs to a step not after `last_used_step` (a replay)."""
    code = code.replace(" ", "")
    if not _CODE.match(code):
        return None
    moment = time.time() if now is None else now
    current = int(moment // _STEP_SECONDS)
    totp = pyotp.TOTP(secret)
    for step in (current - 1, current, current + 1):
        if secrets.compare_digest(totp.at(step * _STEP_SECONDS), code):
            if last_used_step is not None and step <= last_used_step:
                return None
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
    return re.sub(r"[\s-]", "", code).lower()


def hash_recovery_code(code: str) -> str:
    """SHA-256 of the normalised code; a fast hash suffices for random, single-use codes."""
    return hashlib.sha256(normalise_recovery_code(code).encode()).hexdigest()
