"""Password policy and hashing (argon2id).

The policy follows NIST SP 800-63B: at least 12 characters, at most 128, no composition rules,
and no password that is common or guessable. zxcvbn's frequency lists stand in for a breached-
password list, because a patient-data platform runs without outbound internet and cannot ask a
breach API.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

import argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from zxcvbn import zxcvbn

MIN_LENGTH = 12
MAX_LENGTH = 128
MIN_STRENGTH = 3


class PasswordRejected(ValueError):
    """The password does not meet the policy; the message tells the user why."""


def _normalise(password: str) -> str:
    return unicodedata.normalize("NFKC", password)


def check_password_policy(password: str, context: Sequence[str] = ()) -> None:
    """Raise PasswordRejected unless `password` is long enough and hard to guess, also given
    `context` (the user's e-mail, name, organisation)."""
    normalised = _normalise(password)
    if len(normalised) < MIN_LENGTH:
        raise PasswordRejected(f"The password must have at least {MIN_LENGTH} characters.")
    if len(normalised) > MAX_LENGTH:
        raise PasswordRejected(f"The password must have at most {MAX_LENGTH} characters.")
    inputs = _context_words(context)
    if _made_of(normalised, inputs):
        raise PasswordRejected("The password is made of your name or e-mail address.")
    result = zxcvbn(normalised, user_inputs=inputs)
    if result["score"] < MIN_STRENGTH:
        warning = result["feedback"].get("warning") or "It is too easy to guess."
        raise PasswordRejected(f"The password is too weak: {warning.rstrip('.')}.")


def _context_words(context: Sequence[str]) -> list[str]:
    words = {part.lower() for item in context for part in re.split(r"[\s@._-]+", item)}
    return sorted((word for word in words if len(word) >= 3), key=len, reverse=True)


def _made_of(password: str, words: Sequence[str]) -> bool:
    """Whether little is left of the password once the person's own words are taken out."""
    rest = re.sub(r"[\W_]+", "", password.lower())
    for word in words:
        rest = rest.replace(word, "")
    return len(rest) < 6


class PasswordHasher:
    """argon2id hashing with explicit cost; `burn` spends the same work on unknown users."""

    def __init__(self, time_cost: int = 3, memory_cost: int = 65536, parallelism: int = 2) -> None:
        self._hasher = argon2.PasswordHasher(
            time_cost=time_cost,
            memory_cost=memory_cost,
            parallelism=parallelism,
            type=argon2.Type.ID,
        )
        self._dummy = self._hasher.hash("medicus dummy password for timing")

    def hash(self, password: str) -> str:
        return self._hasher.hash(_normalise(password))

    def verify(self, hashed: str, password: str) -> bool:
        try:
            return bool(self._hasher.verify(hashed, _normalise(password)))
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, hashed: str) -> bool:
        try:
            return self._hasher.check_needs_rehash(hashed)
        except InvalidHashError:
            return True

    def burn(self, password: str) -> None:
        """Verify against a dummy hash, so that an unknown user costs as much as a known one."""
        self.verify(self._dummy, password)
