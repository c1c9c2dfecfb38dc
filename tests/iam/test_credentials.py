"""Password policy and hashing; TOTP with replay protection; recovery codes."""

from __future__ import annotations

import pyotp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medicus.iam.passwords import PasswordHasher, PasswordRejected, check_password_policy
from medicus.iam.totp import (
    hash_recovery_code,
    new_recovery_codes,
    new_totp_secret,
    normalise_recovery_code,
    provisioning_uri,
    verify_totp,
)

CHEAP = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


def test_a_long_passphrase_is_accepted() -> None:
    check_password_policy("correct horse battery staple 42", ("anna.berg@klinik.example",))


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("short1!", "at least 12"),
        ("x" * 129, "at most 128"),
        ("password1234", "too weak"),
        ("qwertyuiop12", "too weak"),
    ],
)
def test_weak_passwords_are_rejected(password: str, reason: str) -> None:
    with pytest.raises(PasswordRejected, match=reason):
        check_password_policy(password)


def test_a_password_made_of_the_persons_own_data_is_rejected() -> None:
    with pytest.raises(PasswordRejected):
        check_password_policy(
            "anna.berg.uk-nordstadt", ("anna.berg@uk-nordstadt.example", "Anna Berg")
        )


def test_hashing_round_trip_and_failures() -> None:
    hashed = CHEAP.hash("correct horse battery staple 42")
    assert hashed.startswith("$argon2id$")
    assert CHEAP.verify(hashed, "correct horse battery staple 42")
    assert not CHEAP.verify(hashed, "correct horse battery staple 43")
    assert not CHEAP.verify("not a hash", "anything")
    assert not CHEAP.needs_rehash(hashed)
    assert PasswordHasher(time_cost=2, memory_cost=1024, parallelism=1).needs_rehash(hashed)


def test_passwords_are_compared_after_unicode_normalisation() -> None:
    assert CHEAP.verify(CHEAP.hash("ﬁne passphrase"), "fine passphrase")


@settings(max_examples=20, deadline=None)
@given(st.text(min_size=1, max_size=40))
def test_any_password_verifies_against_its_hash(password: str) -> None:
    assert CHEAP.verify(CHEAP.hash(password), password)


def test_totp_accepts_current_and_neighbouring_steps_once() -> None:
    secret = new_totp_secret()
    now = 1_800_000_000.0
    step = int(now // 30)
    code = pyotp.TOTP(secret).at(now)
    assert verify_totp(secret, code, None, now=now) == step
    assert verify_totp(secret, code, step, now=now) is None
    previous = pyotp.TOTP(secret).at(now - 30)
    assert verify_totp(secret, previous, None, now=now) == step - 1
    far = pyotp.TOTP(secret).at(now - 90)
    assert verify_totp(secret, far, None, now=now) is None
    assert verify_totp(secret, code[:3] + " " + code[3:], None, now=now) == step


@pytest.mark.parametrize("garbage", ["", "12345", "1234567", "abcdef", "12 34 5x"])
def test_totp_rejects_garbage(garbage: str) -> None:
    assert verify_totp(new_totp_secret(), garbage, None) is None


def test_provisioning_uri_names_issuer_and_account() -> None:
    uri = provisioning_uri(new_totp_secret(), "dr.berg@klinik.example", "medicus")
    assert uri.startswith("otpauth://totp/medicus:dr.berg%40klinik.example?")
    assert "issuer=medicus" in uri


def test_recovery_codes_are_unique_and_unambiguous() -> None:
    codes = new_recovery_codes()
    assert len(codes) == len(set(codes)) == 10
    for code in codes:
        assert not set(code.replace("-", "")) & set("01ilo")
        assert len(code.replace("-", "")) == 16


@given(st.sampled_from(new_recovery_codes(50)))
def test_recovery_codes_normalise_however_typed(code: str) -> None:
    typed = code.upper().replace("-", " ")
    assert normalise_recovery_code(typed) == code.replace("-", "")
    assert hash_recovery_code(typed) == hash_recovery_code(code)
