"""SecretBox: what it sealed opens with the same secret and purpose, and nothing else does."""

from __future__ import annotations

import pytest

from medicus.core.crypto import DecryptionError, SecretBox

SECRET = b"a platform secret of enough length"


def test_sealed_opens_with_the_same_secret_and_purpose_only() -> None:
    box = SecretBox(SECRET)
    token = box.encrypt("cursor", b"[1,2]")
    assert box.decrypt("cursor", token) == b"[1,2]"
    assert box.encrypt("cursor", b"[1,2]") != token
    with pytest.raises(DecryptionError):
        box.decrypt("other purpose", token)
    with pytest.raises(DecryptionError):
        SecretBox(b"another secret of enough length!!").decrypt("cursor", token)


@pytest.mark.parametrize(
    "alter",
    [
        lambda t: t + "AA",  # trailing base64 after the padding was ignored
        lambda t: t[:-3],
        lambda t: t.replace("v1.", "v2."),
        lambda t: t[:8] + ("A" if t[8] != "A" else "B") + t[9:],
        lambda t: t + "ä",
        lambda t: "v1.",
        lambda t: "v1.AAAA",
        lambda t: "",
        lambda t: t.replace("-", "+").replace("_", "/") + "+/",
    ],
)
def test_anything_else_is_a_decryption_error(alter: object) -> None:
    box = SecretBox(SECRET)
    token = box.encrypt("cursor", b"[1,2]")
    with pytest.raises(DecryptionError):
        box.decrypt("cursor", alter(token))  # type: ignore[operator]
