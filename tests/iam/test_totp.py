"""TOTP (RFC 6238) with clock drift and replay protection; recovery codes."""

from __future__ import annotations

import base64
import hashlib
import math
import re
import time
from urllib.parse import parse_qs, unquote, urlsplit

import pyotp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medicus.iam.totp import (
    hash_recovery_code,
    new_recovery_codes,
    new_totp_secret,
    normalise_recovery_code,
    provisioning_uri,
    verify_totp,
)

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
NOW = 1_800_000_015.0
STEP = int(NOW // 30)
UNAMBIGUOUS = set("abcdefghjkmnpqrstuvwxyz23456789")


def _code(step: int) -> str:
    return pyotp.TOTP(SECRET).at(step * 30)


def test_the_code_of_now_verifies_and_returns_its_step() -> None:
    assert verify_totp(SECRET, _code(STEP), None, now=NOW) == STEP


@pytest.mark.parametrize("offset", [-1, 1])
def test_codes_of_neighbouring_steps_verify_for_clock_drift(offset: int) -> None:
    assert verify_totp(SECRET, _code(STEP + offset), None, now=NOW) == STEP + offset


@pytest.mark.parametrize("offset", [-3, -2, 2, 3])
def test_codes_further_away_fail(offset: int) -> None:
    assert verify_totp(SECRET, _code(STEP + offset), None, now=NOW) is None


def test_a_replay_of_the_same_step_fails() -> None:
    assert verify_totp(SECRET, _code(STEP), STEP, now=NOW) is None


def test_a_code_older_than_the_last_used_step_fails_but_a_newer_one_passes() -> None:
    assert verify_totp(SECRET, _code(STEP - 1), STEP, now=NOW) is None
    assert verify_totp(SECRET, _code(STEP), STEP - 1, now=NOW) == STEP


def test_spaces_in_the_code_are_ignored() -> None:
    code = _code(STEP)
    assert verify_totp(SECRET, f" {code[:3]} {code[3:]} ", None, now=NOW) == STEP


@pytest.mark.parametrize(
    "garbage",
    ["", "12345", "1234567", "abcdef", "12345x", "-12345", "123456\n", "١٢٣٤٥٦", "12-34-56"],
)
def test_garbage_fails(garbage: str) -> None:
    assert verify_totp(SECRET, garbage, None, now=NOW) is None


def test_the_clock_is_used_when_no_time_is_given() -> None:
    step = verify_totp(SECRET, pyotp.TOTP(SECRET).now(), None)
    assert step is not None
    assert abs(step - time.time() // 30) <= 1


def test_codes_match_the_rfc_6238_sha1_vectors_truncated_to_six_digits() -> None:
    secret = base64.b32encode(b"12345678901234567890").decode()
    assert verify_totp(secret, "287082", None, now=59) == 1
    assert verify_totp(secret, "081804", None, now=1111111109) == 1111111109 // 30


def test_a_new_secret_has_160_random_bits_in_base32() -> None:
    secret = new_totp_secret()
    assert len(base64.b32decode(secret)) == 20
    assert secret != new_totp_secret()


def test_the_provisioning_uri_names_issuer_and_account() -> None:
    uri = urlsplit(provisioning_uri(SECRET, "anna.berg@uk-nordstadt.example", "Medicus Nordstadt"))
    query = parse_qs(uri.query)
    assert (uri.scheme, uri.netloc) == ("otpauth", "totp")
    assert unquote(uri.path) == "/Medicus Nordstadt:anna.berg@uk-nordstadt.example"
    assert query["issuer"] == ["Medicus Nordstadt"]
    assert query["secret"] == [SECRET]


def test_recovery_codes_come_in_the_asked_number_and_are_unique() -> None:
    assert len(new_recovery_codes()) == 10
    assert len(new_recovery_codes(3)) == 3
    codes = new_recovery_codes(500)
    assert len(set(codes)) == 500


def test_recovery_codes_are_dashed_groups_of_an_unambiguous_alphabet() -> None:
    for code in new_recovery_codes(100):
        assert re.fullmatch(r"[a-z2-9]{4}(-[a-z2-9]{4})+", code)
        assert set(code.replace("-", "")) <= UNAMBIGUOUS
        assert len(code.replace("-", "")) * math.log2(len(UNAMBIGUOUS)) >= 60


def test_recovery_codes_normalise_however_typed() -> None:
    assert normalise_recovery_code("ABCD EFGH JK12") == normalise_recovery_code("abcd-efgh-jk12")
    assert normalise_recovery_code(" abcd-EFGH\tjk12\n") == "abcdefghjk12"


def test_the_recovery_code_hash_is_a_stable_sha256_of_the_normalised_code() -> None:
    expected = hashlib.sha256(b"abcdefghjk12").hexdigest()
    assert hash_recovery_code("abcd-efgh-jk12") == expected
    assert hash_recovery_code("ABCD EFGH JK12") == expected
    assert hash_recovery_code("abcd-efgh-jk13") != expected


@settings(max_examples=50, database=None)
@given(
    code=st.builds(lambda: new_recovery_codes(1)[0]),
    separator=st.sampled_from(["-", " ", "", "  ", "\t", " - "]),
    upper=st.booleans(),
)
def test_any_recovery_code_normalises_and_hashes_consistently(
    code: str, separator: str, upper: bool
) -> None:
    typed = code.replace("-", separator)
    typed = typed.upper() if upper else typed
    assert normalise_recovery_code(typed) == code.replace("-", "")
    assert hash_recovery_code(typed) == hash_recovery_code(code)


@settings(max_examples=50, database=None)
@given(st.text())
def test_normalising_is_idempotent_and_the_hash_ignores_formatting(code: str) -> None:
    normalised = normalise_recovery_code(code)
    assert normalise_recovery_code(normalised) == normalised
    assert hash_recovery_code(code) == hash_recovery_code(normalised)
