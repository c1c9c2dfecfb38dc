"""Password policy and hashing (argon2id).

The policy follows NIST SP 800-63B: at least 12 characters, at most 128, no composition rules,
and no password that is common or guessable. zxcvbn's frequency lists stand in for a breached-
password list, because a patient-data platform runs without outbound internet and cannot ask a
breach API.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Sequence

import argon2
from argon2.exceptions import InvalidHashError, VerificationError
from zxcvbn import zxcvbn

MIN_LENGTH = 12
MAX_LENGTH = 128
MIN_STRENGTH = 3

# zxcvbn keeps the user inputs of a call in a module-level dictionary, so concurrent calls would
# see each other's inputs.
_ZXCVBN_LOCK = threading.Lock()


class PasswordRejected(ValueError):
    """The password does not meet the policy; the message tells the user why in one sentence."""


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
        raise PasswordRejected("The password is made of your name, e-mail address or organisation.")
    score, warning = _strength(normalised, inputs)
    if score < MIN_STRENGTH:
        reason = warning.rstrip(".") or "it is too easy to guess"
        raise PasswordRejected(f"The password is too weak: {reason[0].lower()}{reason[1:]}.")


def _strength(password: str, user_inputs: list[str]) -> tuple[int, str]:
    """zxcvbn's score (0 to 4) and warning ('' if none)."""
    with _ZXCVBN_LOCK:
        # zxcvbn refuses passwords over 72 characters unless told otherwise; up to 128 it takes
        # well under a second.
        result = zxcvbn(password, user_inputs=user_inputs, max_length=MAX_LENGTH)
    return int(result["score"]), str(result["feedback"]["warning"])


def _context_words(context: Sequence[str]) -> list[str]:
    words = {part.lower() for item in context for part in re.split(r"[\s@._-]+", item)}
    return sorted((word for word in words if len(word) >= 3), key=len, reverse=True)


def _made_of(password: str, words: Sequence[str]) -> bool:
    """Whether little is left of the password once the person's own words are taken out
    (zxcvbn rates `anna.berg.uk-nordstadt` strong even when told the words)."""
    rest = re.sub(r"[\W_]+", "", password.lower())
    for word in words:
        rest = rest.replace(word, "")
    return len(rest) < 6


class PasswordHasher:
    """argon2id hashing with explicit cost; `burn` spends the same work on unknown users."""

    def __init__(self, time_cost: int = 3, memory_cost: int = 65536, parallelism: int = 2) -> None:
        """`memory_cost` is in KiB; tests pass cheap values."""
        self._hasher = argon2.PasswordHasher(
            time_cost=time_cost,
            memory_cost=memory_cost,
            parallelism=parallelism,
            type=argon2.Type.ID,
        )
        self._dummy = self._hasher.hash("medicus dummy password for timing")

    def hash(self, password: str) -> str:
        """The argon2id hash (PHC string, with a fresh salt) of the NFKC-normalised password."""
        return self._hasher.hash(_normalise(password))

    def verify(self, hashed: str, password: str) -> bool:
        """Whether `password` matches `hashed`; False also for a malformed or foreign hash."""
        try:
            return self._hasher.verify(hashed, _normalise(password))
        # UnicodeEncodeError: a hash with non-ASCII characters, or a lone surrogate.
        except (VerificationError, InvalidHashError, UnicodeEncodeError):
            return False

    def needs_rehash(self, hashed: str) -> bool:
        """Whether `hashed` was made with other parameters (or is no argon2 hash at all)."""
        try:
            return self._hasher.check_needs_rehash(hashed)
        except InvalidHashError:
            return True

    def burn(self, password: str) -> None:
        """Verify against a dummy hash, so that an unknown user costs as much as a known one."""
        self.verify(self._dummy, password)
