"""Password policy (length, zxcvbn strength, the person's own data) and argon2id hashing."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medicus.iam.passwords import PasswordHasher, PasswordRejected, check_password_policy

EMAIL = "anna.berg@uk-nordstadt.example"
CONTEXT = (EMAIL, "Anna Berg", "Universitätsklinikum Nordstadt")
PASSPHRASE = "correct horse battery staple 42"
CHEAP = {"time_cost": 1, "memory_cost": 1024, "parallelism": 1}
HASHER = PasswordHasher(**CHEAP)


def _rejection(password: str, context: tuple[str, ...] = ()) -> str:
    with pytest.raises(PasswordRejected) as refusal:
        check_password_policy(password, context)
    return str(refusal.value)


def test_a_long_passphrase_is_accepted() -> None:
    check_password_policy(PASSPHRASE, CONTEXT)


def test_a_passphrase_longer_than_zxcvbns_own_limit_is_accepted() -> None:
    check_password_policy("the quick brown ward nurse jumps over the lazy night shift " * 2)


def test_no_composition_rules_lowercase_letters_and_spaces_suffice() -> None:
    check_password_policy("plum orbit gravel lantern")


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("Xq7#vL2!pR9", "at least 12 characters"),
        ("e\u0301" * 11, "at least 12 characters"),  # 22 code points, 11 after NFKC
        ("Xq7#vL2!pR9$" * 10 + "abcdefghi", "at most 128 characters"),
        ("password1234", "too weak: this is a very common password"),
        ("Passwort12345", "too weak: this is similar to a commonly used password"),
        ("qwertyuiop12", "too weak"),
        ("abcabcabcabcabc", "too weak"),
    ],
)
def test_short_long_and_common_passwords_are_rejected(password: str, reason: str) -> None:
    assert reason in _rejection(password)


def test_a_password_made_of_the_persons_own_data_is_rejected() -> None:
    assert "your name, e-mail address or organisation" in _rejection(
        "anna.berg.uk-nordstadt", (EMAIL,)
    )
    assert "organisation" in _rejection("Nordstadt-Klinikum-2024", ("Klinikum Nordstadt",))


def test_the_same_password_passes_without_that_context() -> None:
    check_password_policy("anna.berg.uk-nordstadt")


@pytest.mark.parametrize("password", ["short", "password1234", "x" * 200, "anna.berg.nordstadt"])
def test_rejections_are_one_user_facing_sentence(password: str) -> None:
    message = _rejection(password, CONTEXT)
    assert message[0].isupper()
    assert message.endswith(".")
    assert ". " not in message


@settings(max_examples=30, deadline=None, database=None)
@given(st.text(max_size=140))
def test_the_policy_only_ever_raises_password_rejected(password: str) -> None:
    with contextlib.suppress(PasswordRejected):
        check_password_policy(password, CONTEXT)


def test_hashing_round_trip_uses_argon2id_with_the_given_parameters() -> None:
    hashed = HASHER.hash(PASSPHRASE)
    assert hashed.startswith("$argon2id$v=19$m=1024,t=1,p=1$")
    assert HASHER.verify(hashed, PASSPHRASE)
    assert HASHER.hash(PASSPHRASE) != hashed  # salted


def test_a_wrong_password_does_not_verify() -> None:
    hashed = HASHER.hash(PASSPHRASE)
    assert not HASHER.verify(hashed, PASSPHRASE + " ")
    assert not HASHER.verify(hashed, "")


@pytest.mark.parametrize(
    "hashed",
    [
        "",
        "not a hash",
        "$argon2id$",
        "$argon2id$v=19$m=1024,t=1,p=1$AAAA$AAAA",
        "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
        "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$é",
    ],
)
def test_a_malformed_hash_does_not_verify_nor_raise(hashed: str) -> None:
    assert not HASHER.verify(hashed, PASSPHRASE)
    assert HASHER.needs_rehash(hashed)


def test_a_truncated_hash_does_not_verify() -> None:
    assert not HASHER.verify(HASHER.hash(PASSPHRASE)[:-4], PASSPHRASE)


@pytest.mark.parametrize("changed", [{"time_cost": 2}, {"memory_cost": 2048}, {"parallelism": 2}])
def test_a_hash_needs_rehash_when_the_parameters_change(changed: dict[str, int]) -> None:
    hashed = HASHER.hash(PASSPHRASE)
    assert not HASHER.needs_rehash(hashed)
    assert PasswordHasher(**(CHEAP | changed)).needs_rehash(hashed)


def test_passwords_are_compared_after_nfkc_normalisation() -> None:
    assert HASHER.verify(HASHER.hash("\ufb01ne passphrase"), "fine passphrase")  # ligature fi
    assert HASHER.verify(HASHER.hash("fine passphrase"), "\ufb01ne passphrase")
    assert HASHER.verify(HASHER.hash("cafe\u0301 au lait"), "caf\u00e9 au lait")


def test_burn_verifies_against_a_fixed_hash_of_the_same_cost(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hasher = PasswordHasher(**CHEAP)
    calls: list[tuple[str, str]] = []

    def verify(hashed: str, password: str) -> bool:
        calls.append((hashed, password))
        return False

    monkeypatch.setattr(hasher, "verify", verify)
    hasher.burn("guess one")
    hasher.burn("guess two")
    assert calls[0][0] == calls[1][0]
    assert calls[0][0].startswith("$argon2id$v=19$m=1024,t=1,p=1$")
    assert [password for _, password in calls] == ["guess one", "guess two"]


def test_burn_never_raises() -> None:
    HASHER.burn("")
    HASHER.burn("\ud800 lone surrogate")


@settings(max_examples=25, deadline=None, database=None)
@given(st.text(max_size=64))
def test_any_password_verifies_against_its_own_hash_only(password: str) -> None:
    hashed = HASHER.hash(password)
    assert HASHER.verify(hashed, password)
    assert not HASHER.verify(hashed, password + "x")
